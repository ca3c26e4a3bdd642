/**
 * ServingError -> gRPC status. The only place the gRPC front door turns failures into wire errors.
 */
import type * as grpc from '@grpc/grpc-js';
import { ServingError } from '../../core/errors';

export function toGrpcError(err: unknown): Partial<grpc.StatusObject> {
  const e = ServingError.from(err);
  return { code: e.code, details: e.message };
}
