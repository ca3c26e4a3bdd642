/**
 * One error type for the whole pipeline. Every failure a caller can see is a ServingError with a gRPC
 * status code and a message that names what was wrong and what was expected; the front doors map it to
 * their wire format (gRPC status, later HTTP status) and nothing else.
 */
import { status } from '@grpc/grpc-js';

export { status as Code };

export class ServingError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'ServingError';
  }

  /** Wraps anything thrown into a ServingError; unknown failures are INTERNAL with their message. */
  static from(err: unknown, fallback: status = status.INTERNAL): ServingError {
    if (err instanceof ServingError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new ServingError(fallback, message);
  }
}

export const invalidArgument = (message: string) => new ServingError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new ServingError(status.NOT_FOUND, message);
export const unavailable = (message: string) => new ServingError(status.UNAVAILABLE, message);
export const internal = (message: string) => new ServingError(status.INTERNAL, message);
export const resourceExhausted = (message: string) => new ServingError(status.RESOURCE_EXHAUSTED, message);
export const deadlineExceeded = (message: string) => new ServingError(status.DEADLINE_EXCEEDED, message);
export const cancelled = (message: string) => new ServingError(status.CANCELLED, message);
export const unimplemented = (message: string) => new ServingError(status.UNIMPLEMENTED, message);
