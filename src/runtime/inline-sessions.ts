/**
 * InlineSessions: ONNX Runtime sessions on the main thread, for model versions whose runs are so short that
 * handing one to a worker thread costs more than the run itself (measured on a 2-core VM: a worker
 * hand-off costs the main thread ~100 us in postMessage alone at low load, and a wake-up of ~100 us more;
 * an `mlp` run costs 10 us). scheduling/placement.ts decides which versions run here, from their measured
 * run times; a run here blocks the event loop for its duration, so only runs of microseconds ever do.
 *
 * Why the binding's synchronous session rather than `InferenceSession.run`: the public run() defers every
 * run to a setImmediate (one more event-loop turn per request, and no way to time the run itself, which
 * the placement decision needs). The binding is onnxruntime-node's own documented "simple synchronized
 * inference session"; the package version is pinned, and test/inline-execution.test.ts compares every
 * byte with the worker path, so a change in it cannot pass unnoticed.
 *
 * A session is created on first use (the placement decision), with one intra-op thread and no inter-op
 * pool: a thread pool's spinning workers would compete with the event loop for the cores.
 */
import * as ort from 'onnxruntime-node';
import { binding, initOrt, type Binding } from 'onnxruntime-node/dist/binding';
import { ModelRunError } from '../core/errors';
import type { InferTensor } from '../core/tensor';
import type { SessionSettings } from './messages';
import { fromOrtTensor, sessionOptions, toOrtTensor } from './ort-session';

export interface InlineRun {
  outputs: InferTensor[];
  computeMs: number;
}

const WARMUP_RUNS = 8;

export class InlineSessions {
  private readonly sessions = new Map<string, { session: Binding.InferenceSession; outputNames: string[] }>();

  has(key: string): boolean {
    return this.sessions.has(key);
  }

  /**
   * Creates `key`'s main-thread session (blocks for the load: a few ms for a model cheap enough to run
   * here), then runs `warmup` WARMUP_RUNS times: a fresh session's first runs allocate and are several
   * times slower (measured: 700 us, then 150, then ~10 for `mlp`), which would count against it.
   */
  load(key: string, path: string, settings: SessionSettings, warmup?: { inputs: InferTensor[]; outputs: string[] }): void {
    if (this.sessions.has(key)) return;
    initOrt();
    const session = new binding.InferenceSession();
    session.loadModel(path, sessionOptions({ ...settings, intraOpThreads: 1, interOpThreads: 1 }));
    this.sessions.set(key, { session, outputNames: session.outputMetadata.map((m) => m.name) });
    try {
      for (let i = 0; warmup && i < WARMUP_RUNS; i++) this.run(key, warmup.inputs, warmup.outputs);
    } catch (err) {
      this.unload(key);
      throw err;
    }
  }

  unload(key: string): void {
    this.sessions.get(key)?.session.dispose();
    this.sessions.delete(key);
  }

  close(): void {
    for (const key of [...this.sessions.keys()]) this.unload(key);
  }

  /** Runs synchronously on this thread. A failure inside ONNX Runtime is a ModelRunError, as on a worker. */
  run(key: string, inputs: readonly InferTensor[], outputs: readonly string[]): InlineRun {
    const loaded = this.sessions.get(key);
    if (!loaded) throw new Error(`no main-thread session for '${key}'`);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = toOrtTensor({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.data, strings: t.strings });
    const fetches: Record<string, null> = {};
    for (const name of outputs.length > 0 ? outputs : loaded.outputNames) fetches[name] = null;
    const started = performance.now();
    let results: Record<string, ort.OnnxValue>;
    try {
      results = loaded.session.run(feeds, fetches, {});
    } catch (err) {
      throw new ModelRunError(`ONNX Runtime failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    const computeMs = performance.now() - started;
    const answer: InferTensor[] = [];
    for (const name of Object.keys(results)) {
      const t = fromOrtTensor(name, results[name]!);
      answer.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.bytes, ...(t.strings ? { strings: t.strings } : {}) });
    }
    return { outputs: answer, computeMs };
  }
}
