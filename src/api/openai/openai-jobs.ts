/**
 * POST /v1/completions?async=true and POST /v1/chat/completions?async=true: the body is parsed and checked as
 * for the synchronous call (a bad one is refused at once, in the API's error shape), then runs as an async job
 * (src/jobs) whose result is the very body the synchronous call would have answered. The submission is
 * answered 202 with the job ({"job_id", "status", "model", "location"}, Location header); poll
 * GET /v2/jobs/{id} (src/api/http/job-routes.ts). A job's answer is whole: `stream: true` is refused.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { Cancellation } from '../../core/cancellation';
import { unimplemented } from '../../core/errors';
import type { GenerateRequest } from '../../generation/generate-request';
import type { FinishReason, Usage } from '../../serving/generation-pipeline';
import { httpCallStart } from '../http/call-start';
import { acceptedAnswer, asyncRequested } from '../http/job-routes';
import type { RequestRecord } from '../request-record';
import { completionBody, openAiError, requestIdHeader, type CompletionKind } from './openai-answers';
import { chatRequestSchema, chatToGenerate, completionRequestSchema, completionToGenerate, OpenAiRequestError, parseBody } from './openai-requests';
import type { OpenAiDeps } from './openai-routes';

export function submitGenerationJob(deps: OpenAiDeps, request: FastifyRequest, reply: FastifyReply, path: string, kind: CompletionKind): void {
  const requestId = requestIdHeader(request.headers) ?? randomUUID();
  const body = request.body as { model?: unknown; stream?: unknown } | undefined;
  const record: RequestRecord = { protocol: 'http', method: `POST ${path}`, model: typeof body?.model === 'string' ? body.model : '', version: '', code: 'OK', seconds: 0, requestId };
  deps.envelope.serve(
    httpCallStart(request.headers, 'POST', path, record),
    async (span, who) => {
      asyncRequested(request.query); // refuses a value other than true or false
      if (!deps.jobs) throw unimplemented('async jobs are not served on this port');
      if (body?.stream === true) {
        throw new OpenAiRequestError('stream cannot be true with async=true: a job keeps the whole answer, which GET /v2/jobs/{id} returns; drop one of them', 'stream');
      }
      // The job's own signal and deadline replace these when it starts.
      const call = { requestId, signal: new Cancellation(), ...(who?.generationLimits ? { callerLimits: who.generationLimits } : {}) };
      const generate: GenerateRequest =
        kind === 'chat' ? chatToGenerate(parseBody(chatRequestSchema, body), call) : completionToGenerate(parseBody(completionRequestSchema, body), call);
      const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${requestId}`;
      let model = generate.model;
      let seed = '';
      let text = '';
      let finish: { reason: FinishReason; usage: Usage } | undefined;
      const job = await deps.jobs.submit<Usage & { finishReason: FinishReason }>({
        kind: 'generate',
        model: generate.model,
        who,
        route: `POST ${path}`,
        requestId,
        parent: span,
        start: (ctx) =>
          deps.generation.generate(
            { ...generate, signal: ctx.signal, deadline: ctx.deadline, span: ctx.span },
            {
              start(info) {
                model = info.model;
                ctx.record.version = info.version;
                seed = info.seed.toString();
              },
              chunk(c) {
                // Admitted (start) may still mean waiting for a place in the batch: running once tokens come.
                ctx.running();
                text += c.text;
                if (c.finish) finish = c.finish;
              },
            },
          ),
        answer: (usage, jobRecord) => {
          Object.assign(jobRecord, { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, finishReason: usage.finishReason });
          return { body: JSON.stringify(completionBody(kind, id, model, text, finish!, seed)), model, version: jobRecord.version };
        },
      });
      return acceptedAnswer(job);
    },
    (outcome) => {
      if (reply.sent || reply.raw.destroyed) return;
      if (outcome.ok) {
        const a = outcome.value;
        return void reply.code(a.status).headers({ ...a.headers, 'x-request-id': requestId }).type(a.contentType).send(a.payload);
      }
      const { status, body: error, headers } = openAiError(outcome.error);
      void reply.code(status).headers({ ...headers, 'x-request-id': requestId }).send(error);
    },
  );
}
