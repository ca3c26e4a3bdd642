/**
 * The one internal request every front door produces and the one result the pipeline gives back.
 */
import type { TextClassification } from '../pipelines/text-classification';
import type { InferTensor } from './tensor';

export interface InferenceRequest {
  model: string;
  /** Undefined or '' = the newest version the model's policy serves. */
  version?: string;
  inputs: InferTensor[];
  /** Text for models with a text pipeline; exclusive with `inputs`. */
  text?: string;
  /** Output names; empty = all. */
  outputs: string[];
  /** Epoch ms; undefined = none. */
  deadline?: number;
  /** Aborted when the caller goes away. */
  signal?: AbortSignal;
  requestId: string;
}

export interface InferenceResult {
  model: string;
  version: string;
  outputs: InferTensor[];
  text?: TextClassification;
  cached: boolean;
  computeMs: number;
}
