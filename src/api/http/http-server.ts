/**
 * The HTTP front door (node:http, no framework): Prometheus scrapes and Kubernetes probes today, the REST v2
 * inference API later. Routing is a small table so the v2 router mounts with one addRoute('*', '/v2/*', ...).
 *
 *   GET /metrics  Prometheus exposition of this server's registry (with --processes N: every process's, aggregated)
 *   GET /healthz  liveness: 200 while the process can answer at all (never depends on models)
 *   GET /readyz   readiness: 200 when health "" says SERVING, else 503 with why (loading, a model not READY, draining)
 *
 * Unknown paths answer 404 and known paths with another method 405 (with Allow), both as JSON {error}.
 *
 * The port faces clients we do not control, so nothing a client does may hold resources unboundedly: headers
 * and whole requests must arrive within their timeouts (else 408 and close), idle keep-alive and idle sockets
 * close, connections are capped, and a request body is read only by a route that declared it takes one, up to
 * that route's limit. A body that is refused is never read: the answer says `Connection: close` so the unread
 * bytes are not parsed as a next request. Errors echo client input only as a bounded prefix.
 */
import { clip, internal, ServingError } from '../../core/errors';
import { toHttpError } from './status';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** `body` is the whole request body, already read within the route's limit (empty for routes that take none). */
export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: Buffer) => void | Promise<void>;

export interface RouteOptions {
  /** Largest request body the route takes, in bytes; 0 (the default): it takes none and refuses any. */
  maxBodyBytes?: number;
}

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
}

interface Route {
  /** Upper-case method, or '*' for any (a mounted router checks its own). */
  method: string;
  path: string;
  /** The path ended in '/*': matches the prefix itself and everything under it. */
  prefix: boolean;
  handler: HttpHandler;
  maxBodyBytes: number;
}

/** Longest error message sent; a handler's error text can carry anything. */
const MAX_ERROR_CHARS = 1024;
/** Longest piece of client input (a path, a request target) echoed in a message. */
const MAX_ECHO_CHARS = 64;
const EMPTY = Buffer.alloc(0);

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A JSON {error} answer whose size is bounded whatever the message holds. */
export function sendError(res: http.ServerResponse, status: number, message: string, headers: http.OutgoingHttpHeaders = {}): void {
  sendJson(res, status, { error: clip(message, MAX_ERROR_CHARS) }, headers);
}

