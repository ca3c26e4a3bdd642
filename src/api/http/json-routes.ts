/**
 * A plugin of small JSON routes under /v2 beside the Open Inference Protocol's (src/api/http/v2-routes.ts),
 * served the same way: each call through the request envelope (span, access log, metrics, drain, access
 * policy), bodies read as bytes within the route's limit and parsed as JSON whatever their Content-Type says
 * (curl -d sends form data), answers JSON, every failure {"error": "..."} with the HTTP status of its code.
 * The explanation and live-accuracy routes use it (explain-routes.ts, feedback-routes.ts).
 */
import type { Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorCodes } from 'fastify';
import { Cancellation } from '../../core/cancellation';
import { clip, echo, internal, invalidArgument, ServingError } from '../../core/errors';
import type { RequestEnvelope } from '../envelope';
import type { RequestRecord } from '../request-record';
import type { Principal } from '../../security/principal';
import { httpCallStart } from './call-start';
import { MAX_ECHO_CHARS, overLimit, readBody } from './http-body';
import type { FrontDoorPlugin, FrontDoorRouteConfig } from './http-server';
import { toHttpError } from './status';
import { parseJsonText } from './v2-rest-codec';

export type Params = { name?: string; version?: string };

export interface JsonRouteContext {
  params: Params;
  /** The parsed JSON body: an object ({} when there is none). */
  body: Record<string, unknown>;
  record: RequestRecord;
  signal: Cancellation;
  span: Span;
  who: Principal | undefined;
}

export interface JsonRoute {
  method: 'GET' | 'POST';
  /** Under the plugin's prefix, fastify style: '/models/:name/explain'. */
  path: string;
  /** Counted by the v2 statistics extension as an inference. */
  inference?: boolean;
  /** POST: the largest body, in bytes. */
  bodyLimit?: number;
  handle(ctx: JsonRouteContext): unknown | Promise<unknown>;
}

const MAX_ERROR_CHARS = 1024;
const DEFAULT_BODY_BYTES = 64 * 1024;

export function jsonRoutes(envelope: RequestEnvelope, prefix: string, routes: JsonRoute[]): FrontDoorPlugin {
  return (app: FastifyInstance) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (request: FastifyRequest, payload: NodeJS.ReadableStream): Promise<Buffer | undefined> => {
      if (request.is404) return Promise.resolve(undefined);
      const path = clip(request.url.split('?', 1)[0]!, MAX_ECHO_CHARS);
      const encoding = request.headers['content-encoding'];
      if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
        const err = new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE();
        err.message = `Content-Encoding ${echo(encoding, 32)} is not supported by ${path}; send the body uncompressed`;
        return Promise.reject(err);
      }
      return readBody(payload, request.routeOptions.bodyLimit, () => overLimit(request, path));
    });
    app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
      if (err instanceof ServingError) return send(reply, toHttpError(err).status, { error: clip(err.message, MAX_ERROR_CHARS) });
      if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return send(reply, err.statusCode, { error: clip(err.message, MAX_ERROR_CHARS) });
      send(reply, 500, { error: toHttpError(internal(`internal error: ${err.message}`)).body.error });
    });
    // A path served for one method answers the other with 405 and Allow (the v2 plugin's not-found handler,
    // which answers under this prefix, knows only its own routes).
    const methods = new Map<string, string[]>();
    for (const r of routes) methods.set(r.path, [...(methods.get(r.path) ?? []), r.method]);
    for (const [path, allowed] of methods) {
      for (const other of (['GET', 'POST'] as const).filter((m) => !allowed.includes(m))) {
        app.route({
          method: other,
          url: path,
          config: { servedAs: `${prefix}${path}`.replace(/:(\w+)/g, '{$1}'), takesBody: false } satisfies FrontDoorRouteConfig,
          handler: (request, reply) => {
            void reply.header('allow', allowed.join(', '));
            send(reply, 405, { error: `method ${request.method} is not allowed on ${clip(request.url.split('?', 1)[0]!, MAX_ECHO_CHARS)}; allowed: ${allowed.join(', ')}` });
          },
        });
      }
    }
    for (const route of routes) {
      const template = `${prefix}${route.path}`.replace(/:(\w+)/g, '{$1}');
      app.route({
        method: route.method,
        url: route.path,
        config: { servedAs: template } satisfies FrontDoorRouteConfig,
        ...(route.method === 'POST' ? { bodyLimit: route.bodyLimit ?? DEFAULT_BODY_BYTES } : {}),
        handler: (request, reply) => serve(envelope, request, reply, route, template),
      });
    }
  };
}

function serve(envelope: RequestEnvelope, request: FastifyRequest, reply: FastifyReply, route: JsonRoute, template: string): void {
  const params = request.params as Params;
  const record: RequestRecord = { protocol: 'http', method: `${route.method} ${template}`, model: params.name ?? '', version: params.version ?? '', code: 'OK', seconds: 0 };
  if (route.inference) record.inference = true;
  const signal = new Cancellation();
  const res = reply.raw;
  // 'close' before the answer finished: the client went away; queued work for it is dropped.
  res.once('close', () => {
    if (!res.writableFinished) signal.abort();
  });
  envelope.serve(
    httpCallStart(request.headers, route.method, template, record),
    async (span, who) => route.handle({ params, body: jsonBody(request), record, signal, span, who }),
    (outcome) => {
      if (outcome.ok) return send(reply, 200, outcome.value);
      const { status, body, headers } = toHttpError(outcome.error);
      void reply.headers(headers);
      send(reply, status, { error: clip(body.error, MAX_ERROR_CHARS) });
    },
  );
}

function send(reply: FastifyReply, status: number, value: unknown): void {
  if (reply.sent || reply.raw.destroyed) return;
  void reply.code(status).type('application/json').send(JSON.stringify(value));
}

/** The body as a JSON object; none (or an empty one) is {}. */
function jsonBody(request: FastifyRequest): Record<string, unknown> {
  const bytes = Buffer.isBuffer(request.body) ? request.body : undefined;
  if (!bytes || bytes.length === 0) return {};
  const value = parseJsonText(bytes, 'the request body');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument('the request body must be a JSON object');
  return value as Record<string, unknown>;
}
