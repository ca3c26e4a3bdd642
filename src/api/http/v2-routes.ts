/**
 * The Open Inference Protocol v2 REST API (KServe v2 / Triton's HTTP API, with Triton's binary tensor,
 * statistics, model configuration and model repository extensions) on the HTTP port, mounted at /v2:
 *
 *   GET  /v2                                         server metadata
 *   GET  /v2/health/live | /v2/health/ready          200 when true, 400 when not (as Triton)
 *   GET  /v2/models/{m}[/versions/{v}]               model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready         200 / 400
 *   GET  /v2/models/{m}[/versions/{v}]/config        Triton's ModelConfig as JSON
 *   POST /v2/models/{m}[/versions/{v}]/infer         JSON, or the binary tensor extension (src/api/http/v2-rest-codec.ts);
 *                                                    ?async=true: 202 with a job to poll (src/api/http/job-routes.ts)
 *   GET  /v2/models/stats, /v2/models/{m}[/versions/{v}]/stats   {"model_stats": [...]}
 *   POST /v2/repository/index                        [{name, version, state, reason}], body {} / {"ready": true} / none
 *   POST /v2/repository/models/{m}/load | /unload    {} (load/unload parameters are refused)
 *
 * The HTTP twin of the gRPC GRPCInferenceService (src/api/grpc/inference-service.ts): the same shared v2
 * functions (src/api/v2), the same envelope (span, access log, metrics, drain) and pipeline; only the wire
 * format is translated here. Every error is {"error": "..."} (the key Triton's and KServe's clients read)
 * with the HTTP status of our code (src/api/http/status.ts); fastify's refusals and unknown routes too.
 */
import type { Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorCodes } from 'fastify';
import { z } from 'zod';
import { Cancellation } from '../../core/cancellation';
import { clip, echo, internal, ServingError, unimplemented } from '../../core/errors';
import { ATTR_REQUEST_ID } from '../../telemetry/semconv';
import { resultFields } from '../grpc/model-service';
import type { RequestRecord } from '../request-record';
import { refuseRepositoryParameters, statisticsOf, type V2Parts } from '../v2/v2-control';
import { toInferenceRequest, toV2Response } from '../v2/v2-infer';
import { modelMetadata, modelReady, repositoryIndex, serverMetadata, serverReady } from '../v2/v2-models';
import { httpCallStart } from './call-start';
import { MAX_ECHO_CHARS, overLimit, readBody } from './http-body';
import type { FrontDoorPlugin, FrontDoorRouteConfig } from './http-server';
import { toHttpError } from './status';
import type { JobRunner } from '../../jobs/job-runner';
import { asyncRequested, submitInferJob } from './job-routes';
import type { Principal } from '../../security/principal';
import { binaryOutputChoice, HEADER_LENGTH, inferRequestFromRest, inferResponseToRest, parseJsonText, parseWith, REST_PARAMETERS } from './v2-rest-codec';

export interface V2RestDeps extends V2Parts {
  /** Largest infer request body, in bytes (the server's max message size, as on the gRPC port). */
  maxBodyBytes: number;
  /** Async jobs (?async=true on infer); undefined: refused. */
  jobs?: JobRunner;
}

/** Where the routes are mounted (HttpFrontDoor.mount with this prefix). */
export const V2_PREFIX = '/v2';

/** Body limit of the repository routes: their bodies are a few parameters at most. */
const CONTROL_BODY_BYTES = 64 * 1024;
const MAX_ERROR_CHARS = 1024;

/** The routes, for a 404 (the module comment has them in full). */
const SERVED =
  'GET /v2, GET /v2/health/{live,ready}, GET /v2/models/{name}[/versions/{version}][/ready|/config|/stats], GET /v2/models/stats, ' +
  'POST /v2/models/{name}[/versions/{version}]/infer[?async=true], GET|DELETE /v2/jobs/{id}, POST /v2/repository/index, POST /v2/repository/models/{name}/{load,unload}';

/** What a route answers: a status and a payload of a content type, and extra headers. */
interface Answer {
  status: number;
  contentType: string;
  payload: string | Buffer;
  headers?: Record<string, string | number>;
}

const json = (value: unknown, status = 200): Answer => ({ status, contentType: 'application/json', payload: JSON.stringify(value) });
/** Health and readiness: 200 when true, 400 when false (Triton's choice of the 4xx the protocol asks for). */
const flag = (key: 'live' | 'ready', value: boolean): Answer => json({ [key]: value }, value ? 200 : 400);
const errorAnswer = (status: number, message: string): Answer => json({ error: clip(message, MAX_ERROR_CHARS) }, status);

