/**
 * How every gRPC service of ours serves a unary call: through the request envelope (SERVER span,
 * answer-once, access log, metrics, drain), with a request that did not decode refused INVALID_ARGUMENT
 * before its handler, logged and counted like any other call.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Span } from '@opentelemetry/api';
import { invalidArgument } from '../../core/errors';
import type { RequestEnvelope } from '../envelope';
import type { RequestRecord } from '../request-record';
import type { Principal } from '../../security/principal';
import { answerUnary, grpcCallStart } from './call-start';
import { UndecodableRequest } from './protos';

export interface UnaryCalls {
  /** A new record for a gRPC call of `method`. */
  record(method: string, model?: string, version?: string, requestId?: string): RequestRecord;
  /** Serves the call: `body`'s value is the response; `settled` runs once the outcome is known, before it is written. */
  serve(
    call: grpc.ServerUnaryCall<unknown, unknown>,
    callback: grpc.sendUnaryData<unknown>,
    record: RequestRecord,
    body: (span: Span, who: Principal | undefined) => Promise<unknown>,
    settled?: () => void,
  ): void;
  /** True (and the call answered) when the request did not decode. */
  refuseUndecodable(call: { request: unknown; metadata: grpc.Metadata }, callback: grpc.sendUnaryData<unknown>): boolean;
}

export function unaryCalls(envelope: RequestEnvelope, serviceName: string): UnaryCalls {
  const record = (method: string, model = '', version = '', requestId?: string): RequestRecord => {
    const r: RequestRecord = { protocol: 'grpc', method, model, version, code: 'OK', seconds: 0 };
    if (requestId) r.requestId = requestId;
    return r;
  };
  return {
    record,
    serve(call, callback, rec, body, settled) {
      const answer = answerUnary(callback);
      envelope.serve(grpcCallStart(call, serviceName, rec), body, (outcome) => {
        settled?.();
        answer(outcome);
      });
    },
    refuseUndecodable(call, callback) {
      const request = call.request;
      if (!(request instanceof UndecodableRequest)) return false;
      envelope.refuse(grpcCallStart(call, serviceName, record(request.method)), invalidArgument(request.describe()), answerUnary(callback));
      return true;
    },
  };
}