export function sendText(res: http.ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
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

/** Whether the request announces a body: chunked (any Transfer-Encoding) or a Content-Length above 0. */
function announcesBody(req: http.IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * Reads the body, counting as it arrives; resolves undefined as soon as it passes `limit` (the rest stays
 * unread) so a chunked body cannot grow past what the route allows. Rejects if the request ends early.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        resolve(undefined);
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => onError(new Error('the request closed before its body was complete'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

export class HttpFrontDoor {
  readonly server: http.Server;
  readonly limits: HttpLimits;
  private readonly routes: Route[] = [];
  private readonly sources: HttpSources;
  private boundPort = 0;

  constructor(private readonly options: HttpFrontDoorOptions) {
    this.sources = { metrics: options.metrics, health: options.health, notReadyReason: options.notReadyReason };
    const limits = { ...DEFAULT_HTTP_LIMITS, ...options.limits };
    this.limits = limits;
    // Node refuses a headers timeout longer than the request timeout; the request bound includes the headers.
    const headersTimeout = limits.requestTimeoutMs > 0 && limits.headersTimeoutMs > limits.requestTimeoutMs ? limits.requestTimeoutMs : limits.headersTimeoutMs;
    // Both are enforced by a periodic sweep (30 s by default in Node), which would let a slow client stay far
    // past its deadline: sweep at half the shorter timeout, at most once a second.
    const shortest = Math.min(...[headersTimeout, limits.requestTimeoutMs].filter((t) => t > 0), 2000);
    this.server = http.createServer({
      headersTimeout,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(10, Math.floor(shortest / 2)),
    });
    this.server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    // With no 'timeout' listener Node destroys a socket that has been silent this long.
    this.server.timeout = limits.idleTimeoutMs;
    if (limits.maxConnections > 0) this.server.maxConnections = limits.maxConnections;
    const dispatch = (req: http.IncomingMessage, res: http.ServerResponse) => void this.dispatch(req, res);
    this.server.on('request', dispatch);
    // Handled here so '100 Continue' goes out only once the route has accepted the body, never for one refused.
    this.server.on('checkContinue', dispatch);
    this.addRoute('GET', '/metrics', async (_req, res) => {
      const { metrics } = this.sources;
      const text = await metrics.text();
      sendText(res, 200, text, metrics.contentType);
    });
    this.addRoute('GET', '/healthz', (_req, res) => sendText(res, 200, 'ok\n'));
    this.addRoute('GET', '/readyz', (_req, res) => {
      const status = this.sources.health();
      sendText(res, status === 'SERVING' ? 200 : 503, status === 'SERVING' ? 'ready\n' : `not ready: ${this.sources.notReadyReason?.() || status}\n`);
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
   * Adds a route; `path` ending in '/*' matches that prefix and below. GET routes also answer HEAD. A route
   * takes no request body unless `options.maxBodyBytes` says how large one may be.
   */
  addRoute(method: string, path: string, handler: HttpHandler, options: RouteOptions = {}): void {
    const prefix = path.endsWith('/*');
    const maxBodyBytes = options.maxBodyBytes ?? 0;
    this.routes.push({ method: method.toUpperCase(), path: prefix ? path.slice(0, -2) : path, prefix, handler, maxBodyBytes });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        this.boundPort = (this.server.address() as AddressInfo).port;
        resolve(this.boundPort);
      });
    });
  }

  /** Stops listening and ends every connection, idle keep-alive ones included (else close() waits for them). */
  close(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      this.server.closeAllConnections();
    });
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    // The path as the client sent it (for messages); routing uses the parsed, dot-segment-resolved one.
    const sentPath = clip(target.split(/[?#]/, 1)[0]!, MAX_ECHO_CHARS);
    // Answers sent without reading a body the client announced close the connection: the unread bytes would
    // otherwise be parsed as the next request. Answers that consumed the whole request keep it alive.
    let unread = announcesBody(req);
    const refuse = (status: number, message: string, headers: http.OutgoingHttpHeaders = {}) => {
      if (req.socket.destroyed) return;
      sendError(res, status, message, unread ? { ...headers, connection: 'close' } : headers);
    };
    try {
      const url = parseTarget(target);
      if (!url) return refuse(400, `malformed request target ${clip(target, MAX_ECHO_CHARS)}`);
      const onPath = this.routes.filter((r) => (r.prefix ? url.pathname === r.path || url.pathname.startsWith(`${r.path}/`) : url.pathname === r.path));
      if (onPath.length === 0) return refuse(404, `no route for ${sentPath}; this port serves ${this.servedPaths()}`);
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      const route = onPath.find((r) => r.method === method || r.method === '*');
      if (!route) {
        const allow = [...new Set(onPath.flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method])))].join(', ');
        return refuse(405, `method ${req.method} is not allowed on ${sentPath}; allowed: ${allow}`, { allow });
      }
      let body: Buffer = EMPTY;
      if (unread) {
        const limit = route.maxBodyBytes;
        if (limit === 0) return refuse(413, `${sentPath} takes no request body (limit 0 bytes)`);
        const declared = Number(req.headers['content-length'] ?? 0);
        if (declared > limit) return refuse(413, `request body of ${declared} bytes is over the limit of ${limit} bytes for ${sentPath}`);
        if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
        const read = await readBody(req, limit);
        if (!read) return refuse(413, `request body is over the limit of ${limit} bytes for ${sentPath}`);
        body = read;
        unread = false;
      }
      await route.handler(req, res, url, body);
    } catch (err) {
      // A ServingError keeps its meaning (404, 429, 503...); anything else is the server's fault.
      const { status, body } = toHttpError(err instanceof ServingError ? err : internal(`internal error: ${err instanceof Error ? err.message : String(err)}`));
      if (!res.headersSent) refuse(status, body.error);
      else res.destroy();
    }
  }

  /** The route table for a 404's message: bounded, since routes are ours. */
  private servedPaths(): string {
    return [...new Set(this.routes.map((r) => (r.prefix ? `${r.path}/*` : r.path)))].join(', ');
  }
}
