/**
 * The HTTP front door, on fastify: Prometheus scrapes and Kubernetes probes, and the place HTTP APIs mount
 * (the OpenAI-compatible routes, the REST v2 inference API) as fastify plugins with mount().
 *
 *   GET /metrics  Prometheus exposition of this server's registry (with --processes N: every process's, aggregated)
 *   GET /healthz  liveness: 200 while the process can answer at all (never depends on models)
 *   GET /readyz   readiness: 200 when health "" says SERVING, else 503 with why (loading, a model not READY, draining)
 *
 * Why fastify: the APIs that mount here need what a hand-written router kept growing (path parameters, content
 * types, schema validation, per-plugin error and not-found handlers, streaming replies), and fastify gives
 * each plugin its own encapsulated scope on one port. It does not own the socket: the node:http server is
 * ours, created with the limits below and handed over through `serverFactory`, and what fastify leaves out
 * (405, refusing bodies unread, 100-continue, Node's own answers to client errors) is added here.
 *
 * The port faces clients we do not control, so nothing a client does may hold resources unboundedly, and
 * every route on it (mounted plugins' included) gets this:
 * - headers and whole requests must arrive within their timeouts (else 408 and close), idle keep-alive and
 *   idle sockets close, connections are capped;
 * - a request body is read only by a route that takes one (GET, HEAD and TRACE routes and routes with
 *   `config: { takesBody: false }` refuse any with 413), counted as it arrives, never past the route's
 *   `bodyLimit` (a declared Content-Length over it is refused before reading); '100 Continue' goes out only
 *   once the route accepted the body; an unsupported content type is a 415 (src/api/http/http-body.ts);
 * - an answer sent while announced body bytes are unread says `Connection: close`, so the unread bytes are
 *   never parsed as a next request; answers that consumed the whole request keep the connection alive;
 * - the request target is parsed as before (dot segments resolved, absolute-form accepted, anything else 400);
 *   error messages echo client input only as a bounded prefix.
 * Outside mounted plugins that set their own: unknown paths answer 404 naming the served paths, known paths
 * with another method 405 with Allow, errors JSON {error} (a ServingError keeps its status, src/api/http/status.ts).
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import { clip, internal, ServingError } from '../../core/errors';
import { announcesBody, bodyLeftUnread, bodyTooLarge, continueIfExpected, installBodyParsers, installRawParser, MAX_ECHO_CHARS, unsupportedMediaType } from './http-body';
import { RouteTable } from './http-route-table';
import type { AccessCheck } from './access-check';
import { toHttpError } from './status';

/** A raw node:http route (addRoute): `body` is the whole request body, already read within the route's limit. */
export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: Buffer) => void | Promise<void>;

export interface RouteOptions {
  /** Largest request body the route takes, in bytes; 0 (the default): it takes none and refuses any. */
  maxBodyBytes?: number;
}

/** What the front door reads from a fastify route's `config`. */
export interface FrontDoorRouteConfig {
  /** false: the route refuses any request body with 413 (always so for GET, HEAD and TRACE). */
  takesBody?: boolean;
  /** How a 404 lists the route, instead of its path. */
  servedAs?: string;
}

/** A fastify plugin for mount(): it receives its own encapsulated instance. */
export type FrontDoorPlugin = (app: FastifyInstance) => void | Promise<void>;

/** Timeouts in milliseconds (0 turns one off) and the connection cap (0: none). */
export interface HttpLimits {
  /** From a request's first byte until its headers are complete. */
  headersTimeoutMs: number;
  /** From a request's first byte until its body is complete. */
  requestTimeoutMs: number;
  /** How long a keep-alive connection may sit idle between requests. */
  keepAliveTimeoutMs: number;
  /** How long a socket may see no traffic at all, in either direction, while a request is in progress. */
  idleTimeoutMs: number;
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  maxConnections: 1000,
};

/** The Prometheus exposition /metrics serves: this process's registry, or a whole cluster's aggregate. */
export interface MetricsExposition {
  readonly contentType: string;
  text(): Promise<string>;
}

/** What /metrics and /readyz report. A cluster worker swaps them for the whole cluster's view (setSources). */
export interface HttpSources {
  metrics: MetricsExposition;
  health: () => 'SERVING' | 'NOT_SERVING';
  /** Why the server is not ready, for the 503's body (kept short by its source); the status name if absent. */
  notReadyReason?: () => string;
}

export interface HttpFrontDoorOptions extends HttpSources {
  host: string;
  /** 0 picks a free port (listen() resolves with it). */
  port: number;
  limits?: Partial<HttpLimits>;
  /** TLS: an https server, same limits and routes (src/security/tls-files.ts's TlsFiles is one). */
  tls?: HttpTlsSource;
}

