/**
 * InlineSessions: ONNX Runtime sessions on the main thread, for model versions whose runs are so short that
 * handing one to a worker thread costs more than the run itself (measured on a 2-core VM at one request
 * at a time: the main thread spends hundreds of µs per hand-off, most of it in postMessage waking the
 * worker, against ~10-50 us for an `mlp` run). scheduling/placement.ts decides which versions run here,
 * from their measured run times; a run here blocks the event loop for its duration, so only runs of
 * microseconds ever do.
 *
 * A session is created on first use (the placement decision), with one intra-op thread and no inter-op
 * pool: a thread pool's spinning workers would compete with the event loop for the cores.
 */
import { ModelRunError } from '../core/errors';
import type { InferTensor } from '../core/tensor';
import type { SessionSettings } from './messages';
import { NativeSession } from './ort-session';

export interface InlineRun {
  outputs: InferTensor[];
  computeMs: number;
}

/** Warm-up runs of a new session: its first runs allocate and are several times slower (measured: 700 us, then 150, then ~10 for `mlp`). */
const WARMUP_RUNS = 8;

export class InlineSessions {
  private readonly sessions = new Map<string, NativeSession>();

  /**
   * Creates `key`'s main-thread session (blocks for the load: a few ms for a model cheap enough to run
   * here), then runs `warmup` WARMUP_RUNS times so its first slow runs do not count against it.
   */
  load(key: string, path: string, settings: SessionSettings, warmup?: { inputs: InferTensor[]; outputs: string[] }): void {
    if (this.sessions.has(key)) return;
    this.sessions.set(key, new NativeSession(path, { ...settings, intraOpThreads: 1, interOpThreads: 1 }));
    try {
      for (let i = 0; warmup && i < WARMUP_RUNS; i++) this.run(key, warmup.inputs, warmup.outputs);
    } catch (err) {
      this.unload(key);
      throw err;
    }
  }

  unload(key: string): void {
    this.sessions.get(key)?.dispose();
    this.sessions.delete(key);
  }

  close(): void {
    for (const key of [...this.sessions.keys()]) this.unload(key);
  }

  /** Runs synchronously on this thread. A failure is a ModelRunError, as on a worker. */
  run(key: string, inputs: readonly InferTensor[], outputs: readonly string[]): InlineRun {
    const session = this.sessions.get(key);
    if (!session) throw new Error(`no main-thread session for '${key}'`);
    try {
      return session.run(inputs, outputs);
    } catch (err) {
      throw new ModelRunError(`ONNX Runtime failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
