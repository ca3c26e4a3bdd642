/**
 * What the front doors report when a request ends, to the access log and the metrics: one record shape
 * for gRPC and HTTP alike.
 */
export interface RequestRecord {
  protocol: 'grpc' | 'http';
  /** "Predict", "ModelInfer", "GET /v2/models/{name}"... */
  method: string;
  /** '' when the request named no known model. */
  model: string;
  version: string;
  /** gRPC status name ("OK", "INVALID_ARGUMENT"...). */
  code: string;
  seconds: number;
  /** An inference request (Predict, ModelInfer, REST infer): counted by the v2 statistics extension. */
  inference?: boolean;
  requestId?: string;
  /** Who made the call ('key:alice', 'jwt:1234', 'cert:client-a'), when an access policy is in force; never a secret. */
  principal?: string;
  traceId?: string;
  cached?: boolean;
  batchRequests?: number;
  batchRows?: number;
  queueSeconds?: number;
  computeSeconds?: number;
  rows?: number;
  /** Generate: tokens in and out, and why the sequence ended. */
  promptTokens?: number;
  completionTokens?: number;
  finishReason?: string;
  details?: string;
}

export type RequestObserver = (record: RequestRecord) => void;
