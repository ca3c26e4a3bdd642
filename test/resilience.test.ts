/**
 * Fault handling in the running server: circuit breakers open on server-side failures only and recover
 * through a probe; a stalled execution answers DEADLINE_EXCEEDED on time and its worker is replaced; a
 * crashed worker is replaced and later requests succeed. Faults are injected honestly: a fixture model
 * that fails on a given input (Reshape to an impossible shape) and a slow model.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { addModel, copyBundledModel, expectStatus, f32Tensor, startTestServer, tempDir, unary, type TestServer } from './common';
import { writeReshapeModel, writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';

let repo: ReturnType<typeof tempDir>;
let ts: TestServer;

before(async () => {
  repo = tempDir('resilience');
  copyBundledModel(repo.dir, 'mlp');
  const breaker = 'circuit_breaker: { volume_threshold: 4, error_threshold_percentage: 50, reset_timeout_ms: 200, rolling_window_ms: 10000 }\n';
  addModel(repo.dir, 'flaky', breaker, { 1: writeReshapeModel });
  // The same graph, never run successfully before it fails: its failures are the model's (see FailureBlame).
  addModel(repo.dir, 'broken', breaker, { 1: writeReshapeModel });
  addModel(repo.dir, 'crashy', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
  addModel(repo.dir, 'stall', SLOW_MODEL_CONFIG + 'execution_timeout_ms: 40\n', { 1: writeSlowModel });
  ts = await startTestServer({ modelRepository: repo.dir, workers: 2 });
});
after(async () => {
  await ts.close();
  repo.cleanup();
});

const shapeTensor = (a: bigint, b: bigint) => ({ name: 'shape', dtype: 'INT64', shape: [2], data: Buffer.from(new BigInt64Array([a, b]).buffer), string_data: [] });
const flaky = (ok: boolean, model = 'flaky') => ({ model, inputs: [f32Tensor('x', [2, 4], new Float32Array(8)), ok ? shapeTensor(4n, 2n) : shapeTensor(3n, 5n)] });
const mlp = () => ({ model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64))], options: { bypass_cache: true } });

async function runs(key: string): Promise<number> {
  return (await ts.server.pool.stats()).reduce((n, s) => n + (s.runs[key] ?? 0), 0);
}

test('a flood of client errors never opens the breaker', async () => {
  for (let i = 0; i < 30; i++) {
    await expectStatus(unary(ts.client, 'Predict', { model: 'flaky', inputs: [f32Tensor('x', [2, 5], new Float32Array(10)), shapeTensor(1n, 1n)] }), grpc.status.INVALID_ARGUMENT);
  }
  const res = await unary(ts.client, 'Predict', flaky(true));
  assert.deepEqual(res.outputs[0].shape, [4, 2]);
  const info = await unary(ts.client, 'GetModel', { model: 'flaky' });
  assert.equal(info.versions[0].breaker.state, 'closed');
});

test('server-side failures (a model that runs no input) open the breaker; it fails fast, other models serve, a probe closes it', async () => {
  let transition: { key: string; from: string; to: string } | undefined;
  ts.server.breakers.once('state', (t) => (transition = t));
  let failures = 0;
  // Each failure answers INTERNAL; once volume_threshold calls are in the window with > 50% failed, it opens.
  while (!transition) {
    await expectStatus(unary(ts.client, 'Predict', flaky(false, 'broken')), grpc.status.INTERNAL, /ONNX Runtime failed/);
    failures++;
    assert.ok(failures <= 4, 'opens within volume_threshold failures');
  }
  assert.deepEqual([transition.key, transition.from, transition.to], ['broken@1', 'closed', 'open']);

  const runsWhileOpen = await runs('broken@1');
  const err = await expectStatus(unary(ts.client, 'Predict', flaky(true, 'broken')), grpc.status.UNAVAILABLE, /model 'broken' version 1 is unavailable: circuit breaker open/);
  assert.match(err.details, /next probe at \d{4}-\d\d-\d\dT/);
  assert.equal(await runs('broken@1'), runsWhileOpen, 'fast fail: nothing ran');
  const info = await unary(ts.client, 'GetModel', { model: 'broken' });
  assert.equal(info.versions[0].breaker.state, 'open');
  assert.notEqual(info.versions[0].breaker.next_probe_at, '');
  assert.deepEqual((await unary(ts.client, 'Predict', mlp())).outputs[0].shape, [1, 10], 'other models unaffected');

  // After reset_timeout_ms the breaker lets one probe through; its success closes the breaker.
  const [halfOpen] = await once(ts.server.breakers, 'state');
  assert.equal(halfOpen.to, 'half_open');
  const closed = once(ts.server.breakers, 'state');
  const probe = await unary(ts.client, 'Predict', flaky(true, 'broken'));
  assert.deepEqual(probe.outputs[0].shape, [4, 2]);
  assert.equal((await closed)[0].to, 'closed');
  assert.equal((await unary(ts.client, 'GetModel', { model: 'broken' })).versions[0].breaker.state, 'closed');
});

test('a stalled execution answers DEADLINE_EXCEEDED on time, its worker is replaced, the server keeps serving', async () => {
  const restartsBefore = ts.server.pool.workerRestarts;
  const replaced = once(ts.server.pool, 'worker-restarted');
  const started = performance.now();
  // ~0.2-0.4 s of compute against an execution timeout of 40 ms.
  await expectStatus(
    unary(ts.client, 'Predict', { model: 'stall', inputs: [f32Tensor('x', [4096, 256], new Float32Array(4096 * 256))] }),
    grpc.status.DEADLINE_EXCEEDED,
    /execution of 'stall@1' exceeded its execution_timeout_ms of 40 ms/,
  );
  const elapsed = performance.now() - started;
  // Logged, not asserted as a timing: the answer came at the timeout, not when the run finished.
  assert.ok(elapsed < 10_000, `answered after ${elapsed.toFixed(0)} ms`);
  assert.deepEqual((await unary(ts.client, 'Predict', mlp())).outputs[0].shape, [1, 10], 'another model answers meanwhile');
  await replaced; // still busy 5 x 40 ms after the timeout: terminated and respawned with its sessions
  assert.equal(ts.server.pool.workerRestarts, restartsBefore + 1);
  for (let i = 0; i < 4; i++) assert.deepEqual((await unary(ts.client, 'Predict', mlp())).outputs[0].shape, [1, 10]);
});

test('a worker that exits mid-run fails its in-flight request with UNAVAILABLE, is replaced, and later requests succeed', async () => {
  const restartsBefore = ts.server.pool.workerRestarts;
  await ts.server.pool.exitOnNextRunForTest('crashy@1');
  const replaced = once(ts.server.pool, 'worker-restarted');
  await expectStatus(
    unary(ts.client, 'Predict', { model: 'crashy', inputs: [f32Tensor('x', [8, 256], new Float32Array(8 * 256))] }),
    grpc.status.UNAVAILABLE,
    /inference worker \d exited \(code 70\) while running this request; retry/,
  );
  await replaced;
  assert.equal(ts.server.pool.workerRestarts, restartsBefore + 1);
  for (let i = 0; i < 4; i++) assert.deepEqual((await unary(ts.client, 'Predict', mlp())).outputs[0].shape, [1, 10]);
});
