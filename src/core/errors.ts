/**
 * One error type for the whole pipeline. Every failure a caller can see is a ServingError with one of our
 * status codes and a message that names what was wrong and what was expected; each front door maps the code
 * to its wire with one table (src/api/grpc/status.ts, src/api/http/status.ts) and nothing else.
 */

/**
 * Our status codes: the canonical names gRPC and Google APIs share, as strings, so logs, metrics labels and
 * both wire mappings read the same and nothing below the front doors depends on a transport library.
 */
export const Code = {
  OK: 'OK',
  CANCELLED: 'CANCELLED',
  UNKNOWN: 'UNKNOWN',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  FAILED_PRECONDITION: 'FAILED_PRECONDITION',
  ABORTED: 'ABORTED',
  OUT_OF_RANGE: 'OUT_OF_RANGE',
  UNIMPLEMENTED: 'UNIMPLEMENTED',
  INTERNAL: 'INTERNAL',
  UNAVAILABLE: 'UNAVAILABLE',
  DATA_LOSS: 'DATA_LOSS',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
} as const;
export type Code = (typeof Code)[keyof typeof Code];

/**
 * The codes that say the server failed, not the caller (OpenTelemetry's RPC conventions for server spans).
 * One table for all who ask: the access log warns on them, the SERVER span is an error, and the circuit
 * breaker counts them (src/resilience/circuit-breaker.ts isServerFault, which counts DEADLINE_EXCEEDED only
 * when the model itself ran out of time).
 */
export const SERVER_ERROR_CODES: ReadonlySet<string> = new Set<Code>([
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.UNIMPLEMENTED,
  Code.INTERNAL,
  Code.UNAVAILABLE,
  Code.DATA_LOSS,
]);

/**
 * The longest message a status carries. A status travels in HTTP/2 trailers, which clients cap (grpc-js:
 * 8 KiB of metadata by default); a longer one is dropped and the caller waits for its deadline instead.
 */
export const MAX_MESSAGE_CHARS = 1024;

export class ServingError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(boundMessage(message));
    this.name = 'ServingError';
  }

  /** Wraps anything thrown into a ServingError; unknown failures are INTERNAL with their message. */
  static from(err: unknown, fallback: Code = Code.INTERNAL): ServingError {
    if (err instanceof ServingError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new ServingError(fallback, message);
  }
}

/**
 * A failure inside ONNX Runtime's run of a model (not of the worker, not a timeout). It may be the model's
 * fault or the input's (an id beyond a vocabulary, a shape the graph cannot take); the scheduler decides
 * which before the caller sees it (src/scheduling/failure-blame.ts).
 */
export class ModelRunError extends ServingError {
  constructor(message: string) {
    super(Code.INTERNAL, message);
    this.name = 'ModelRunError';
  }
}

/** Marks failures that are the server's or model's doing although their code alone would not say so. */
export function markServerFault<E extends ServingError>(err: E): E {
  (err as E & { serverFault?: boolean }).serverFault = true;
  return err;
}

function boundMessage(message: string): string {
  if (message.length <= MAX_MESSAGE_CHARS) return message;
  const suffix = ` ... (${message.length} characters in all)`;
  return message.slice(0, MAX_MESSAGE_CHARS - suffix.length) + suffix;
}

/**
 * A client-supplied value for a message or log line: quoted, and cut to a short prefix plus its length
 * when long, so a 1 MiB name cannot make a status or a log line 1 MiB.
 */
export function echo(value: unknown, max = 64): string {
  const text = typeof value === 'string' ? value : String(value);
  if (text.length <= max) return `'${text}'`;
  return `'${text.slice(0, max)}...' (${text.length} characters)`;
}

/** `text` cut to `max` characters plus a note of its length: for log fields and span attributes. */
export function clip(text: string, max = 128): string {
  return text.length <= max ? text : `${text.slice(0, max)}...(${text.length} characters)`;
}

export const invalidArgument = (message: string) => new ServingError(Code.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new ServingError(Code.NOT_FOUND, message);
export const unavailable = (message: string) => new ServingError(Code.UNAVAILABLE, message);
export const internal = (message: string) => new ServingError(Code.INTERNAL, message);
export const resourceExhausted = (message: string) => new ServingError(Code.RESOURCE_EXHAUSTED, message);
export const deadlineExceeded = (message: string) => new ServingError(Code.DEADLINE_EXCEEDED, message);
export const cancelled = (message: string) => new ServingError(Code.CANCELLED, message);
export const unimplemented = (message: string) => new ServingError(Code.UNIMPLEMENTED, message);
export const permissionDenied = (message: string) => new ServingError(Code.PERMISSION_DENIED, message);

/**
 * A refusal the caller may retry after a known wait (a rate limit): the front doors send the wait as HTTP
 * `Retry-After` and as gRPC trailers `retry-after` (seconds, as HTTP) and `grpc-retry-pushback-ms` (which
 * gRPC's own retry policy honours).
 */
export class RetryLaterError extends ServingError {
  constructor(
    code: Code,
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(code, message);
    this.name = 'RetryLaterError';
  }
}

export const retryAfterMsOf = (err: unknown): number | undefined => (err instanceof RetryLaterError ? err.retryAfterMs : undefined);
