/**
 * The tensorgate.v1.ModelService front door: translates gRPC messages to the internal request and back.
 * Nothing here decides anything about inference; the pipeline does.
 */
import * as grpc from '@grpc/grpc-js';
import type { ServerSurfaceCall } from '@grpc/grpc-js/build/src/server-call';
import type { Span } from '@opentelemetry/api';
import { randomUUID } from 'node:crypto';
import { Cancellation, type CancelSignal } from '../../core/cancellation';
import { clip, Code, echo, invalidArgument, ServingError } from '../../core/errors';
import type { InferencePipeline } from '../../serving/inference-pipeline';
import type { GenerationPipeline } from '../../serving/generation-pipeline';
import { generateRequestFromProto, generateResponses, type GenerateRequestMessage } from './generate-codec';
import { canaryStatus, modelInfoToProto, type ServingState } from './model-info';
import { MODEL_SERVICE_NAME, UndecodableRequest } from './protos';
import { grpcCallStart } from './call-start';
import { unaryCalls } from './unary-calls';
import type { Outcome, RequestEnvelope } from '../envelope';
import { ATTR_REQUEST_ID } from '../../telemetry/semconv';
import type { InferenceResult } from '../../core/request';
import type { RequestRecord } from '../request-record';
import { toGrpcError } from './status';
import { tensorFromProto, tensorToProto, type ProtoTensor } from './tensor-codec';
import type { Logger } from '../../log';

interface PredictRequestMessage {
  model: string;
  version: string;
  inputs: ProtoTensor[];
  input_text: string;
  outputs: string[];
  /** timeout_us is uint64: an exact decimal string from the server's decoder. */
  options: { request_id: string; priority: number; timeout_us: number | string; bypass_cache: boolean } | null;
}

/**
 * A signal that aborts when the call is cancelled or its deadline passes (grpc-js reports both as
 * 'cancelled'). grpc-js also emits 'cancelled' after a call finished normally, so `release()` must be
 * called once the answer is known, or every finished call would run the pipeline's abort listeners.
 */
export function callSignal(call: ServerSurfaceCall): {
  signal: CancelSignal;
  release: () => void;
} {
  const controller = new Cancellation();
  const onCancelled = () => controller.abort();
  if (call.cancelled) controller.abort();
  else call.once('cancelled', onCancelled);
  return { signal: controller, release: () => call.removeListener('cancelled', onCancelled) };
}

export function callDeadline(call: ServerSurfaceCall): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

