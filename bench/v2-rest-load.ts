/**
 * Closed-loop load on the REST v2 infer route (POST /v2/models/{m}/infer): `concurrency` callers on
 * keep-alive connections (one node:http Agent, one socket per caller), each posting the same body the
 * moment its previous answer has been read whole. A warm-up (connections, JIT, first batches) is not
 * recorded; then every answer that completes within the measured window is.
 *
 * It runs on the calling thread: at high concurrency on small models the client itself can be the limit,
 * so compare it against the gRPC load generator (bench/load-generator.ts, worker threads) with that in mind.
 *
 * @example
 *   const r = await runRestLoad({ port: 8080, path: '/v2/models/mlp/infer', body: restInferBody(true), concurrency: 16, durationMs: 5000 });
 *   console.log(r.requests / r.seconds, r.p50Ms, r.p99Ms, r.errors);
 */
import * as http from 'node:http';
import { percentile } from './load-generator';
import { rowElements, seededFloats, TENSOR_INPUTS, type BenchModel } from './workload';

/** An infer request body and the headers it goes with (content type, Inference-Header-Content-Length). */
export interface RestInferBody {
  bytes: Buffer;
  headers: Record<string, string>;
}

export interface RestLoadOptions {
  port: number;
  host?: string;
  /** The infer route, e.g. /v2/models/mlp/infer. */
  path: string;
  body: RestInferBody;
  concurrency: number;
  durationMs: number;
  /** Load before the window, not recorded (default 0). */
  warmupMs?: number;
}

/** The figures of bench/load-generator.ts's LoadPoint that a REST load has, under the same names where they mean the same. */
export interface RestLoadResult {
  concurrency: number;
  /** Requests answered 200 within the measured window. */
  requests: number;
  /** Answers other than 200 and failed connections within the window. */
  errors: number;
  /** The same by kind: "HTTP 503", "ECONNRESET"... -> count. */
  errorKinds: Record<string, number>;
  /** The measured window. */
  seconds: number;
  reqPerS: number;
  /** Latency of the 200 answers, nearest rank. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
}

/**
 * The same single-row input as the gRPC bench (workload.ts's seeded data) as a REST infer body: JSON (`data`
 * elements, JSON outputs) or, with `binary`, Triton's binary tensor extension (binary input and outputs, as
 * tritonclient sends them).
 */
export function restInferBody(binary: boolean, model: Exclude<BenchModel, 'sentiment'> = 'mlp'): RestInferBody {
  const { name, dims } = TENSOR_INPUTS[model];
  const values = seededFloats(rowElements(model), 42);
  const shape = [1, ...dims];
  if (!binary) {
    return { bytes: Buffer.from(JSON.stringify({ inputs: [{ name, shape, datatype: 'FP32', data: Array.from(values) }] })), headers: { 'content-type': 'application/json' } };
  }
  const raw = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const header = Buffer.from(JSON.stringify({ parameters: { binary_data_output: true }, inputs: [{ name, shape, datatype: 'FP32', parameters: { binary_data_size: raw.length } }] }));
  return {
    bytes: Buffer.concat([header, raw]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
  };
}

export async function runRestLoad(o: RestLoadOptions): Promise<RestLoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency });
  const { path } = o;
  const body = o.body.bytes;
  const headers = { ...o.body.headers, 'content-length': String(body.length) };
  // 0 warm-up, 1 measuring, 2 stopping (no new requests).
  let phase = o.warmupMs ? 0 : 1;
  let latencies = new Float64Array(1 << 14);
  let ok = 0;
  const errors: Record<string, number> = {};
  let errorCount = 0;

  const record = (started: number, error: string | undefined) => {
    if (phase !== 1) return;
    if (error !== undefined) {
      errors[error] = (errors[error] ?? 0) + 1;
      errorCount++;
      return;
    }
    if (ok === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[ok++] = performance.now() - started;
  };

  /** One caller: posts, reads the answer whole (so the socket is reused), and posts again until stopping. */
  const caller = () =>
    new Promise<void>((resolve) => {
      const fire = () => {
        if (phase === 2) return resolve();
        const started = performance.now();
        const req = http.request({ host: o.host ?? '127.0.0.1', port: o.port, method: 'POST', path, headers, agent }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => {
            record(started, res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`);
            fire();
          });
          res.on('error', (err: NodeJS.ErrnoException) => {
            record(started, err.code ?? err.message);
            fire();
          });
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          record(started, err.code ?? err.message);
          // A refused connection would spin: let the event loop breathe before the next try.
          setImmediate(fire);
        });
        req.end(body);
      };
      fire();
    });

  const callers = Array.from({ length: o.concurrency }, caller);
  try {
    if (o.warmupMs) {
      await sleep(o.warmupMs);
      phase = 1;
    }
    const t0 = performance.now();
    await sleep(o.durationMs);
    phase = 2;
    const windowMs = performance.now() - t0;
    await Promise.all(callers);
    const sorted = latencies.slice(0, ok).sort();
    return {
      concurrency: o.concurrency,
      requests: ok,
      errors: errorCount,
      errorKinds: errors,
      seconds: windowMs / 1000,
      reqPerS: ok / (windowMs / 1000),
      p50Ms: percentile(sorted, 50),
      p90Ms: percentile(sorted, 90),
      p99Ms: percentile(sorted, 99),
    };
  } finally {
    agent.destroy();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
