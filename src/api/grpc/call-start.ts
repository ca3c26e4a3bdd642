/**
 * The gRPC side of the request envelope (src/api/envelope.ts): how a gRPC call is described to it (trace
 * context from the `traceparent`/`tracestate` metadata, the RPC semantic-convention attributes, the status
 * attribute) and how an outcome is written back as a unary answer.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Attributes } from '@opentelemetry/api';
import type { Code } from '../../core/errors';
import type { CallStart, Outcome } from '../envelope';
import type { RequestRecord } from '../request-record';
import { ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM } from '../../telemetry/semconv';
import { extractContext, metadataGetter } from '../../telemetry/tracing';
import { GRPC_STATUS, toGrpcError } from './status';
import { principalOf } from '../../security/call-principal';

export function grpcCallStart(call: { metadata: grpc.Metadata }, service: string, record: RequestRecord): CallStart {
  const method = describedMethod(service, record.method);
  return {
    record,
    spanName: method.spanName,
    parent: extractContext(call.metadata, metadataGetter),
    attributes: method.attributes,
    statusAttributes,
    principal: principalOf(call.metadata),
  };
}

const statusAttributes = (code: Code): Attributes => ({ [ATTR_RPC_GRPC_STATUS_CODE]: GRPC_STATUS[code] });

/** Span name and attributes per service and method, made once: the same for every call (the span copies them). */
const described = new Map<string, Map<string, { spanName: string; attributes: Attributes }>>();

function describedMethod(service: string, method: string): { spanName: string; attributes: Attributes } {
  let methods = described.get(service);
  if (!methods) described.set(service, (methods = new Map()));
  let d = methods.get(method);
  if (!d) {
    d = { spanName: `${service}/${method}`, attributes: Object.freeze({ [ATTR_RPC_SYSTEM]: 'grpc', [ATTR_RPC_SERVICE]: service, [ATTR_RPC_METHOD]: method }) };
    // Methods are the services' own names (refused calls included), so this stays as small as the services.
    methods.set(method, d);
  }
  return d;
}

/** Writes an outcome as a unary call's answer: the response, or the status the outcome's code maps to. */
export function answerUnary<T>(callback: grpc.sendUnaryData<T>): (outcome: Outcome<T>) => void {
  return (outcome) => (outcome.ok ? callback(null, outcome.value) : callback(toGrpcError(outcome.error)));
}
