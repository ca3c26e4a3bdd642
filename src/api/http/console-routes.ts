/**
 * The web console on the HTTP port: a page to see the models, try them and watch the server, served by the
 * server itself (no CDN, no extra install). Its pages are static files; its data comes from the APIs every
 * client uses (REST v2, the OpenAI-compatible API) and from two read-only JSON routes of its own:
 *
 *   GET /                        the console's page (console/public/index.html)
 *   GET /console/*               its files: console/public (HTML, CSS), dist/console (the compiled modules of
 *                                console/src) and uPlot's module and stylesheet (uPlot.esm.js, uPlot.min.css)
 *   GET /console/api/models      {server: {...}, models: [ModelInfo as GetModel answers it, config parsed]}
 *   GET /console/api/summary     {interval_ms, process, samples: [...]}: the live figures of this process
 *                                (src/telemetry/live-summary.ts); ?after=SEQ answers only the samples after SEQ
 *
 * The files hold no secrets and are the `console` open group (open by default): a browser cannot send a
 * bearer token when it navigates. The JSON routes are `metadata` calls through the request envelope, like
 * GetModel, so a policy authenticates, permits, logs and counts them; the page sends the token its user
 * entered. Files are served by @fastify/static (ETag and Last-Modified revalidation, ranges, path checks),
 * always revalidated (`no-cache`): their names carry no content hash, and a new server must never run an
 * old page's modules.
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import * as path from 'node:path';
import { clip, invalidArgument } from '../../core/errors';
import { PACKAGE_ROOT } from '../../paths';
import type { LiveSummary } from '../../telemetry/live-summary';
import type { Principal } from '../../security/principal';
import { modelInfoToProto, type ServingState } from '../grpc/model-info';
import type { RequestEnvelope } from '../envelope';
import type { RequestRecord } from '../request-record';
import { httpCallStart } from './call-start';
import type { FrontDoorPlugin, FrontDoorRouteConfig } from './http-server';
import { toHttpError } from './status';

export interface ConsoleDeps extends ServingState {
  envelope: RequestEnvelope;
  summary: LiveSummary;
  /** What the page needs to write commands for this server (ports are known once it listens). */
  server: () => ConsoleServerInfo;
}

export interface ConsoleServerInfo {
  grpc_port: number;
  http_port: number;
  tls: boolean;
  /** --model-control-mode: the page offers load and unload only in `explicit`. */
  model_control_mode: 'none' | 'poll' | 'explicit';
  /** An access policy is in force: calls need a token. */
  auth: boolean;
}

/** Where the console's files are, inside the installed package (they work from dist/ and in the container alike). */
export const CONSOLE_FILES = {
  public: path.join(PACKAGE_ROOT, 'console', 'public'),
  modules: path.join(PACKAGE_ROOT, 'dist', 'console'),
  vendor: path.join(path.dirname(require.resolve('uplot/package.json')), 'dist'),
};
/** The only files of uPlot's package served. */
const VENDOR_FILES = new Set(['/uPlot.esm.js', '/uPlot.min.css']);
/** The file route as the access check sees it (the `console` open group, with '/'). */
export const CONSOLE_ASSETS_ROUTE = '/console/*';
/** How the port's 404 lists every console route: once. */
const LISTED_AS: FrontDoorRouteConfig = { servedAs: CONSOLE_ASSETS_ROUTE };

/**
 * The page loads only what this server serves: its own modules and styles (uPlot sets element styles through
 * the CSSOM, which style-src does not govern), and fetches only from this origin.
 */
const PAGE_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Optional routes other parts add; the page shows their controls only when the server has them. */
const OPTIONAL_ROUTES = {
  explain: { method: 'POST', url: '/v2/models/:name/explain' },
  feedback: { method: 'POST', url: '/v2/models/:name/feedback' },
  accuracy: { method: 'GET', url: '/v2/models/:name/accuracy' },
  jobs: { method: 'GET', url: '/v2/jobs/:id' },
} as const;

const noCache = (res: ServerResponse | FastifyReply) => {
  const set = (name: string, value: string) => ('setHeader' in res ? res.setHeader(name, value) : void res.header(name, value));
  set('cache-control', 'no-cache');
  set('x-content-type-options', 'nosniff');
};

export function consoleRoutes(deps: ConsoleDeps): FrontDoorPlugin {
  return async (app: FastifyInstance) => {
    // One file route for all three folders (the first holding a name serves it); of uPlot's, two files only.
    await app.register(fastifyStatic, {
      root: [CONSOLE_FILES.public, CONSOLE_FILES.modules, CONSOLE_FILES.vendor],
      prefix: '/console/',
      index: false,
      cacheControl: false,
      allowedPath: (pathname, root) => root !== CONSOLE_FILES.vendor || VENDOR_FILES.has(pathname),
      setHeaders: (res) => noCache(res as unknown as ServerResponse),
    });
    app.get('/', { config: LISTED_AS }, (_request, reply) => {
      noCache(reply);
      void reply.header('content-security-policy', PAGE_POLICY).header('referrer-policy', 'no-referrer');
      return reply.sendFile('index.html', CONSOLE_FILES.public);
    });

    json(app, deps, '/console/api/models', async (_request, who) => {
      const visible = deps.envelope.visibleTo(who);
      const models = deps.repository
        .list()
        .filter((entry) => !visible || visible(entry.name))
        .map((entry) => {
          const { config_json: _, ...info } = modelInfoToProto(entry, deps);
          return { ...info, config: entry.config ?? null };
        });
      const features = Object.fromEntries(Object.entries(OPTIONAL_ROUTES).map(([name, route]) => [name, app.hasRoute(route)]));
      return { server: { ...deps.server(), features }, models };
    });

    json(app, deps, '/console/api/summary', async (request, who) => {
      const after = afterParameter(request);
      deps.summary.watch();
      const visible = deps.envelope.visibleTo(who);
      const samples = deps.summary.since(after).map((s) => (visible ? { ...s, models: Object.fromEntries(Object.entries(s.models).filter(([m]) => visible(m))) } : s));
      // With --processes N each process samples its own metrics: the page keeps to one process's series.
      return { interval_ms: deps.summary.interval, process: process.pid, samples };
    });
  };
}

/** ?after=SEQ: a whole number, -1 (the default) for every kept sample. */
function afterParameter(request: FastifyRequest): number {
  const raw = (request.query as Record<string, unknown>).after;
  if (raw === undefined) return -1;
  const n = typeof raw === 'string' && /^-?\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < -1) throw invalidArgument(`after must be a sample number (a whole number >= -1), got ${JSON.stringify(clip(String(raw), 32))}`);
  return n;
}

/** A read-only JSON route served through the envelope as a `metadata` call naming no model. */
function json(app: FastifyInstance, deps: ConsoleDeps, url: string, body: (request: FastifyRequest, who: Principal | undefined) => Promise<unknown>): void {
  app.get(url, { config: { ...LISTED_AS, takesBody: false } }, (request, reply) => {
    const record: RequestRecord = { protocol: 'http', method: `GET ${url}`, model: '', version: '', code: 'OK', seconds: 0 };
    deps.envelope.serve(
      httpCallStart(request.headers, 'GET', url, record),
      async (_span, who) => body(request, who),
      (outcome) => {
        if (reply.sent || reply.raw.destroyed) return;
        if (outcome.ok) return void reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(outcome.value));
        const { status, body: answer, headers } = toHttpError(outcome.error);
        void reply.code(status).headers(headers).type('application/json').send(answer);
      },
    );
    return reply;
  });
}
