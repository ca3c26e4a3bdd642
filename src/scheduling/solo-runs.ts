/**
 * SoloRuns: whether one model version's executions may run "solo", on a session with every core of the
 * process (ExecutionPool.loadSolo), when nothing else runs or waits.
 *
 * The workers split the cores between them (two workers of one ONNX Runtime thread each on 2 cores), which
 * is right under load, when every worker has a run, and wasteful for a lone request of a model whose runs
 * take milliseconds: it runs on one core while the other idles. A solo run gives it both.
 *
 * - A version may never run solo when its config.yaml fixes its threads, when it runs on another execution
 *   provider, or when the pool cannot make a session with more threads than it already has.
 * - Its solo session is made once its typical run on a worker reaches SOLO_MIN_RUN_US (so a cheap model never
 *   pays a second session's memory), on the pool's solo worker, warmed up with a request it has served.
 * - An execution runs solo when the session is ready, the version's typical run is still that long, nothing
 *   else is queued (the pool checks that no worker is busy): under load every execution takes one core.
 */
import type { InferTensor } from '../core/tensor';
import type { WarmupRun } from '../runtime/messages';
import { toWire } from '../runtime/wire-tensors';

/** Typical worker run (µs) from which a version gets a solo session: below it, waking a second thread for
 *  each parallel section costs about what it saves (measured: `mlp` with two threads, ~20 µs runs, 21% slower). */
export const SOLO_MIN_RUN_US = 1000;
/** Warm-up runs of a new solo session (its first runs allocate and are several times slower). */
export const SOLO_WARMUP_RUNS = 4;

export type SoloState = 'off' | 'not_yet' | 'loading' | 'ready';

export class SoloRuns {
  state: SoloState;
  reason: string;
  /** Executions that ran solo. */
  runs = 0;

  constructor(
    ineligible: string | undefined,
    private readonly threads: number,
  ) {
    this.state = ineligible ? 'off' : 'not_yet';
    this.reason = ineligible ?? `a solo session with ${threads} threads is made once its runs take ${SOLO_MIN_RUN_US} µs or more`;
  }

  /** After a run on a worker: true (once) when the solo session should be made now. */
  shouldLoad(typicalRunUs: number): boolean {
    if (this.state !== 'not_yet' || typicalRunUs < SOLO_MIN_RUN_US) return false;
    this.state = 'loading';
    this.reason = `its runs take ${typicalRunUs.toFixed(0)} µs: a solo session with ${this.threads} threads is being made`;
    return true;
  }

  loaded(): void {
    this.state = 'ready';
    this.reason = `an execution with no other work running or waiting uses a session with ${this.threads} threads`;
  }

  failed(why: string): void {
    this.state = 'off';
    this.reason = `its solo session could not be made: ${why}`;
  }

  /** Whether an execution that starts now, with `othersWaiting` false, should ask for the solo session. */
  wants(typicalRunUs: number, othersWaiting: boolean): boolean {
    return this.state === 'ready' && !othersWaiting && typicalRunUs >= SOLO_MIN_RUN_US;
  }
}

/** A warm-up from one input the version has run (a solo session is made while serving, without config warm-ups of its own). */
export function soloWarmup(input: { inputs: readonly InferTensor[] } | undefined): WarmupRun[] {
  if (!input) return [];
  // Copied: the request's buffers stay with it (and a warm-up is kept, to make the session again on a replacement worker).
  const inputs = input.inputs.map((t) => toWire(t, [], false));
  return [{ name: 'a request it has served', count: SOLO_WARMUP_RUNS, inputs }];
}
