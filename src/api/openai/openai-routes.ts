/**
 * The OpenAI-compatible HTTP API on the HTTP port, the one every LLM server speaks, so existing SDKs and
 * tools work unchanged:
 *
 *   GET  /v1/models             generation models with a READY version
 *   POST /v1/completions        plain or streamed (server-sent events, `data: [DONE]`)
 *   POST /v1/chat/completions   plain or streamed; messages rendered by the model's chat template
 *   (either with ?async=true: answered at once with a job to poll, src/api/openai/openai-jobs.ts)
 *
 * A thin translation onto the generation pipeline through the request envelope (span, access log,
 * metrics, drain), like every front door. Errors have the API's shape, {"error": {message, type, param,
 * code}}, with 400 / 404 / 429 / 503 as the API uses them; an error after a stream has started is sent as
 * one last `data: {"error": ...}` event. A client that disconnects stops its generation within one step.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Cancellation } from '../../core/cancellation';
import type { ModelRepository } from '../../repository/model-repository';
import type { FinishReason, GenerationChunk, GenerationPipeline, Usage } from '../../serving/generation-pipeline';
import type { GenerateRequest } from '../../generation/generate-request';
import type { RequestEnvelope } from '../envelope';
import type { RequestRecord } from '../request-record';
import { httpCallStart } from '../http/call-start';
import { principalOf } from '../../security/call-principal';
import type { JobRunner } from '../../jobs/job-runner';
import { wantsAsync } from '../http/job-routes';
import { chatRequestSchema, chatToGenerate, completionRequestSchema, completionToGenerate, parseBody } from './openai-requests';
import { completionBody, errorTypeOf, FINISH, openAiError, requestIdHeader, usageOf } from './openai-answers';
import { submitGenerationJob } from './openai-jobs';

export { openAiError };

export interface OpenAiDeps {
  generation: GenerationPipeline;
  repository: ModelRepository;
  envelope: RequestEnvelope;
  /** Largest request body, in bytes. */
  maxBodyBytes: number;
  /** Async jobs (?async=true, src/api/openai/openai-jobs.ts); undefined: refused. */
  jobs?: JobRunner;
}

/** Where the routes are mounted (HttpFrontDoor.mount with this prefix): a plugin's own 404 needs a prefix. */
export const OPENAI_PREFIX = '/v1';

type Kind = 'completion' | 'chat';

export function openAiRoutes(deps: OpenAiDeps): (app: FastifyInstance) => void {
  const created = Math.floor(Date.now() / 1000);
  return (app) => {
    app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
      // fastify's own refusals (bad JSON, body too large, wrong content type) keep their status, in the API's shape.
      const status = err.statusCode ?? 500;
      const message = status >= 500 ? 'internal error' : err.message;
      void reply.code(status).send({ error: { message: message.slice(0, 512), type: errorTypeOf(status) ?? 'invalid_request_error', param: null, code: String(status) } });
    });
    app.setNotFoundHandler((request, reply) => {
      void reply.code(404).send({ error: { message: `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 64)}; the OpenAI-compatible API serves GET /v1/models, POST /v1/completions, POST /v1/chat/completions`, type: 'not_found_error', param: null, code: 'not_found' } });
    });

    app.get('/models', async (request) => {
      // Authenticated at the door (not served through the envelope): a caller sees the models it may read.
      const visible = deps.envelope.visibleTo(principalOf(request.headers));
      return {
        object: 'list',
        data: deps.repository
          .list()
          .filter((m) => m.generation && deps.repository.defaultVersion(m) && (!visible || visible(m.name)))
          .map((m) => ({ id: m.name, object: 'model', created, owned_by: 'tensorgate', max_model_len: m.generation!.contextTokens(deps.repository.defaultVersion(m)!.decoder!.maxPositions) })),
      };
    });

    const route = (path: string, kind: Kind) =>
      app.post(path, { bodyLimit: deps.maxBodyBytes }, (request, reply) =>
        wantsAsync(request.query) ? submitGenerationJob(deps, request, reply, `${OPENAI_PREFIX}${path}`, kind) : serveGeneration(deps, request, reply, `${OPENAI_PREFIX}${path}`, kind),
      );
    route('/completions', 'completion');
    route('/chat/completions', 'chat');
  };
}

