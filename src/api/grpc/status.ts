/**
 * Our status codes -> gRPC status: the one table the gRPC front door turns failures into wire errors with.
 */
import * as grpc from '@grpc/grpc-js';
import { Code, retryAfterMsOf, ServingError } from '../../core/errors';

/** The names are gRPC's own, so the table is an identity by name; spelled out so a new code cannot slip by. */
export const GRPC_STATUS: Readonly<Record<Code, grpc.status>> = {
  OK: grpc.status.OK,
  CANCELLED: grpc.status.CANCELLED,
  UNKNOWN: grpc.status.UNKNOWN,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  ABORTED: grpc.status.ABORTED,
  OUT_OF_RANGE: grpc.status.OUT_OF_RANGE,
  UNIMPLEMENTED: grpc.status.UNIMPLEMENTED,
  INTERNAL: grpc.status.INTERNAL,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DATA_LOSS: grpc.status.DATA_LOSS,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
};

export function toGrpcError(err: unknown): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const e = ServingError.from(err);
  const retryAfterMs = retryAfterMsOf(e);
  if (retryAfterMs === undefined) return { code: GRPC_STATUS[e.code], details: e.message };
  // The wait in the trailers: as HTTP's Retry-After (whole seconds) and as gRPC's retry pushback, which a
  // client's retry policy (A6) waits for before retrying.
  const metadata = new grpc.Metadata();
  metadata.set('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  metadata.set('grpc-retry-pushback-ms', String(Math.ceil(retryAfterMs)));
  return { code: GRPC_STATUS[e.code], details: e.message, metadata };
}
