/**
 * The one internal request every front door produces and the one result the pipeline gives back.
 */
import type { Span } from '@opentelemetry/api';
import type { CancelSignal } from './cancellation';
import type { InferTensor } from './tensor';

export interface LabelScore {
  label: string;
  score: number;
}

/** What a text classification pipeline (src/pipelines) makes of a model's scores. */
export interface TextClassification {
  label: string;
  confidence: number;
  labels: LabelScore[];
}

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
  signal?: CancelSignal;
  requestId: string;
  /** The caller's own request key, when it gave one: a canary split sends the same key to the same version. */
  routingKey?: string;
  /** Queue priority, 1 = highest; 0/undefined = the model's default. */
  priority?: number;
  /** Queue timeout in ms; 0/undefined = the model's default. */
  timeoutMs?: number;
  /** Neither read nor fill the result cache. */
  bypassCache?: boolean;
  /** Called once when the request leaves the queue for execution (never for a cache hit): an async job is then running. */
  onDispatch?: () => void;
  /**
   * The id live accuracy (src/feedback) remembers this prediction by, for feedback to name it: set only where
   * the caller learns it (ModelService returns its request_id; v2 echoes an id only when the caller sent one).
   */
  feedbackId?: string;
  /** Not a prediction a caller sees (an explanation's occlusion rows): live accuracy neither counts nor remembers it. */
  unobserved?: boolean;
  /**
   * The request's span (the front door's SERVER span, or an async job's span): the pipeline and the scheduler
   * put their figures on it and link the execution to it. Passed by hand, not found in an active context: the
   * server propagates no context across async steps (src/telemetry/sync-context.ts says why).
   */
  span?: Span;
}

export interface InferenceResult {
  model: string;
  version: string;
  outputs: InferTensor[];
  text?: TextClassification;
  cached: boolean;
  computeMs: number;
  /** Requests and rows in the execution that served this request (1 and its own rows when not batched). */
  batchRequests: number;
  batchRows: number;
  queueMs: number;
}
