/**
 * The execution pool's public shapes (execution-pool.ts): its options, what a run takes and gives back, and
 * the events it emits.
 */
import type { InferTensor, TensorSpec } from '../core/tensor';
import type { GenTokens } from '../generation/step-messages';

export interface ExecutionPoolOptions {
  /** Number of worker threads; default: one per core, at most 4. */
  workers?: number;
  /** Concurrent runs handed to one worker; more than 1 only pipelines message hops. Default 1. */
  slotsPerWorker?: number;
  /** Intra-op threads of a solo session (see loadSolo); 1 (the default) = no solo sessions. */
  soloThreads?: number;
}

export interface LoadedSession {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface RunOptions {
  /** Epoch ms after which the worker skips the run. */
  deadline?: number;
  /** Execution timeout in ms; 0/undefined = none. */
  timeoutMs?: number;
  /** The input buffers are owned whole by this call and may be transferred without a copy. */
  transferInputs?: boolean;
  /** Run on the key's solo session when it has one and no worker is busy (see loadSolo). */
  solo?: boolean;
}

/** A worker still busy this many execution timeouts after a run started is terminated and replaced. */
export const STUCK_FACTOR = 5;

export interface RunResult {
  outputs: InferTensor[];
  computeMs: number;
  /** The run used the key's solo session. */
  solo?: boolean;
  /** It started while no worker had anything else to do (a solo session's baseline, see loadSolo). */
  alone?: boolean;
}

/** What the pool reports; `index` is a worker's slot (stable across its replacements). */
export interface ExecutionPoolEvents {
  'slot-free': [];
  'run-start': [key: string, index: number];
  'worker-restarted': [index: number];
  /** A replacement worker could not load one of the sessions back (e.g. its pinned file changed): it serves without it. */
  'session-restore-failed': [failure: { index: number; key: string; reason: string }];
  'worker-error': [event: { index: number; error: Error }];
  'execution-timeout': [key: string, index: number];
  'worker-stuck': [index: number, key: string];
  /** A worker's decode step finished (generation/decode-loop.ts). */
  'gen-tokens': [index: number, tokens: GenTokens];
  /** A worker thread exited: whatever it held (sequences being decoded) is gone. */
  'worker-exit': [index: number];
}
