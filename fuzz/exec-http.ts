/**
 * Sends HTTP cases with node:http (keep-alive, the body exactly as generated) and checks the answer: no 500,
 * within the hang deadline, and every error a bounded JSON body in its API's shape: {"error": "..."} on /v2
 * and the port's own routes, {"error": {"message": "...", ...}} on the OpenAI-compatible /v1. A streamed
 * OpenAI answer's error event must not be an internal one either.
 */
import * as http from 'node:http';
import { unb64, type Case, type Outcome } from './case';
import { knownFinding } from './known-findings';

/** Largest error body accepted: messages are cut to 1024 characters, and JSON escapes can at most ~6x a character. */
export const MAX_ERROR_BODY_BYTES = 8 * 1024;
/** Answers written by Node's HTTP parser itself (http-server.ts CLIENT_ERROR_ANSWERS), before any route: no body. */
const PARSER_ANSWERS = new Set([400, 408, 413, 431]);
/** Most bytes of an answer kept for the checks. */
const KEEP_BYTES = 1 << 20;

export class HttpExecutor {
  private readonly agent: http.Agent;

  constructor(private readonly port: number, private readonly hangMs: number, sockets: number) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  close(): void {
    this.agent.destroy();
  }

  run(c: Extract<Case, { kind: 'http' }>): Promise<Outcome> {
    const body = unb64(c.body);
    const chunked = c.headers['transfer-encoding'] === 'chunked';
    const headers: http.OutgoingHttpHeaders = { ...c.headers, ...(chunked ? {} : { 'content-length': body.length }) };
    return new Promise((resolve) => {
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      let req: http.ClientRequest;
      try {
        req = http.request({ host: '127.0.0.1', port: this.port, method: c.method, path: c.path, headers, agent: this.agent });
      } catch (err) {
        // Node's client refuses to send some paths or headers at all: nothing reached the server.
        return settle({ code: 'client refused', message: (err as Error).message, violations: [] });
      }
      const timer = setTimeout(() => {
        req.destroy();
        settle({ code: 'no answer', message: '', violations: [`hang: no answer within ${this.hangMs} ms`] });
      }, this.hangMs);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size <= KEEP_BYTES) chunks.push(d);
        });
        res.on('end', () => settle(check(c, res, Buffer.concat(chunks))));
        res.on('error', (err) => settle({ code: 'reset', message: err.message, violations: [] }));
      });
      // The server may answer (413, 415) and close before reading a body it refuses: the client sees a reset.
      req.on('error', (err) => settle({ code: 'reset', message: (err as NodeJS.ErrnoException).code ?? err.message, violations: [] }));
      req.end(body);
    });
  }
}

function check(c: Extract<Case, { kind: 'http' }>, res: http.IncomingMessage, body: Buffer): Outcome {
  const status = res.statusCode ?? 0;
  const code = `HTTP ${status}`;
  const violations: string[] = [];
  const openAi = c.path.startsWith('/v1');
  let message = '';
  if (status >= 400) {
    if (body.length === 0 && PARSER_ANSWERS.has(status) && res.headers.connection === 'close') {
      return { code, message: "Node's HTTP parser refused the request", violations };
    }
    let parsed: unknown;
    // Health and readiness answer false with 400 and {"live"|"ready": false}, as Triton does (v2-routes.ts flag()).
    if (status === 400 && /^\/v2\/(health\/(live|ready)|models\/.*\/ready)\/?$/.test(c.path.split('?')[0]!) && /^\{"(live|ready)":false\}$/.test(body.toString())) {
      return { code, message: 'not ready', violations };
    }
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      violations.push(`error body is not JSON: ${JSON.stringify(body.subarray(0, 200).toString('utf8'))}`);
    }
    const error = (parsed as { error?: unknown } | undefined)?.error;
    const text = openAi && error !== null && typeof error === 'object' ? (error as { message?: unknown }).message : error;
    if (parsed !== undefined && typeof text !== 'string') violations.push(`error body has no ${openAi ? 'error.message' : 'error'} string: ${body.subarray(0, 200).toString('utf8')}`);
    message = typeof text === 'string' ? text : '';
    if (body.length > MAX_ERROR_BODY_BYTES) violations.push(`error body is ${body.length} bytes (bound ${MAX_ERROR_BODY_BYTES})`);
  }
  let known = status === 500 ? knownFinding(message)?.id : undefined;
  if ((status === 500 && !known) || status === 502) violations.push(`status ${status}: ${message || body.subarray(0, 300).toString('utf8')}`);
  // A stream's error event after its 200 (openai-routes.ts EventStream.end(error)).
  if (status === 200 && openAi && /event-stream/.test(String(res.headers['content-type']))) {
    for (const m of body.toString('utf8').matchAll(/^data: (\{"error".*)$/gm)) {
      const e = (JSON.parse(m[1]!) as { error?: { code?: string; message?: string } }).error;
      message = e?.message ?? '';
      const isKnown = knownFinding(message)?.id;
      if (isKnown) known = isKnown;
      else if (e?.code === 'internal' || e?.code === 'unknown') violations.push(`stream error event ${e.code}: ${e.message}`);
    }
  }
  return { code, message, violations, ...(known ? { known } : {}) };
}
