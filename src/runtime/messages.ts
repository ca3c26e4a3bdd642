/**
 * The message protocol between the main thread and the inference workers. Numeric tensor data moves as
 * transferred ArrayBuffers (zero-copy ownership hand-over), never as structured-clone copies.
 */
import type { DataTypeName } from '../core/dtype';
import type { TensorSpec } from '../core/tensor';
import type { GenDrop, GenJoin, GenTokens } from '../generation/step-messages';

/** A tensor crossing the thread boundary: `buffer` holds exactly the element bytes, from offset 0. */
export interface WireTensor {
  name: string;
  dtype: DataTypeName;
  shape: number[];
  buffer: ArrayBuffer;
  strings?: string[];
}

export interface SessionSettings {
  intraOpThreads: number;
  interOpThreads: number;
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode: 'sequential' | 'parallel';
  executionProviders: string[];
  /**
   * The model file's pinned sha256 (config.yaml `versions`), when it has one: every session of it, on every
   * worker (a replacement included) and inline, loads the very bytes it has just hashed (src/runtime/ort-session.ts).
   */
  sha256?: string;
  /**
   * false: the session's intra-op pool threads sleep as soon as a parallel section ends instead of spinning for
   * more work (ONNX Runtime's default), so they take no CPU from runs on other threads between sections. Solo
   * sessions (execution-pool.ts) set it: they must not slow the other workers' runs that start after them.
   */
  intraOpSpinning?: boolean;
  /** Why this session may never have a solo twin (config.yaml fixes its threads, ...); undefined when it may (execution-pool.ts loadSolo). */
  soloIneligible?: string;
}

/** Runs a new session makes before it answers 'loaded' (config.yaml `warmup`): `count` times these inputs. */
export interface WarmupRun {
  name: string;
  count: number;
  inputs: WireTensor[];
}

export type WorkerRequest =
  | { type: 'load'; id: number; key: string; path: string; settings: SessionSettings; warmup?: WarmupRun[] }
  /** A second session of a loaded `key` with more threads, for solo runs (execution-pool.ts); answered 'loaded'. */
  | { type: 'load-solo'; id: number; key: string; path: string; settings: SessionSettings; warmup: WarmupRun[] }
  | { type: 'unload'; id: number; key: string }
  /** Drops `key`'s solo session (measured not clearly faster); no reply. */
  | { type: 'unload-solo'; id: number; key: string }
  | {
      type: 'run';
      id: number;
      key: string;
      inputs: WireTensor[];
      outputs: string[];
      /** Epoch ms after which the caller no longer wants the answer; the worker skips such work. */
      deadline: number | undefined;
      /** Run on `key`'s solo session (loaded with 'load-solo'). */
      solo?: boolean;
    }
  | { type: 'stats'; id: number }
  /** Whether this worker's decode loop may step on its solo sessions: no other worker has work (execution-pool.ts); no reply. */
  | { type: 'solo-hint'; id: number; alone: boolean }
  /** Sequences joining or leaving the batch this worker decodes for `key` (generation/decode-loop.ts); no reply. */
  | ({ type: 'gen-join'; id: number } & GenJoin)
  | ({ type: 'gen-drop'; id: number } & GenDrop)
  /** Every sequence of this worker is dropped and its decode loop stops; answered 'halted' (between steps). */
  | { type: 'gen-halt'; id: number }
  /** For tests of recovery: the worker thread exits (from JavaScript) when it next starts a run of `key`. */
  | { type: 'exit-on-run'; id: number; key: string };

export interface WorkerStats {
  /** Executions per session key since the worker started. */
  runs: Record<string, number>;
  /** Runs skipped because their deadline had passed when the worker got to them. */
  skippedExpired: number;
  /** Warm-up runs made per session key when it was loaded. */
  warmupRuns: Record<string, number>;
}

export type WorkerResponse =
  | { type: 'loaded'; id: number; inputs: TensorSpec[]; outputs: TensorSpec[] }
  | { type: 'unloaded'; id: number }
  | { type: 'armed'; id: number }
  | { type: 'halted'; id: number }
  | { type: 'result'; id: number; outputs: WireTensor[]; computeMs: number }
  | { type: 'stats'; id: number; stats: WorkerStats }
  /** Unsolicited (id 0), after every decode step. */
  | ({ type: 'gen-tokens'; id: number } & GenTokens)
  /** `kind` tells the pool how to map the failure to a status: a load problem, a run failure, or expiry. */
  | { type: 'error'; id: number; kind: 'load' | 'run' | 'expired' | 'protocol'; message: string };
