/**
 * Runs a unary gRPC handler inside a SERVER span that continues the caller's W3C trace context (from the
 * `traceparent`/`tracestate` metadata), with the RPC semantic-convention attributes and the final status.
 */
import * as grpc from '@grpc/grpc-js';
import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { SERVER_ERROR_CODES, ServingError } from '../../core/errors';
import { GRPC_STATUS } from './status';
import { ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM } from '../../telemetry/semconv';
import { extractContext, metadataGetter, tracer } from '../../telemetry/tracing';

/**
 * Calls `body` with the span active; `body` resolves with the response or rejects with a status. Returns
 * the span's outcome so the caller can log and count it.
 */
export async function withServerSpan<T>(
  service: string,
  method: string,
  call: grpc.ServerUnaryCall<unknown, unknown>,
  body: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = extractContext(call.metadata, metadataGetter);
  const span = tracer().startSpan(
    `${service}/${method}`,
    { kind: SpanKind.SERVER, attributes: { [ATTR_RPC_SYSTEM]: 'grpc', [ATTR_RPC_SERVICE]: service, [ATTR_RPC_METHOD]: method } },
    parent,
  );
  try {
    const result = await context.with(trace.setSpan(parent, span), () => body(span));
    span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, grpc.status.OK);
    return result;
  } catch (err) {
    const e = ServingError.from(err);
    span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, GRPC_STATUS[e.code]);
    // Per the RPC conventions, server spans are errors only for server-side codes.
    if (SERVER_ERROR_CODES.has(e.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
    throw err;
  } finally {
    span.end();
  }
}
