/**
 * `tensorgate serve --processes N` (node:cluster): every process serves on the shared ports, /metrics is one
 * aggregated view, /readyz answers for all the processes, a process that dies is replaced, SIGTERM drains them
 * all, and a port in use stops the server with one line. Plus the cluster's pure decisions.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { createModelClient, type ModelServiceClient } from '../src/client/model-client';
import { clusterReadiness, restartDelayMs, shareOfMachine } from '../src/cluster/cluster-policy';
import { resolveServerConfig, serverConfigSchema } from '../src/config/server-config';
import { addModel, copyBundledModel, f32Tensor, tempDir, unary } from './common';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { writeSlowModel } from './fixtures/onnx-fixtures';
import { parseExposition, startServe, type LogLine, type ServeProcess } from './serve-process';

let repo: ReturnType<typeof tempDir>;
before(() => {
  repo = tempDir('processes');
  copyBundledModel(repo.dir, 'mlp');
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
});
after(() => repo.cleanup());

const mlpRequest = (seed: number) => ({ model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64).fill(seed / 10))] });
const slowRequest = (rows: number) => ({ model: 'slow', inputs: [f32Tensor('x', [rows, 256], new Float32Array(rows * 256))] });

/** Its own channel, so its own connection: the cluster hands out connections, not calls. */
const ownConnection = (address: string) => createModelClient(address, { 'grpc.use_local_subchannel_pool': 1 });

const primaryLine = (match: (l: LogLine) => boolean) => (l: LogLine) => l.process === 0 && match(l);
const isReady = primaryLine((l) => l.msg.startsWith('tensorgate serving on'));

/** Starts the cluster and waits for the primary's line saying every process is SERVING. */
async function startCluster(extra: string[] = []): Promise<{ serve: ServeProcess; ready: LogLine; pids: () => number[] }> {
  const serve = startServe(['--processes', '2', '--models', repo.dir, '--port', '0', '--http-port', '0', '--workers', '1', ...extra]);
  const ready = await serve.waitFor(isReady);
  const pids = () => serve.lines.filter(primaryLine((l) => / started \(pid \d+\)$/.test(l.msg))).map((l) => l.pid as number);
  return { serve, ready, pids };
}

async function scrape(httpPort: unknown): Promise<{ text: string; samples: ReturnType<typeof parseExposition> }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return { text, samples: parseExposition(text) };
}