function serveGeneration(deps: OpenAiDeps, request: FastifyRequest, reply: FastifyReply, path: string, kind: Kind): void {
  const requestId = requestIdHeader(request.headers) ?? randomUUID();
  const body = request.body as { model?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown } } | undefined;
  const record: RequestRecord = { protocol: 'http', method: `POST ${path}`, model: typeof body?.model === 'string' ? body.model : '', version: '', code: 'OK', seconds: 0, requestId };
  const res = reply.raw;
  const cancellation = new Cancellation();
  // 'close' before the answer finished: the client went away; its sequence leaves the batch at the next step.
  res.on('close', () => {
    if (!res.writableFinished) cancellation.abort();
  });
  reply.hijack(); // the answer is written here, streamed or whole
  const stream = body?.stream === true;
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${requestId}`;
  const writer = stream ? new EventStream(res, requestId) : undefined;
  let text = '';
  let finish: { reason: FinishReason; usage: Usage } | undefined;
  let model = record.model;
  let seed = '';

  deps.envelope.serve(
    httpCallStart(request.headers, 'POST', path, record),
    async (span, who) => {
      const call = { requestId, signal: cancellation, span, ...(who?.generationLimits ? { callerLimits: who.generationLimits } : {}) };
      const generate: GenerateRequest =
        kind === 'chat' ? chatToGenerate(parseBody(chatRequestSchema, body), call) : completionToGenerate(parseBody(completionRequestSchema, body), call);
      const includeUsage = body?.stream_options?.include_usage === true;
      const head = () => ({ id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: Math.floor(Date.now() / 1000), model });
      const usage = await deps.generation.generate(generate, {
        start(info) {
          model = info.model;
          record.version = info.version;
          seed = info.seed.toString();
          // Admitted: the stream's headers go out now, so a client sees its 200 before the first token.
          writer?.open();
          if (writer && kind === 'chat') writer.send({ ...head(), choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
        },
        chunk(c: GenerationChunk) {
          text += c.text;
          if (c.finish) finish = c.finish;
          if (!writer || (c.text === '' && !c.finish)) return;
          const reason = c.finish ? FINISH[c.finish.reason] : null;
          const choice = kind === 'chat' ? { index: 0, delta: c.text ? { content: c.text } : {}, logprobs: null, finish_reason: reason } : { index: 0, text: c.text, logprobs: null, finish_reason: reason };
          writer.send({ ...head(), choices: [choice] });
          if (c.finish && includeUsage) writer.send({ ...head(), choices: [], usage: usageOf(c.finish.usage) });
        },
      });
      Object.assign(record, { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, finishReason: usage.finishReason });
    },
    (outcome) => {
      if (!outcome.ok) {
        const { status, body: error, headers } = openAiError(outcome.error);
        if (writer?.started) writer.end(error);
        else if (!res.destroyed) sendJson(res, status, error, requestId, headers);
        return;
      }
      if (writer) return writer.end();
      sendJson(res, 200, completionBody(kind, id, model, text, finish!, seed), requestId);
    },
  );
}

function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': requestId, ...headers });
  res.end(text);
}

/** A server-sent events answer: headers on the first event, `data: [DONE]` at the end. */
class EventStream {
  started = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly requestId: string,
  ) {}

  /** Sends the 200 and the event-stream headers (once). */
  open(): void {
    if (this.started || this.res.destroyed) return;
    this.started = true;
    this.res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': this.requestId });
    this.res.flushHeaders();
  }

  send(event: unknown): void {
    if (this.res.destroyed) return;
    this.open();
    this.res.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  /** Ends the stream with `data: [DONE]`; with `error`, that error is the event before it (as vLLM sends it). */
  end(error?: unknown): void {
    if (error !== undefined) this.send(error);
    if (this.res.destroyed) return;
    this.open();
    this.res.end('data: [DONE]\n\n');
  }
}
