/**
 * ModelService Explain and Feedback: translate their messages to the explainer (src/explain) and live
 * accuracy (src/feedback) and back, through the same unary envelope as Predict. The answers are the very
 * objects REST /v2/models/{m}/explain and /feedback send as JSON, so both doors give the same numbers.
 */
import type * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { clip } from '../../core/errors';
import type { OcclusionExplainer } from '../../explain/occlusion';
import type { LiveAccuracy } from '../../feedback/live-accuracy';
import { ATTR_REQUEST_ID } from '../../telemetry/semconv';
import { callDeadline, callSignal, resultFields } from './model-service';
import type { RequestEnvelope } from '../envelope';
import { MODEL_SERVICE_NAME } from './protos';
import { unaryCalls } from './unary-calls';

interface ExplainRequestMessage {
  model: string;
  version: string;
  text: string;
  label: string;
  /** timeout_us is uint64: an exact decimal string from the server's decoder. */
  options: { request_id: string; priority: number; timeout_us: number | string; bypass_cache: boolean } | null;
}

interface FeedbackRequestMessage {
  model: string;
  request_id: string;
  label: string;
}

export interface InsightParts {
  explainer: OcclusionExplainer;
  liveAccuracy: LiveAccuracy;
}

/** The two methods, to be served with the rest of ModelService (createModelService). */
export function insightCalls(envelope: RequestEnvelope, parts: InsightParts): grpc.UntypedServiceImplementation {
  const unary = unaryCalls(envelope, MODEL_SERVICE_NAME);
  return {
    Explain(call: grpc.ServerUnaryCall<ExplainRequestMessage, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (unary.refuseUndecodable(call, callback)) return;
      const req = call.request;
      const requestId = req.options?.request_id || randomUUID();
      const record = unary.record('Explain', req.model, req.version, requestId);
      record.inference = true;
      const cancellation = callSignal(call);
      unary.serve(
        call,
        callback,
        record,
        async (span) => {
          span.setAttribute(ATTR_REQUEST_ID, clip(requestId));
          const { explanation, result } = await parts.explainer.explain({
            model: req.model,
            version: req.version,
            text: req.text,
            label: req.label,
            requestId,
            ...(req.options?.request_id ? { routingKey: req.options.request_id } : {}),
            deadline: callDeadline(call),
            signal: cancellation.signal,
            priority: req.options?.priority ?? 0,
            timeoutMs: Number(req.options?.timeout_us ?? 0) / 1000,
            bypassCache: req.options?.bypass_cache ?? false,
            span,
          });
          Object.assign(record, resultFields(result));
          return explanation;
        },
        () => cancellation.release(),
      );
    },

    Feedback(call: grpc.ServerUnaryCall<FeedbackRequestMessage, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (unary.refuseUndecodable(call, callback)) return;
      const req = call.request;
      const record = unary.record('Feedback', req.model, '', req.request_id || undefined);
      unary.serve(call, callback, record, async () => {
        const answer = parts.liveAccuracy.feedback({ model: req.model, id: req.request_id, label: req.label });
        record.version = answer.version;
        return answer;
      });
    },
  };
}