const total = (samples: ReturnType<typeof parseExposition>, name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('--processes 2 serves from both processes, reports one metrics view, and drains both on SIGTERM', async () => {
  const { serve, ready, pids } = await startCluster(['--log-level', 'debug']);
  const clients: ModelServiceClient[] = [];
  try {
    assert.deepEqual([typeof ready.port, ready.processes], ['number', 2]);
    assert.equal((await fetch(`http://127.0.0.1:${ready.httpPort}/readyz`)).status, 200);
    const address = `127.0.0.1:${ready.port}`;
    // Four connections, opened one after another: the primary hands them to the processes in turn.
    let sent = 0;
    for (let c = 0; c < 4; c++) {
      const client = ownConnection(address);
      clients.push(client);
      for (let i = 0; i < 2; i++, sent++) assert.equal((await unary(client, 'Predict', mlpRequest(sent))).outputs[0].shape.join(), '1,10');
    }

    const { text, samples } = await scrape(ready.httpPort);
    // One view: the request counter is the sum over both processes, whichever process answered the scrape.
    assert.equal(total(samples, 'tensorgate_requests_total', { method: 'Predict', model: 'mlp', code: 'OK' }), sent);
    const perProcess = [1, 2].map((p) => total(samples, 'tensorgate_cluster_requests_total', { process: String(p) }));
    assert.ok(perProcess.every((n) => n > 0), `both processes answered: ${perProcess}`);
    assert.equal(perProcess[0]! + perProcess[1]!, sent);
    assert.equal(total(samples, 'tensorgate_cluster_processes'), 2);
    assert.equal(total(samples, 'tensorgate_model_state', { model: 'mlp', state: 'READY' }), 2, 'READY in both processes');
    assert.equal(samples.filter((s) => s.name === 'tensorgate_process_start_time_seconds').length, 0, 'per-process start times are omitted, not summed');
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if ((promtool.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') assert.fail('promtool is missing: apt-get install -y prometheus');
    assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);

    // Work in flight in both processes, then SIGTERM to the primary alone.
    const inFlight = clients.map((client) => unary(client, 'Predict', slowRequest(2048)));
    for (const p of [1, 2]) await serve.waitFor((l) => l.msg === 'request received' && l.model === 'slow' && l.process === p);
    const workers = pids();
    assert.equal(workers.length, 2);
    serve.child.kill('SIGTERM');
    for (const res of await Promise.all(inFlight)) assert.deepEqual(res.outputs[0].shape, [2048, 256], 'each in-flight request got its full answer');
    const [code, signal] = await serve.exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    assert.deepEqual(workers.filter(alive), [], 'no serving process outlives the primary');
    for (const p of [1, 2]) assert.ok(serve.lines.some((l) => l.msg === 'stopped' && l.process === p), `process ${p} drained`);
  } finally {
    for (const c of clients) c.close();
    if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
  }
});

test('a process that dies is replaced: /readyz says 503 until it is SERVING again, then both processes serve', async () => {
  const { serve, ready, pids } = await startCluster();
  try {
    const [first] = pids();
    process.kill(first!, 'SIGKILL');
    await serve.waitFor(primaryLine((l) => l.msg.startsWith('process 1 exited unexpectedly (signal SIGKILL)')));
    const readyz = await fetch(`http://127.0.0.1:${ready.httpPort}/readyz`);
    assert.equal(readyz.status, 503);
    assert.match(await readyz.text(), /^not ready: process 1 of 2/);
    await serve.waitFor(primaryLine((l) => l.msg.startsWith('ready again')));
    assert.equal((await fetch(`http://127.0.0.1:${ready.httpPort}/readyz`)).status, 200);
    assert.equal(pids().length, 3, 'a new process took slot 1');
    for (let c = 0; c < 2; c++) {
      const client = ownConnection(`127.0.0.1:${ready.port}`);
      await unary(client, 'Predict', mlpRequest(c));
      client.close();
    }
    const { samples } = await scrape(ready.httpPort);
    assert.equal(total(samples, 'tensorgate_cluster_restarts_total'), 1);
    assert.equal(total(samples, 'tensorgate_requests_total', { method: 'Predict' }), 2);
    serve.child.kill('SIGTERM');
    assert.deepEqual(await serve.exited, [0, null]);
  } finally {
    if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
  }
});

test('with --processes 2 a gRPC port in use stops the server with one line, exit 1', async () => {
  const taken = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => taken.once('listening', r));
  const port = (taken.address() as net.AddressInfo).port;
  try {
    const serve = startServe(['--processes', '2', '--models', repo.dir, '--port', String(port), '--http-port', '0', '--workers', '1']);
    const [code] = await serve.exited;
    assert.equal(code, 1);
    const fatal = serve.lines.filter((l) => (l.level as number) >= 50);
    assert.deepEqual(fatal.map((l) => l.msg), [`cannot start: cannot listen for gRPC on 127.0.0.1:${port}: the port is already in use; choose another port with --port N or TENSORGATE_PORT (0 picks a free one)`]);
    assert.equal(serve.stderr(), '');
  } finally {
    taken.close();
  }
});

test('--processes takes a count or auto; 0, negatives and fractions are refused naming the flag or variable', () => {
  assert.equal(resolveServerConfig({}, {}).processes, 1);
  assert.equal(resolveServerConfig({ processes: '3' }, {}).processes, 3);
  assert.equal(resolveServerConfig({}, { TENSORGATE_PROCESSES: '2' }).processes, 2);
  assert.ok(resolveServerConfig({ processes: 'auto' }, {}).processes >= 1);
  assert.throws(() => resolveServerConfig({ processes: '0' }, {}), /^Error: invalid setting: --processes "0": Too small: expected number to be >=1 \(--processes: /);
  assert.throws(() => resolveServerConfig({}, { TENSORGATE_PROCESSES: '-2' }), /TENSORGATE_PROCESSES "-2": Too small/);
  assert.throws(() => resolveServerConfig({ processes: '1.5' }, {}), /--processes "1.5": expected int/);
});

test('each process gets its share of the cores: workers, ONNX Runtime threads and solo-run threads divided, given settings kept', () => {
  const config = (over: object) => serverConfigSchema.parse({ processes: 2, ...over });
  assert.deepEqual(pick(shareOfMachine(config({}), 2)), { workers: 1, intraOpThreads: 1, soloThreads: 1 });
  assert.deepEqual(pick(shareOfMachine(config({}), 16)), { workers: 4, intraOpThreads: 2, soloThreads: 8 });
  assert.deepEqual(pick(shareOfMachine(config({ processes: 4 }), 2)), { workers: 1, intraOpThreads: 1, soloThreads: 1 });
  assert.deepEqual(pick(shareOfMachine(config({ workers: 3 }), 8)), { workers: 3, intraOpThreads: 1, soloThreads: 4 });
  assert.deepEqual(pick(shareOfMachine(config({ intraOpThreads: 5, soloThreads: 3 }), 8)), { workers: 4, intraOpThreads: 5, soloThreads: 3 });
});
const pick = (c: { workers: number; intraOpThreads: number; soloThreads: number }) => ({ workers: c.workers, intraOpThreads: c.intraOpThreads, soloThreads: c.soloThreads });

test('a process that keeps exiting early is restarted after a growing delay, capped at 30 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 8, 20].map(restartDelayMs), [0, 500, 1000, 2000, 4000, 30_000, 30_000]);
});

test('the server is ready only while every process is; draining overrides', () => {
  const serving = { status: 'SERVING' as const, reason: '' };
  assert.deepEqual(clusterReadiness([{ index: 1, ...serving }, { index: 2, ...serving }], false), serving);
  assert.deepEqual(clusterReadiness([{ index: 1, ...serving }, { index: 2, status: 'NOT_SERVING', reason: 'loading models' }], false), {
    status: 'NOT_SERVING',
    reason: 'process 2 of 2: loading models',
  });
  assert.equal(clusterReadiness([{ index: 1 }, { index: 2, ...serving }], false).reason, 'process 1 of 2 is starting');
  assert.equal(clusterReadiness([{ index: 1, down: 'exited (code 1) and restarts in 2 s' }], false).reason, 'process 1 of 1 exited (code 1) and restarts in 2 s');
  assert.equal(clusterReadiness([{ index: 1, ...serving }], true).status, 'NOT_SERVING');
});
