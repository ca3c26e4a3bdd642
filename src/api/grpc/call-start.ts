/**
 * The gRPC side of the request envelope (src/api/envelope.ts): how a gRPC call is described to it (trace
 * context from the `traceparent`/`tracestate` metadata, the RPC semantic-convention attributes, the status
 * attribute) and how an outcome is written back as a unary answer.
 */
import type * as grpc from '@grpc/grpc-js';
import type { CallStart, Outcome } from '../envelope';
import type { RequestRecord } from '../request-record';
import { ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM } from '../../telemetry/semconv';
import { extractContext, metadataGetter } from '../../telemetry/tracing';
import { GRPC_STATUS, toGrpcError } from './status';
import { principalOf } from '../../security/call-principal';

export function grpcCallStart(call: { metadata: grpc.Metadata }, service: string, record: RequestRecord): CallStart {
  return {
    record,
    spanName: `${service}/${record.method}`,
    parent: extractContext(call.metadata, metadataGetter),
    attributes: { [ATTR_RPC_SYSTEM]: 'grpc', [ATTR_RPC_SERVICE]: service, [ATTR_RPC_METHOD]: record.method },
    statusAttributes: (code) => ({ [ATTR_RPC_GRPC_STATUS_CODE]: GRPC_STATUS[code] }),
    principal: principalOf(call.metadata),
  };
}

/** Writes an outcome as a unary call's answer: the response, or the status the outcome's code maps to. */
export function answerUnary<T>(callback: grpc.sendUnaryData<T>): (outcome: Outcome<T>) => void {
  return (outcome) => (outcome.ok ? callback(null, outcome.value) : callback(toGrpcError(outcome.error)));
}
