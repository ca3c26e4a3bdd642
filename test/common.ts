/**
 * Shared test helpers: a real tensorgate server on an ephemeral port with a real grpc-js client, temp
 * model repositories built from fixtures, and event waits (no sleeps).
 */
import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { serverConfigSchema, type ServerConfig } from '../src/config/server-config';
import { createModelClient, unary, type ModelServiceClient } from '../src/client/model-client';
import { createLogger } from '../src/log';
import { BUNDLED_MODELS_DIR, PACKAGE_ROOT } from '../src/paths';
import { TensorgateServer } from '../src/server';

export { unary, BUNDLED_MODELS_DIR, PACKAGE_ROOT };

export interface TestServer {
  server: TensorgateServer;
  address: string;
  port: number;
  client: ModelServiceClient;
  close(): Promise<void>;
}

export async function startTestServer(overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const config = serverConfigSchema.parse({ port: 0, httpPort: 0, workers: 2, logLevel: 'silent', shutdownGraceMs: 5000, ...overrides });
  const server = new TensorgateServer(config, createLogger(config.logLevel));
  const port = await server.start();
  const address = `127.0.0.1:${port}`;
  const client = createModelClient(address);
  return {
    server,
    address,
    port,
    client,
    async close() {
      client.close();
      await server.shutdown(1000);
    },
  };
}

/** Runs `body` against a fresh test server and always closes it. */
export async function withTestServer<T>(overrides: Partial<ServerConfig>, body: (ts: TestServer) => Promise<T>): Promise<T> {
  const ts = await startTestServer(overrides);
  try {
    return await body(ts);
  } finally {
    await ts.close();
  }
}

/** A temp folder removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tensorgate-${prefix}-`));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Writes models/<name>/config.yaml (when given) and creates each version folder via `write`. */
export function addModel(root: string, name: string, config: string | undefined, versions: Record<number, (file: string) => void>): void {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  if (config !== undefined) fs.writeFileSync(path.join(dir, 'config.yaml'), config);
  for (const [v, write] of Object.entries(versions)) {
    fs.mkdirSync(path.join(dir, v), { recursive: true });
    write(path.join(dir, v, 'model.onnx'));
  }
}

/**
 * Copies a bundled model folder into a temp repository: by default its version 1 only, with a config that serves
 * the newest version (`latest: 1`), the fixture most tests build on (a version dropped in is switched to). The
 * bundled mlp and convnet also carry an int8 version 2 that their configs leave unserved; `allVersions` copies
 * the folder as it is.
 */
export function copyBundledModel(root: string, name: string, options: { allVersions?: boolean } = {}): void {
  const from = path.join(BUNDLED_MODELS_DIR, name);
  const to = path.join(root, name);
  fs.cpSync(from, to, { recursive: true, filter: (src) => options.allVersions || !/^\d+$/.test(path.basename(src)) || path.basename(src) === '1' || path.dirname(src) !== from });
  if (options.allVersions) return;
  const config = path.join(to, 'config.yaml');
  if (fs.existsSync(config)) fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace(/^version_policy:.*\n {2}specific: \[1\].*\n/m, 'version_policy:\n  latest: 1\n'));
}

/** Asserts a promise rejects with a gRPC status and returns the error for further checks. */
export async function expectStatus(promise: Promise<unknown>, code: grpc.status, detailsPattern?: RegExp): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (e.code !== code) {
      throw new Error(`expected ${grpc.status[code]} but got ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`);
    }
    if (detailsPattern && !detailsPattern.test(e.details)) {
      throw new Error(`status ${grpc.status[code]} details ${JSON.stringify(e.details)} do not match ${detailsPattern}`);
    }
    return e;
  }
  throw new Error(`expected ${grpc.status[code]} but the call succeeded`);
}

/** A proto Tensor for the request, from plain values. */
export function f32Tensor(name: string, shape: number[], values: ArrayLike<number>) {
  const data = Buffer.from(new Float32Array(values).buffer);
  return { name, dtype: 'FP32', shape, data, string_data: [] };
}

export function float32s(data: Buffer): Float32Array {
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

import { seededFloats } from '../tools/onnx-builder';

export { seededFloats };

/**
 * Sends `request` and resolves once its run is inside a worker (so requests sent after it queue up).
 * Returns `{ done }` rather than the call's promise, which an async function would flatten into its own.
 */
export async function startRun(ts: TestServer, request: object): Promise<{ done: Promise<any> }> {
  const started = once(ts.server.pool, 'run-start');
  const done = unary(ts.client, 'Predict', request);
  await started;
  return { done };
}

/** The slow fixture model's input: ~90 us of compute per row on one thread. */
export const slowRequest = (rows: number, model = 'slow') => ({ model, inputs: [f32Tensor('x', [rows, 256], new Float32Array(rows * 256))] });

/** Resolves once at least `n` requests for the session `key` wait in the scheduler. */
export async function waitQueued(ts: TestServer, key: string, n: number): Promise<void> {
  while (ts.server.scheduler.queueDepthOf(key) < n) await once(ts.server.scheduler, 'queued');
}
