/**
 * What the main thread's sequence scheduler and a worker's decode engine say to each other once per
 * decode step. The KV cache never crosses: only the rows joining (their prompt and sampling settings),
 * the rows leaving, and the one token per row each step chose.
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

export interface GenStepRequest {
  key: string;
  /** Sent with every step that admits rows (the engine is created from it on first use). */
  layout?: DecoderLayout;
  admit: AdmitRow[];
  /** Rows to drop before this step: cancelled, or their stop string matched on the main thread. */
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
