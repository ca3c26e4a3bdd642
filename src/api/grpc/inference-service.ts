/**
 * The inference.GRPCInferenceService front door (Open Inference Protocol v2, with Triton's extensions):
 * decodes v2 messages into the shared v2 request (src/api/v2) and runs it through the same envelope and
 * pipeline as ModelService. Nothing here decides anything about inference.
 */
import type * as grpc from '@grpc/grpc-js';
import type { ServerSurfaceCall } from '@grpc/grpc-js/build/src/server-call';
import type { Span } from '@opentelemetry/api';
import { ServingError, clip, invalidArgument } from '../../core/errors';
import type { CancelSignal } from '../../core/cancellation';
import { ATTR_REQUEST_ID } from '../../telemetry/semconv';
import type { RequestRecord } from '../request-record';
import type { Principal } from '../../security/principal';
import { toInferenceRequest, toV2Response } from '../v2/v2-infer';
import { modelMetadata, modelReady, repositoryIndex, serverMetadata, serverReady } from '../v2/v2-models';
import { refuseRepositoryParameters, statisticsOf, type V2Parts } from '../v2/v2-control';
import { grpcCallStart } from './call-start';
import { GRPC_PARAMETERS, inferRequestFromProto, inferResponseToProto, rawOutputs, type ModelInferRequestMessage } from './infer-codec';
import { callDeadline, callSignal, resultFields } from './model-service';
import { INFERENCE_SERVICE_NAME, UndecodableRequest } from './protos';
import { unaryCalls } from './unary-calls';

export type InferenceServiceParts = V2Parts;

type Unary<Req> = (call: grpc.ServerUnaryCall<Req, unknown>, callback: grpc.sendUnaryData<unknown>) => void;
type NameVersion = { name: string; version: string };

export function createInferenceService(parts: InferenceServiceParts): grpc.UntypedServiceImplementation {
  const { pipeline, repository, readiness, envelope } = parts;
  const unary = unaryCalls(envelope, INFERENCE_SERVICE_NAME);

  /** A unary RPC whose answer is computed from the request alone. */
  const simple =
    <Req>(method: string, body: (req: Req, record: RequestRecord, who: Principal | undefined) => unknown | Promise<unknown>, model?: (req: Req) => string): Unary<Req> =>
    (call, callback) => {
      if (unary.refuseUndecodable(call, callback)) return;
      const record = unary.record(method, model?.(call.request) ?? '');
      unary.serve(call, callback, record, async (_span, who) => body(call.request, record, who));
    };

  /** One inference: the v2 request through the pipeline, answered in the request's output form. */
  const infer = async (msg: ModelInferRequestMessage, record: RequestRecord, call: ServerSurfaceCall, signal: CancelSignal, span: Span) => {
    const v2 = inferRequestFromProto(msg);
    const request = toInferenceRequest(v2, GRPC_PARAMETERS, { deadline: callDeadline(call), signal, span });
    record.requestId = request.requestId;
    const result = await pipeline.predict(request);
    Object.assign(record, resultFields(result));
    return inferResponseToProto(toV2Response(result, v2), rawOutputs(v2));
  };

  const inferRecord = (msg: ModelInferRequestMessage, method: string): RequestRecord => {
    const record = unary.record(method, msg.model_name, msg.model_version, msg.id || undefined);
    record.inference = true;
    return record;
  };

  return {
    ServerLive: simple('ServerLive', () => ({ live: true })),
    ServerReady: simple('ServerReady', () => ({ ready: serverReady(readiness) })),
    ModelReady: simple<NameVersion>('ModelReady', (r) => ({ ready: modelReady(readiness, r.name, r.version) }), (r) => r.name),
    ServerMetadata: simple('ServerMetadata', () => serverMetadata()),
    ModelMetadata: simple<NameVersion>('ModelMetadata', (r) => modelMetadata(repository, r.name, r.version), (r) => r.name),
    ModelConfig: simple<NameVersion>('ModelConfig', (r) => ({ config: parts.config(r.name, r.version) }), (r) => r.name),
    ModelStatistics: simple<NameVersion>('ModelStatistics', (r, _record, who) => ({ model_stats: statisticsOf(repository, parts.statistics, r.name, r.version, envelope.visibleTo(who)) }), (r) => r.name),
    RepositoryIndex: simple<{ ready: boolean }>('RepositoryIndex', async (r, _record, who) => ({ models: await repositoryIndex(repository, r.ready, envelope.visibleTo(who)) })),
    RepositoryModelLoad: simple<{ model_name: string; parameters: Record<string, unknown> }>(
      'RepositoryModelLoad',
      async (r) => {
        refuseRepositoryParameters(r.parameters);
        await parts.control.load(r.model_name);
        return {};
      },
      (r) => r.model_name,
    ),
    RepositoryModelUnload: simple<{ model_name: string; parameters: Record<string, unknown> }>(
      'RepositoryModelUnload',
      async (r) => {
        refuseRepositoryParameters(r.parameters);
        await parts.control.unload(r.model_name);
        return {};
      },
      (r) => r.model_name,
    ),

    ModelInfer(call: grpc.ServerUnaryCall<ModelInferRequestMessage, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (unary.refuseUndecodable(call, callback)) return;
      const record = inferRecord(call.request, 'ModelInfer');
      const cancellation = callSignal(call);
      unary.serve(
        call,
        callback,
        record,
        async (span) => {
          span.setAttribute(ATTR_REQUEST_ID, clip(call.request.id));
          return infer(call.request, record, call, cancellation.signal, span);
        },
        () => cancellation.release(),
      );
    },

    /**
     * Each request on the stream is served on its own (its own span, record and outcome); answers are written
     * as they finish, a failure as error_message, and the stream ends once the client has ended its side and
     * every answer is written.
     */
    ModelStreamInfer(call: grpc.ServerDuplexStream<ModelInferRequestMessage | UndecodableRequest, unknown>) {
      const cancellation = callSignal(call);
      let pending = 0;
      let clientDone = false;
      let closed = false;
      const finishIfDone = () => {
        if (clientDone && pending === 0 && !closed) {
          closed = true;
          cancellation.release();
          call.end();
        }
      };
      const write = (message: unknown) => {
        if (!closed && !call.cancelled) call.write(message);
      };
      call.on('data', (msg: ModelInferRequestMessage | UndecodableRequest) => {
        pending++;
        const isGarbage = msg instanceof UndecodableRequest;
        const record = isGarbage ? unary.record('ModelStreamInfer') : inferRecord(msg, 'ModelStreamInfer');
        const start = grpcCallStart(call, INFERENCE_SERVICE_NAME, record);
        const answer = (outcome: { ok: true; value: unknown } | { ok: false; error: ServingError }) => {
          write(outcome.ok ? { infer_response: outcome.value } : { error_message: outcome.error.message });
          pending--;
          finishIfDone();
        };
        if (isGarbage) envelope.refuse(start, invalidArgument(msg.describe()), answer);
        else envelope.serve(start, async (span) => infer(msg, record, call, cancellation.signal, span), answer);
      });
      call.on('end', () => {
        clientDone = true;
        finishIfDone();
      });
      call.on('error', () => {
        clientDone = true;
      });
    },
  };
}
