/**
 * The tensorgate.v1.ModelService front door: translates gRPC messages to the internal request and back.
 * Nothing here decides anything about inference; the pipeline does.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { notFound, unimplemented } from '../../core/errors';
import type { InferencePipeline } from '../../core/pipeline';
import type { ModelRepository } from '../../repository/model-repository';
import type { BreakerRegistry } from '../../resilience/circuit-breaker';
import { modelInfoToProto } from './model-info';
import { toGrpcError } from './status';
import { tensorFromProto, tensorToProto, type ProtoTensor } from './tensor-codec';
import type { Logger } from '../../log';

interface PredictRequestMessage {
  model: string;
  version: string;
  inputs: ProtoTensor[];
  input_text: string;
  outputs: string[];
  options: { request_id: string; priority: number; timeout_us: number; bypass_cache: boolean } | null;
}

/** Aborts when the call is cancelled or its deadline passes (grpc-js reports both as 'cancelled'). */
export function callSignal(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): AbortSignal {
  const controller = new AbortController();
  if (call.cancelled) controller.abort();
  else call.once('cancelled', () => controller.abort());
  return controller.signal;
}

export function callDeadline(call: grpc.ServerUnaryCall<unknown, unknown>): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

export function createModelService(
  pipeline: InferencePipeline,
  repository: ModelRepository,
  breakers: BreakerRegistry,
  log: Logger,
): grpc.UntypedServiceImplementation {
  return {
    Predict(call: grpc.ServerUnaryCall<PredictRequestMessage, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const req = call.request;
      const requestId = req.options?.request_id || randomUUID();
      const started = performance.now();
      log.debug({ rpc: 'Predict', model: req.model, version: req.version, requestId }, 'request received');
      const finish = (code: grpc.status, details?: string) =>
        log.debug({ rpc: 'Predict', model: req.model, version: req.version, requestId, code: grpc.status[code], ms: performance.now() - started, details });
      let inputs;
      try {
        inputs = req.inputs.map(tensorFromProto);
      } catch (err) {
        const e = toGrpcError(err);
        finish(e.code!, e.details);
        callback(e);
        return;
      }
      pipeline
        .predict({
          model: req.model,
          version: req.version,
          inputs,
          text: req.input_text,
          outputs: req.outputs,
          deadline: callDeadline(call),
          signal: callSignal(call),
          requestId,
          priority: req.options?.priority ?? 0,
          timeoutMs: (req.options?.timeout_us ?? 0) / 1000,
          bypassCache: req.options?.bypass_cache ?? false,
        })
        .then(
          (result) => {
            finish(grpc.status.OK);
            callback(null, {
              model: result.model,
              version: result.version,
              outputs: result.outputs.map(tensorToProto),
              output_text: result.text?.label ?? '',
              confidence: result.text?.confidence ?? 0,
              labels: result.text?.labels ?? [],
              cached: result.cached,
              request_id: requestId,
            });
          },
          (err: unknown) => {
            const e = toGrpcError(err);
            finish(e.code!, e.details);
            callback(e);
          },
        );
    },

    Generate(call: grpc.ServerWritableStream<unknown, unknown>) {
      call.emit('error', toGrpcError(unimplemented('Generate is not implemented yet in this server version; use Predict')));
    },

    ListModels(call: grpc.ServerUnaryCall<{ ready_only: boolean }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const models = repository
        .list()
        .filter((m) => !call.request.ready_only || repository.defaultVersion(m) !== undefined)
        .map((m) => modelInfoToProto(m, repository, breakers));
      callback(null, { models });
    },

    GetModel(call: grpc.ServerUnaryCall<{ model: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const entry = repository.get(call.request.model);
      if (!entry) {
        const names = repository.list().map((m) => m.name).join(', ') || '(none)';
        callback(toGrpcError(notFound(`model '${call.request.model}' not found; available models: ${names}`)));
        return;
      }
      callback(null, modelInfoToProto(entry, repository, breakers));
    },
  };
}