export function createModelService(
  pipelines: { predict: InferencePipeline; generate: GenerationPipeline },
  state: ServingState,
  log: Logger,
  envelope: RequestEnvelope,
): grpc.UntypedServiceImplementation {
  const { repository } = state;
  const pipeline = pipelines.predict;

  const unary = unaryCalls(envelope, MODEL_SERVICE_NAME);
  const serveUnary = unary.serve;
  const newRecord = unary.record;
  const refuseUndecodable = unary.refuseUndecodable;

  const service: grpc.UntypedServiceImplementation = {
    Predict(call: grpc.ServerUnaryCall<PredictRequestMessage, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (refuseUndecodable(call, callback)) return;
      const req = call.request;
      const requestId = req.options?.request_id || randomUUID();
      const record = newRecord('Predict', req.model, req.version, requestId);
      record.inference = true;
      log.debug({ rpc: 'Predict', model: req.model, requestId }, 'request received');
      const cancellation = callSignal(call);
      serveUnary(
        call,
        callback,
        record,
        async (span) => {
          span.setAttribute(ATTR_REQUEST_ID, clip(requestId));
          const result = await pipeline.predict({
            model: req.model,
            version: req.version,
            inputs: req.inputs.map(tensorFromProto),
            text: req.input_text,
            outputs: req.outputs,
            deadline: callDeadline(call),
            signal: cancellation.signal,
            requestId,
            // Feedback (Feedback) can name this prediction by the id its caller gave it; a made-up id is not
            // remembered: that would cost every anonymous request a store entry (measured ~10 us of main-thread time
            // per request at c=64 on mlp) for feedback that almost never comes.
            ...(req.options?.request_id ? { routingKey: req.options.request_id, feedbackId: req.options.request_id } : {}),
            priority: req.options?.priority ?? 0,
            timeoutMs: Number(req.options?.timeout_us ?? 0) / 1000,
            bypassCache: req.options?.bypass_cache ?? false,
            span,
          });
          Object.assign(record, resultFields(result));
          return {
            model: result.model,
            version: result.version,
            outputs: result.outputs.map(tensorToProto),
            output_text: result.text?.label ?? '',
            confidence: result.text?.confidence ?? 0,
            labels: result.text?.labels ?? [],
            cached: result.cached,
            request_id: requestId,
          };
        },
        () => cancellation.release(),
      );
    },

    Generate(call: grpc.ServerWritableStream<GenerateRequestMessage | UndecodableRequest, unknown>) {
      const req = call.request;
      // A server stream ends with its status emitted as 'error'; the envelope logs and counts it like any call.
      const answerStream = (outcome: Outcome<unknown>) => {
        if (outcome.ok) call.end();
        else call.emit('error', toGrpcError(outcome.error));
      };
      if (req instanceof UndecodableRequest) {
        envelope.refuse(grpcCallStart(call, MODEL_SERVICE_NAME, newRecord(req.method)), invalidArgument(req.describe()), answerStream);
        return;
      }
      const requestId = req.options?.request_id || randomUUID();
      const record = newRecord('Generate', req.model, req.version, requestId);
      const cancellation = callSignal(call);
      envelope.serve(
        grpcCallStart(call, MODEL_SERVICE_NAME, record),
        async (span, who) => {
          span.setAttribute(ATTR_REQUEST_ID, clip(requestId));
          const request = generateRequestFromProto(req, { requestId, deadline: callDeadline(call), signal: cancellation.signal, callerLimits: who?.generationLimits, span });
          const usage = await pipelines.generate.generate(request, generateResponses(call, requestId, record));
          Object.assign(record, { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, finishReason: usage.finishReason });
        },
        (outcome) => {
          cancellation.release();
          answerStream(outcome);
        },
      );
    },

    ListModels(call: grpc.ServerUnaryCall<{ ready_only: boolean }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (refuseUndecodable(call, callback)) return;
      serveUnary(call, callback, newRecord('ListModels'), async (_span, who) => {
        const visible = envelope.visibleTo(who);
        const models = repository
          .list()
          .filter((m) => (!call.request.ready_only || repository.defaultVersion(m) !== undefined) && (!visible || visible(m.name)))
          .map((m) => modelInfoToProto(m, state));
        return { models };
      });
    },

    ControlCanary(call: grpc.ServerUnaryCall<{ model: string; action: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (refuseUndecodable(call, callback)) return;
      const { model, action } = call.request;
      serveUnary(call, callback, newRecord('ControlCanary', model), async () => {
        const entry = repository.entry(model);
        if (!state.canary.split(entry)) {
          throw new ServingError(Code.FAILED_PRECONDITION, `model '${entry.name}' has no canary split; give it one with canary: { weights: ... } in its config`);
        }
        if (action === 'PROMOTE') {
          if (state.canary.promote(entry, 'promoted by command (ControlCanary)') === undefined) {
            throw new ServingError(Code.FAILED_PRECONDITION, `model '${entry.name}' has no canary left to promote: ${JSON.stringify(state.canary.split(entry))}`);
          }
        } else if (action === 'ROLLBACK') {
          state.canary.rollBackAll(entry, 'rolled back by command (ControlCanary)');
        } else {
          throw invalidArgument(`action ${echo(action)} is not one of PROMOTE, ROLLBACK`);
        }
        return canaryStatus(entry.name, state.canary.split(entry));
      });
    },

    GetModel(call: grpc.ServerUnaryCall<{ model: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (refuseUndecodable(call, callback)) return;
      serveUnary(call, callback, newRecord('GetModel', call.request.model), async () =>
        modelInfoToProto(repository.entry(call.request.model), state),
      );
    },
  };
  return service;
}

/** The parts of a result the access log and metrics want. */
export function resultFields(result: InferenceResult): Partial<RequestRecord> {
  // A cache hit did no queueing or compute of its own (the stored figures are the original run's).
  if (result.cached) return { model: result.model, version: result.version, cached: true, rows: result.outputs[0]?.shape[0] };
  return {
    model: result.model,
    version: result.version,
    cached: result.cached,
    batchRequests: result.batchRequests,
    batchRows: result.batchRows,
    queueSeconds: result.queueMs / 1000,
    computeSeconds: result.computeMs / 1000,
    rows: result.outputs[0]?.shape[0],
  };
}
