/**
 * Our status codes -> HTTP status: the one table HTTP front doors answer failures with, following the
 * mapping Google APIs and grpc-gateway use (google.rpc.Code), so a REST client sees what a gRPC one would.
 */
import { Code, retryAfterMsOf, ServingError } from '../../core/errors';

export const HTTP_STATUS: Readonly<Record<Code, number>> = {
  OK: 200,
  CANCELLED: 499, // client closed request
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};

/**
 * The HTTP status, JSON body and headers for a failure: `{ error, code }`, the message already bounded by
 * ServingError; a refusal with a known wait (a rate limit) says it in `Retry-After` (whole seconds).
 */
export function toHttpError(err: unknown): { status: number; body: { error: string; code: Code }; headers: Record<string, string> } {
  const e = ServingError.from(err);
  const retryAfterMs = retryAfterMsOf(e);
  const headers: Record<string, string> = retryAfterMs === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) };
  return { status: HTTP_STATUS[e.code], body: { error: e.message, code: e.code }, headers };
}
