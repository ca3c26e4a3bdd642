/**
 * REST explanations, beside the v2 inference routes:
 *
 *   POST /v2/models/{m}[/versions/{v}]/explain   {"text": "...", "label"?: "positive", "id"?: "request id"}
 *
 * answered with the Explanation (src/explain/occlusion.ts), the same object ModelService Explain returns.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { clip } from '../../core/errors';
import type { OcclusionExplainer } from '../../explain/occlusion';
import { ATTR_REQUEST_ID } from '../../telemetry/semconv';
import { resultFields } from '../grpc/model-service';
import type { JsonRoute } from './json-routes';
import { parseWith } from './v2-rest-codec';

const explainBody = z.strictObject({
  text: z.string(),
  label: z.string().optional(),
  id: z.string().optional(),
});

export function explainRoutes(explainer: OcclusionExplainer, maxBodyBytes: number): JsonRoute[] {
  const route = (path: string): JsonRoute => ({
    method: 'POST',
    path,
    inference: true,
    bodyLimit: maxBodyBytes,
    async handle({ params, body, record, signal, span }) {
      const req = parseWith(explainBody, body, 'the request body');
      const requestId = req.id || randomUUID();
      record.requestId = requestId;
      if (req.id) span.setAttribute(ATTR_REQUEST_ID, clip(req.id));
      const { explanation, result } = await explainer.explain({
        model: params.name ?? '',
        version: params.version ?? '',
        text: req.text,
        label: req.label ?? '',
        requestId,
        ...(req.id ? { routingKey: req.id } : {}),
        signal,
        span,
      });
      Object.assign(record, resultFields(result));
      return explanation;
    },
  });
  return [route('/models/:name/explain'), route('/models/:name/versions/:version/explain')];
}
