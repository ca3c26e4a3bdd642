/**
 * The HTTP front door (node:http, no framework): Prometheus scrapes and Kubernetes probes today, the REST v2
 * inference API later. Routing is a small table so the v2 router mounts with one addRoute('*', '/v2/*', ...).
 *
 *   GET /metrics  Prometheus exposition of this server's registry
 *   GET /healthz  liveness: 200 while the process can answer at all (never depends on models)
 *   GET /readyz   readiness: 200 when health says SERVING, else 503 (loading or draining)
 *
 * Unknown paths answer 404 and known paths with another method 405 (with Allow), both as JSON {error}.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServerMetrics } from '../../telemetry/metrics';

export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>;

export interface HttpFrontDoorOptions {
  host: string;
  /** 0 picks a free port (listen() resolves with it). */
  port: number;
  metrics: ServerMetrics;
  health: () => 'SERVING' | 'NOT_SERVING';
}

interface Route {
  /** Upper-case method, or '*' for any (a mounted router checks its own). */
  method: string;
  path: string;
  /** The path ended in '/*': matches the prefix itself and everything under it. */
  prefix: boolean;
  handler: HttpHandler;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendText(res: http.ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class HttpFrontDoor {
  readonly server: http.Server;
  private readonly routes: Route[] = [];
  private boundPort = 0;

  constructor(private readonly options: HttpFrontDoorOptions) {
    this.server = http.createServer((req, res) => void this.dispatch(req, res));
    this.addRoute('GET', '/metrics', async (_req, res) => {
      const text = await options.metrics.text();
      sendText(res, 200, text, options.metrics.contentType);
    });
    this.addRoute('GET', '/healthz', (_req, res) => sendText(res, 200, 'ok\n'));
    this.addRoute('GET', '/readyz', (_req, res) => {
      const status = options.health();
      sendText(res, status === 'SERVING' ? 200 : 503, status === 'SERVING' ? 'ready\n' : `not ready: ${status}\n`);
    });
  }

  get port(): number {
    return this.boundPort;
  }

  /** Adds a route; `path` ending in '/*' matches that prefix and below. GET routes also answer HEAD. */
  addRoute(method: string, path: string, handler: HttpHandler): void {
    const prefix = path.endsWith('/*');
    this.routes.push({ method: method.toUpperCase(), path: prefix ? path.slice(0, -2) : path, prefix, handler });
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
    // Bodies are not read by these routes; drain so a client that sent one gets its answer on a reusable socket.
    req.resume();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendJson(res, 400, { error: `malformed request target '${req.url}'` });
      return;
    }
    const onPath = this.routes.filter((r) => (r.prefix ? url.pathname === r.path || url.pathname.startsWith(`${r.path}/`) : url.pathname === r.path));
    if (onPath.length === 0) {
      sendJson(res, 404, { error: `no route for ${url.pathname}; this port serves /metrics, /healthz and /readyz` });
      return;
    }
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const route = onPath.find((r) => r.method === method || r.method === '*');
    if (!route) {
      const allow = [...new Set(onPath.flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method])))].join(', ');
      sendJson(res, 405, { error: `method ${req.method} is not allowed on ${url.pathname}; allowed: ${allow}` }, { allow });
      return;
    }
    try {
      await route.handler(req, res, url);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${message}` });
      else res.destroy();
    }
  }
}