/**
 * The certificate, key and client CA, read when listen() runs and again on each 'reloaded' (setSecureContext:
 * new handshakes get it, open connections keep theirs). `mutual`: a client must present a certificate the CA
 * signed, else the handshake fails.
 */
export interface HttpTlsSource {
  readonly mutual: boolean;
  secureContextOptions(): SecureContextOptions;
  on(event: 'reloaded', listener: () => void): unknown;
  off(event: 'reloaded', listener: () => void): unknown;
}

/** Longest error message sent; a handler's error text can carry anything. */
const MAX_ERROR_CHARS = 1024;
const TEXT = 'text/plain; charset=utf-8';
const BODYLESS = new Set(['GET', 'HEAD', 'TRACE']);
const EMPTY = Buffer.alloc(0);

/** Request targets as the client sent them, where routing uses a normalized one (for messages). */
const sentTargets = new WeakMap<http.IncomingMessage, string>();

/** The path as the client sent it, bounded: what messages name. */
function sentPath(req: http.IncomingMessage): string {
  return clip((sentTargets.get(req) ?? req.url ?? '/').split(/[?#]/, 1)[0]!, MAX_ECHO_CHARS);
}

/** A JSON {error} answer on the raw response, whose size is bounded whatever the message holds. */
function sendError(res: http.ServerResponse, status: number, message: string, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify({ error: clip(message, MAX_ERROR_CHARS) });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * The request target as a URL. Origin-form ('/path?query') is appended to a fixed origin rather than resolved
 * against it: resolving reads '//etc/passwd' as host 'etc' and path '/passwd'.
 */
function parseTarget(target: string): URL | undefined {
  try {
    if (target.startsWith('/')) return new URL(`http://localhost${target}`);
    if (/^https?:\/\//i.test(target)) return new URL(target); // absolute-form, as sent to proxies
  } catch {
    // malformed: the caller answers 400
  }
  return undefined;
}

/** What Node itself answers a client error with when no 'clientError' listener exists (fastify adds one). */
const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n',
};

function onClientError(err: Error & { code?: string }, socket: Socket): void {
  // As Node does: answer only if no response is in flight on the socket, or none of it has been written.
  const inFlight = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
  if (socket.writable && (!inFlight || !inFlight.headersSent)) {
    socket.write(CLIENT_ERROR_ANSWERS[err.code ?? ''] ?? 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  }
  socket.destroy(err);
}

export class HttpFrontDoor {
  readonly server: http.Server;
  /** The fastify instance; routes and plugins go on it (mount()) before listen(). */
  readonly app: FastifyInstance;
  readonly limits: HttpLimits;
  private readonly routes = new RouteTable();
  private readonly sources: HttpSources;
  /** Authentication of every routed request before its body is read; set by the server when a policy is in force. */
  accessCheck: AccessCheck | undefined;
  private boundPort = 0;
  private started = false;
  private closed = false;
  private readonly applyTls = () => (this.server as unknown as https.Server).setSecureContext(this.options.tls!.secureContextOptions());

  constructor(private readonly options: HttpFrontDoorOptions) {
    this.sources = { metrics: options.metrics, health: options.health, notReadyReason: options.notReadyReason };
    const limits = { ...DEFAULT_HTTP_LIMITS, ...options.limits };
    this.limits = limits;
    // Node refuses a headers timeout longer than the request timeout; the request bound includes the headers.
    const headersTimeout = limits.requestTimeoutMs > 0 && limits.headersTimeoutMs > limits.requestTimeoutMs ? limits.requestTimeoutMs : limits.headersTimeoutMs;
    // Both are enforced by a periodic sweep (30 s by default in Node), which would let a slow client stay far
    // past its deadline: sweep at half the shorter timeout, at most once a second.
    const shortest = Math.min(...[headersTimeout, limits.requestTimeoutMs].filter((t) => t > 0), 2000);
    const serverOptions: http.ServerOptions = { headersTimeout, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: Math.max(10, Math.floor(shortest / 2)) };
    // The https server is the http one with TLS in front (same events, limits and methods); its certificate is
    // set in listen(). A TLS handshake is part of getting the headers in, so it gets the headers' timeout.
    const tls = options.tls;
    const server = tls
      ? (https.createServer({ ...serverOptions, requestCert: tls.mutual, rejectUnauthorized: tls.mutual, ...(headersTimeout > 0 ? { handshakeTimeout: headersTimeout } : {}) }) as unknown as http.Server)
      : http.createServer(serverOptions);
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    // With no 'timeout' listener Node destroys a socket that has been silent this long.
    server.timeout = limits.idleTimeoutMs;
    if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
    this.server = server;

    this.app = Fastify({
      serverFactory: (handler) => {
        const front = (req: http.IncomingMessage, res: http.ServerResponse) => {
          const target = req.url ?? '/';
          const url = parseTarget(target);
          if (!url) return sendError(res, 400, `malformed request target ${clip(target, MAX_ECHO_CHARS)}`, announcesBody(req) ? { connection: 'close' } : {});
          // Routing sees the parsed target (dot segments resolved, absolute-form reduced to its path).
          const routed = url.pathname + url.search;
          if (routed !== target) {
            sentTargets.set(req, target);
            req.url = routed;
          }
          handler(req, res);
        };
        server.on('request', front);
        // Handled here so '100 Continue' goes out only once the route has accepted the body, never for one refused.
        server.on('checkContinue', front);
        return server;
      },
      logger: false,
      requestIdHeader: false,
      genReqId: () => '',
      clientErrorHandler: onClientError,
      // The router's own refusals, in our shape: a malformed percent-encoding, an overlong path parameter.
      frameworkErrors: (err, request, reply) => {
        const status = err.code === 'FST_ERR_BAD_URL' ? 400 : err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 500;
        const why = status === 400 ? 'malformed request target' : status === 414 ? 'a path parameter is too long in' : 'internal error routing';
        this.refuse(request, reply, status, `${why} ${sentPath(request.raw)}`);
      },
    });
    const app = this.app;
    app.addHook('onRoute', (route) => {
      this.routes.add(route.url, route.method, (route.config as FrontDoorRouteConfig | undefined)?.servedAs);
    });
    app.addHook('onRequest', async (request, reply) => this.admit(request, reply));
    // fastify closes the connection after any body parser's error; keep it open when the body was read whole.
    app.addHook('onError', async (request, reply) => {
      if (!bodyLeftUnread(request.raw) && reply.getHeader('connection') === 'close') reply.removeHeader('connection');
    });
    app.addHook('onSend', async (request, reply, payload) => {
      if (bodyLeftUnread(request.raw)) void reply.header('connection', 'close');
      return payload;
    });
    app.setErrorHandler((err, request, reply) => this.answerError(err as Error & { statusCode?: number; code?: string }, request, reply));
    app.setNotFoundHandler((request, reply) => this.notFound(request, reply));
    installBodyParsers(app, (request) => sentPath(request.raw));

    app.get('/metrics', async (_request, reply) => {
      const { metrics } = this.sources;
      const text = await metrics.text();
      return reply.type(metrics.contentType).send(text);
    });
    app.get('/healthz', (_request, reply) => reply.type(TEXT).send('ok\n'));
    app.get('/readyz', (_request, reply) => {
      const status = this.sources.health();
      const ready = status === 'SERVING';
      return reply
        .code(ready ? 200 : 503)
        .type(TEXT)
        .send(ready ? 'ready\n' : `not ready: ${this.sources.notReadyReason?.() || status}\n`);
    });
  }

  /**
   * Replaces what /metrics and /readyz report, e.g. with a whole cluster's view (src/cluster/worker.ts); routes
   * read their source per request, so this may be called once the server is listening.
   */
  setSources(sources: Partial<HttpSources>): void {
    Object.assign(this.sources, sources);
  }

  get port(): number {
    return this.boundPort;
  }

  /**
   * Registers `plugin` in its own encapsulated fastify scope (under `prefix` if given), before listen(). It
   * may set its own error handler and, with a prefix, its own not-found handler for that prefix; otherwise
   * the front door's answer for it. The body rules above hold for its routes whatever it sets.
   */
  mount(plugin: FrontDoorPlugin, options: { prefix?: string } = {}): void {
    this.assertNotStarted('mount');
    void this.app.register(async (scope) => plugin(scope), options);
  }

  /**
   * A raw node:http route; `path` ending in '/*' matches that prefix and below. GET routes also answer HEAD,
   * method '*' answers every method. The route takes no request body unless `options.maxBodyBytes` says how
   * large one may be; a body it takes arrives whole, as bytes, whatever its content type.
   */
  addRoute(method: string, path: string, handler: HttpHandler, options: RouteOptions = {}): void {
    this.assertNotStarted('addRoute');
    const maxBodyBytes = options.maxBodyBytes ?? 0;
    const base = path.endsWith('/*') ? path.slice(0, -2) : undefined;
    const urls = base === undefined ? [path] : base ? [base, `${base}/*`] : ['/*'];
    const config: FrontDoorRouteConfig = { takesBody: maxBodyBytes > 0, servedAs: path };
    void this.app.register(async (scope) => {
      installRawParser(scope, (request) => sentPath(request.raw));
      for (const url of urls) {
        scope.route({
          method: method === '*' ? scope.supportedMethods : method.toUpperCase(),
          url,
          config,
          ...(maxBodyBytes > 0 ? { bodyLimit: maxBodyBytes } : {}),
          handler: (request, reply) => this.runRaw(handler, request, reply),
        });
      }
    });
  }

  /** Loads the routes and plugins, then listens; resolves with the bound port. */
  async listen(): Promise<number> {
    this.started = true;
    try {
      await this.app.ready();
    } catch (err) {
      throw new Error(`the HTTP routes could not be loaded: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (this.options.tls) {
      this.applyTls();
      this.options.tls.on('reloaded', this.applyTls);
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    return this.boundPort;
  }

  /**
   * Stops listening and ends every connection, idle keep-alive ones and calls in progress included (else
   * close() waits for them), then closes the fastify instance (plugins' onClose hooks).
   */
  async close(): Promise<void> {
    this.options.tls?.off('reloaded', this.applyTls);
    if (this.server.listening) {
      await new Promise<void>((resolve, reject) => {
        this.server.close((err) => (err ? reject(err) : resolve()));
        this.server.closeAllConnections();
      });
    }
    if (this.started && !this.closed) {
      this.closed = true;
      await this.app.close();
    }
  }

  private assertNotStarted(what: string): void {
    if (this.started) throw new Error(`HttpFrontDoor.${what}() must be called before listen()`);
  }

  /**
   * Runs before any body is read: a request no route matched gets its 404/405 here (unless a mounted plugin's
   * not-found handler is to answer it), and a body is refused or accepted (with '100 Continue') here.
   */
  private async admit(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const req = request.raw;
    if (request.is404) {
      // A mounted plugin's own not-found handler: our parsers leave the body unread for it (http-body.ts).
      if (request.server !== this.app) return undefined;
      this.notFound(request, reply);
      return reply;
    }
    // Credentials before anything is read (src/api/http/access-check.ts).
    if (this.accessCheck && (await this.accessCheck(request, reply))) return reply;
    if (!announcesBody(req)) return undefined;
    const path = sentPath(req);
    if (BODYLESS.has(req.method ?? 'GET') || (request.routeOptions.config as FrontDoorRouteConfig).takesBody === false) {
      throw bodyTooLarge(`${path} takes no request body (limit 0 bytes)`);
    }
    const limit = request.routeOptions.bodyLimit;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) throw bodyTooLarge(`request body of ${declared} bytes is over the limit of ${limit} bytes for ${path}`);
    continueIfExpected(req, reply.raw);
    return undefined;
  }

  /** 404 naming the served paths, or 405 with Allow when the path is served for other methods. */
  private notFound(request: FastifyRequest, reply: FastifyReply): void {
    if (reply.sent) return;
    const path = sentPath(request.raw);
    const allowed = this.routes.allowed(request.url.split('?', 1)[0]!);
    if (allowed.length === 0 || allowed.includes(request.method)) {
      return this.refuse(request, reply, 404, `no route for ${path}; this port serves ${this.routes.served()}`);
    }
    const allow = allowed.join(', ');
    void reply.header('allow', allow);
    this.refuse(request, reply, 405, `method ${request.method} is not allowed on ${path}; allowed: ${allow}`);
  }

  private answerError(err: Error & { statusCode?: number; code?: string }, request: FastifyRequest, reply: FastifyReply): void {
    if (err instanceof ServingError) {
      // A ServingError keeps its meaning (404, 429, 503...).
      const { status, body } = toHttpError(err);
      return this.refuse(request, reply, status, body.error);
    }
    const status = err.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      // fastify's and our refusals (body, content type, validation): their status, a bounded message.
      const message = err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? unsupportedMediaType(request.headers['content-type'], sentPath(request.raw)).message : err.message;
      return this.refuse(request, reply, status, message);
    }
    // Anything else is the server's fault.
    this.refuse(request, reply, 500, toHttpError(internal(`internal error: ${err.message}`)).body.error);
  }

  /** A JSON {error} answer through fastify, closing the connection if announced body bytes are left unread. */
  private refuse(request: FastifyRequest, reply: FastifyReply, status: number, message: string): void {
    if (request.raw.socket?.destroyed) return;
    if (bodyLeftUnread(request.raw)) void reply.header('connection', 'close');
    void reply
      .code(status)
      .type('application/json')
      .send({ error: clip(message, MAX_ERROR_CHARS) });
  }

  /** An addRoute handler: it owns the raw response (fastify steps aside); its failures are answered here. */
  private async runRaw(handler: HttpHandler, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    reply.hijack();
    const res = reply.raw;
    try {
      await handler(request.raw, res, new URL(`http://localhost${request.url}`), Buffer.isBuffer(request.body) ? request.body : EMPTY);
    } catch (err) {
      const { status, body } = toHttpError(err instanceof ServingError ? err : internal(`internal error: ${err instanceof Error ? err.message : String(err)}`));
      if (!res.headersSent && !res.destroyed) sendError(res, status, body.error);
      else res.destroy();
    }
  }
}
