/**
 * What the main thread's sequence scheduler and a worker's decode loop say to each other. The KV cache
 * never crosses: only the rows joining (their prompt and sampling settings), the rows leaving, and, after
 * every step, the one token per row it chose. The worker steps on its own while it has rows (see
 * decode-loop.ts); joins and drops reach it between steps.
 */
import type { DecoderLayout } from './decoder-layout';
import type { SamplingParams } from './sampling';

/** A sequence joining the worker's batch: prefilled with its prompt, then decoded one token per step. */
export interface AdmitRow {
  seq: number;
  prompt: number[];
  params: SamplingParams;
  seed: bigint;
  /** Most tokens to generate. */
  maxNewTokens: number;
  /** Prompt + generated tokens may not exceed this (the model's positions, the config's limit). */
  maxLength: number;
  /** End-of-sequence tokens (ignored with ignoreEos) and the request's stop_token_ids. */
  eosTokenIds: number[];
  stopTokenIds: number[];
  ignoreEos: boolean;
}

/** Main thread -> worker: rows joining `key`'s batch (the engine is created from `layout` on first use). */
export interface GenJoin {
  key: string;
  layout: DecoderLayout;
  admit: AdmitRow[];
}

/** Main thread -> worker: rows to drop before the next step (cancelled, or their stop string matched). */
export interface GenDrop {
  key: string;
  drop: number[];
}

/** One step's work, as the engine takes it. */
export interface GenStepRequest {
  admit: AdmitRow[];
  drop: number[];
}

/** 'eos': an end-of-sequence or stop token; 'length': max tokens or the context is full. */
export type EngineFinish = 'eos' | 'length';

export interface StepToken {
  seq: number;
  token: number;
  /** Set when this token ends the row (the worker has already dropped it). */
  finish?: EngineFinish;
}

export interface GenStepReply {
  tokens: StepToken[];
  /** Rows that failed (their prefill or the batch's run threw); they are no longer in the batch. */
  failed: { seq: number; message: string }[];
  /** Time spent in ONNX Runtime during the step. */
  computeMs: number;
  /** Rows in the worker's batch after the step. */
  active: number;
}

/** Worker -> main thread, after every step of `key`. */
export interface GenTokens extends GenStepReply {
  key: string;
  /** The step ran on the worker's solo session (runtime/execution-pool.ts hintSolo). */
  solo?: boolean;
}