type Params = { name?: string; version?: string };
type RouteBody = (ctx: { request: FastifyRequest; params: Params; record: RequestRecord; signal: Cancellation; span: Span; who: Principal | undefined }) => Answer | Promise<Answer>;

const repositoryIndexSchema = z.strictObject({ ready: z.boolean().nullish() });
const repositoryModelSchema = z.strictObject({ parameters: z.record(z.string(), z.unknown()).nullish() });

export function v2Routes(deps: V2RestDeps): FrontDoorPlugin {
  const { repository, readiness } = deps;
  /** [method, template] of every route, for 404/405 answers. */
  const served: [string, string][] = [];

  return (app: FastifyInstance) => {
    installParsers(app);
    app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
      let status: number;
      let message: string;
      if (err instanceof ServingError) ({ status, body: { error: message } } = toHttpError(err));
      else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) [status, message] = [err.statusCode, err.message];
      else ({ status, body: { error: message } } = toHttpError(internal(`internal error: ${err.message}`)));
      send(reply, errorAnswer(status, message));
    });
    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?', 1)[0]!;
      const allowed = served.filter(([, template]) => templateRegex(template).test(path)).map(([method]) => method);
      const shown = clip(path, MAX_ECHO_CHARS);
      if (allowed.length > 0) {
        void reply.header('allow', allowed.join(', '));
        return send(reply, errorAnswer(405, `method ${request.method} is not allowed on ${shown}; allowed: ${allowed.join(', ')}`));
      }
      send(reply, errorAnswer(404, `no route for ${shown}; the v2 API serves ${SERVED}`));
    });

    const route = (method: 'GET' | 'POST', paths: string[], body: RouteBody, options: { infer?: boolean; bodyLimit?: number } = {}) => {
      for (const path of paths) {
        const template = `${V2_PREFIX}${path}`.replace(/\/$/, '').replace(/:(\w+)/g, '{$1}');
        served.push([method, template]);
        const spec = method === 'POST' ? { bodyLimit: options.bodyLimit ?? CONTROL_BODY_BYTES } : {};
        app.route({
          method,
          url: path,
          // The port's own 404 (for paths outside /v2) lists the whole API once, not each of its routes.
          config: { servedAs: `${V2_PREFIX}/*` } satisfies FrontDoorRouteConfig,
          ...spec,
          handler: (request, reply) => {
            const params = request.params as Params;
            const record: RequestRecord = { protocol: 'http', method: `${method} ${template}`, model: params.name ?? '', version: params.version ?? '', code: 'OK', seconds: 0 };
            if (options.infer) record.inference = true;
            serve(deps, request, reply, method, template, record, body, params);
          },
        });
      }
    };
    const model = (suffix: string) => [`/models/:name${suffix}`, `/models/:name/versions/:version${suffix}`];
    const nameOf = (p: Params) => p.name ?? '';
    const versionOf = (p: Params) => p.version ?? '';

    route('GET', ['/'], () => json(serverMetadata()));
    route('GET', ['/health/live'], () => flag('live', true));
    route('GET', ['/health/ready'], () => flag('ready', serverReady(readiness)));
    route('GET', ['/models/stats'], ({ who }) => json({ model_stats: statisticsOf(repository, deps.statistics, '', '', deps.envelope.visibleTo(who)) }));
    route('GET', model(''), ({ params }) => json(modelMetadata(repository, nameOf(params), versionOf(params))));
    route('GET', model('/ready'), ({ params }) => flag('ready', modelReady(readiness, nameOf(params), versionOf(params))));
    route('GET', model('/config'), ({ params }) => json(deps.config(nameOf(params), versionOf(params))));
    route('GET', model('/stats'), ({ params }) => json({ model_stats: statisticsOf(repository, deps.statistics, nameOf(params), versionOf(params)) }));
    route('POST', model('/infer'), (ctx) => infer(deps, ctx), { infer: true, bodyLimit: deps.maxBodyBytes });
    route('POST', ['/repository/index'], async ({ request, who }) => {
      const body = parseWith(repositoryIndexSchema, jsonBody(request), 'the request body');
      const index = await repositoryIndex(repository, body.ready ?? false, deps.envelope.visibleTo(who));
      // As Triton lists them: no empty version or reason.
      return json(index.map((e) => ({ name: e.name, ...(e.version ? { version: e.version } : {}), state: e.state, ...(e.reason ? { reason: e.reason } : {}) })));
    });
    const control = (action: 'load' | 'unload'): RouteBody =>
      async ({ request, params }) => {
        refuseRepositoryParameters(parseWith(repositoryModelSchema, jsonBody(request), 'the request body').parameters);
        await deps.control[action](nameOf(params));
        return json({});
      };
    route('POST', ['/repository/models/:name/load'], control('load'));
    route('POST', ['/repository/models/:name/unload'], control('unload'));
  };
}

