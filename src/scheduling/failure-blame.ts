/**
 * FailureBlame: after a request fails inside ONNX Runtime, decides whose fault it was, for one model
 * version. Validation cannot know everything a graph refuses (an id beyond an embedding table, a shape a
 * Reshape cannot take), so a run can fail on a client's input while the model is fine. Counting those as
 * server faults would let one client open the circuit breaker for everyone by resending a few bad inputs;
 * counting none would keep a broken model from ever opening it. So:
 *
 * - the version ran some other input successfully within the last BLAME_WINDOW_MS: the model works, the
 *   input is the cause -> INVALID_ARGUMENT (not counted by the breaker);
 * - otherwise the input that last succeeded (the known-good input) is run again, once for all failures
 *   waiting on the answer: if it succeeds the input is the cause; if it fails too, or no input has ever
 *   succeeded, the model is -> the original INTERNAL (a server fault: the breaker counts it).
 *
 * A model that fails on every input therefore still opens its breaker, and costs at most one extra run
 * per BLAME_WINDOW_MS to tell.
 */
import { invalidArgument, type ModelRunError, type ServingError } from '../core/errors';
import type { InferTensor } from '../core/tensor';

/** How recent a success (or a failed probe) must be to decide without running the known-good input. */
export const BLAME_WINDOW_MS = 1000;
/** Larger inputs are not kept as the known-good one (it lives as long as the version). */
export const KNOWN_GOOD_MAX_BYTES = 64 * 1024;

export interface KnownGood {
  inputs: InferTensor[];
  outputs: string[];
}

export type ProbeRunner = (probe: KnownGood) => Promise<unknown>;

export class FailureBlame {
  private lastSuccessAt = -Infinity;
  private lastProbeFailedAt = -Infinity;
  private knownGood: KnownGood | undefined;
  private probe: Promise<boolean> | undefined;

  constructor(
    private readonly key: string,
    private readonly runProbe: ProbeRunner,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records a successful run; the first small successful input becomes the known-good one. */
  succeeded(inputs: readonly InferTensor[], outputs: readonly string[]): void {
    this.lastSuccessAt = this.now();
    if (this.knownGood) return;
    let bytes = 0;
    for (const t of inputs) bytes += t.data.byteLength + (t.strings?.reduce((n, s) => n + s.length * 2, 0) ?? 0);
    if (bytes > KNOWN_GOOD_MAX_BYTES) return;
    // Copied: the request's bytes may be a view into a larger received message.
    this.knownGood = {
      inputs: inputs.map((t) => ({ ...t, shape: [...t.shape], data: new Uint8Array(t.data), ...(t.strings ? { strings: [...t.strings] } : {}) })),
      outputs: [...outputs],
    };
  }

  /** The first small input that succeeded (a copy); undefined until one has. */
  get knownGoodInput(): KnownGood | undefined {
    return this.knownGood;
  }

  /** The error the caller should get for `err`, a run failure of one request on its own. */
  async judge(err: ModelRunError): Promise<ServingError> {
    if (await this.modelWorks()) {
      return invalidArgument(
        `'${this.key}' cannot run this request's input, while it runs other inputs, so the input is the cause: ${err.message}`,
      );
    }
    return err;
  }

  private async modelWorks(): Promise<boolean> {
    const t = this.now();
    if (t - this.lastSuccessAt <= BLAME_WINDOW_MS) return true;
    if (t - this.lastProbeFailedAt <= BLAME_WINDOW_MS || !this.knownGood) return false;
    this.probe ??= this.runProbe(this.knownGood).then(
      () => {
        this.lastSuccessAt = this.now();
        return true;
      },
      () => {
        this.lastProbeFailedAt = this.now();
        return false;
      },
    ).finally(() => (this.probe = undefined));
    return this.probe;
  }
}
