/**
 * REST live accuracy, beside the v2 inference routes:
 *
 *   POST /v2/models/{m}/feedback                    {"id": "<request id>", "label": "positive"}
 *   GET  /v2/models/{m}[/versions/{v}]/accuracy     {"model", "versions": [AccuracyReport...]}
 *
 * The feedback answer is the object ModelService Feedback returns; src/feedback/live-accuracy.ts decides.
 */
import { z } from 'zod';
import { clip } from '../../core/errors';
import type { LiveAccuracy } from '../../feedback/live-accuracy';
import type { JsonRoute } from './json-routes';
import { parseWith } from './v2-rest-codec';

const feedbackBody = z.strictObject({ id: z.string(), label: z.string() });

/** A feedback body is an id and a label. */
const FEEDBACK_BODY_BYTES = 4096;

export function feedbackRoutes(live: LiveAccuracy): JsonRoute[] {
  const accuracy = (path: string): JsonRoute => ({
    method: 'GET',
    path,
    handle: ({ params }) => live.report(params.name ?? '', params.version),
  });
  return [
    {
      method: 'POST',
      path: '/models/:name/feedback',
      bodyLimit: FEEDBACK_BODY_BYTES,
      handle({ params, body, record }) {
        const req = parseWith(feedbackBody, body, 'the request body');
        record.requestId = clip(req.id);
        const answer = live.feedback({ model: params.name ?? '', id: req.id, label: req.label });
        record.version = answer.version;
        return answer;
      },
    },
    accuracy('/models/:name/accuracy'),
    accuracy('/models/:name/versions/:version/accuracy'),
  ];
}