/** One inference: the REST body through the shared v2 request and the pipeline, answered in the asked output form. */
async function infer(deps: V2RestDeps, { request, params, record, signal, span, who }: Parameters<RouteBody>[0]): Promise<Answer> {
  const job = asyncRequested(request.query);
  const v2 = inferRequestFromRest(bodyBytes(request), request.headers[HEADER_LENGTH], params.name ?? '', params.version ?? '');
  if (v2.id) span.setAttribute(ATTR_REQUEST_ID, clip(v2.id));
  const inference = toInferenceRequest(v2, REST_PARAMETERS, { signal, span });
  const binary = binaryOutputChoice(v2);
  record.requestId = inference.requestId;
  if (job) {
    if (!deps.jobs) throw unimplemented('async jobs are not served on this port');
    return submitInferJob({ jobs: deps.jobs, pipeline: deps.pipeline }, { v2, inference, who, route: record.method, record });
  }
  const result = await deps.pipeline.predict(inference);
  Object.assign(record, resultFields(result));
  const answer = inferResponseToRest(toV2Response(result, v2), binary);
  return {
    status: 200,
    contentType: answer.contentType,
    payload: answer.payload,
    ...(answer.headerLength !== undefined ? { headers: { [HEADER_LENGTH]: answer.headerLength } } : {}),
  };
}

/** Runs a route's body through the envelope and writes its answer (or its error as {"error"}) once. */
function serve(deps: V2RestDeps, request: FastifyRequest, reply: FastifyReply, method: string, template: string, record: RequestRecord, body: RouteBody, params: Params): void {
  const signal = new Cancellation();
  const res = reply.raw;
  // 'close' before the answer finished: the client went away; queued work for it is dropped.
  const onClose = () => {
    if (!res.writableFinished) signal.abort();
  };
  res.once('close', onClose);
  deps.envelope.serve(
    httpCallStart(request.headers, method, template, record),
    async (span, who) => body({ request, params, record, signal, span, who }),
    (outcome) => {
      if (outcome.ok) return send(reply, outcome.value);
      const { status, body: error, headers } = toHttpError(outcome.error);
      send(reply, { ...errorAnswer(status, error.error), headers });
    },
  );
}

function send(reply: FastifyReply, answer: Answer): void {
  if (reply.sent || reply.raw.destroyed) return;
  if (answer.headers) void reply.headers(answer.headers);
  void reply.code(answer.status).type(answer.contentType).send(answer.payload);
}

const EMPTY = Buffer.alloc(0);
const bodyBytes = (request: FastifyRequest): Buffer => (Buffer.isBuffer(request.body) ? request.body : EMPTY);

/** A repository route's JSON body; none (or an empty one) is {}. */
function jsonBody(request: FastifyRequest): unknown {
  const bytes = bodyBytes(request);
  return bytes.length === 0 ? {} : parseJsonText(bytes, 'the request body');
}

const templateCache = new Map<string, RegExp>();
function templateRegex(template: string): RegExp {
  let re = templateCache.get(template);
  if (!re) templateCache.set(template, (re = new RegExp(`^${template.replace(/\{\w+\}/g, '[^/]+')}/?$`)));
  return re;
}

/**
 * Bodies are read as bytes (within the route's limit) and parsed here, whatever their Content-Type says, as
 * Triton does: an infer body may be JSON followed by binary tensors, tritonclient sends it as
 * application/octet-stream, and the protocol's documented curl commands send JSON as form data (curl -d).
 * A compressed body (Content-Encoding) is not supported: a 415 before it is read.
 */
function installParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request: FastifyRequest, payload: NodeJS.ReadableStream): Promise<Buffer | undefined> => {
    if (request.is404) return Promise.resolve(undefined);
    const path = clip(request.url.split('?', 1)[0]!, MAX_ECHO_CHARS);
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      return Promise.reject(unsupported(`Content-Encoding ${echo(encoding, 32)} is not supported by ${path}; send the body uncompressed`));
    }
    return readBody(payload, request.routeOptions.bodyLimit, () => overLimit(request, path));
  });
}

function unsupported(message: string): Error {
  const err = new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE();
  err.message = message;
  return err;
}
