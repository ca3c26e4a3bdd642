/**
 * A request never fails because of another request's input, and a client cannot open a model's circuit
 * breaker with its own bad inputs while the model serves others; a model that fails on every input still
 * opens it. The lookup fixture fails inside ONNX Runtime on ids outside its table, like a token id beyond
 * an embedding, which validation cannot see.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ModelRunError, type ServingError } from '../src/core/errors';
import { BLAME_WINDOW_MS, FailureBlame } from '../src/scheduling/failure-blame';
import { addModel, expectStatus, slowRequest, startRun, startTestServer, tempDir, unary, waitQueued, type TestServer } from './common';
import { LOOKUP_TABLE_SIZE, writeLookupModel, writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';

let repo: ReturnType<typeof tempDir>;
let ts: TestServer;
const batches: { key: string; requests: number; rows: number }[] = [];

const BREAKER = 'circuit_breaker: { volume_threshold: 4, error_threshold_percentage: 50, reset_timeout_ms: 60000, rolling_window_ms: 10000 }\n';
const LOOKUP = `max_batch_size: 64\ndynamic_batching: {}\ninstance_count: 1\nresult_cache: { enabled: false }\n${BREAKER}`;

before(async () => {
  repo = tempDir('blame');
  addModel(repo.dir, 'lookup', LOOKUP, { 1: writeLookupModel });
  addModel(repo.dir, 'fresh', LOOKUP, { 1: writeLookupModel });
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
  ts = await startTestServer({ modelRepository: repo.dir, workers: 1 });
  ts.server.scheduler.on('batch', (b) => batches.push(b));
});
after(async () => {
  await ts.close();
  repo.cleanup();
});

const ids = (values: number[]) => ({ name: 'ids', dtype: 'INT64', shape: [1, values.length], data: Buffer.from(new BigInt64Array(values.map(BigInt)).buffer), string_data: [] });
const lookup = (values: number[], model = 'lookup') => ({ model, inputs: [ids(values)] });
const good = (i: number) => lookup([i % LOOKUP_TABLE_SIZE, (i + 1) % LOOKUP_TABLE_SIZE]);
const bad = () => lookup([3, 999_999]);

async function breakerState(model: string): Promise<string> {
  return (await unary(ts.client, 'GetModel', { model })).versions[0].breaker.state;
}

test('an input that fails inside ONNX Runtime, on a model that serves others, is INVALID_ARGUMENT and never opens the breaker', async () => {
  const ok = await unary(ts.client, 'Predict', good(1));
  assert.deepEqual([...new Float32Array(ok.outputs[0].data.buffer.slice(ok.outputs[0].data.byteOffset, ok.outputs[0].data.byteOffset + 8))], [1, 2]);
  for (let i = 0; i < 30; i++) {
    await expectStatus(unary(ts.client, 'Predict', bad()), grpc.status.INVALID_ARGUMENT, /'lookup@1' cannot run this request's input, while it runs other inputs, so the input is the cause: ONNX Runtime failed/);
  }
  assert.equal(await breakerState('lookup'), 'closed');
  assert.deepEqual((await unary(ts.client, 'Predict', good(2))).outputs[0].shape, [1, 2]);
});

test('bad inputs merged into a batch fail alone: every good request beside them succeeds', async () => {
  batches.length = 0;
  const busy = (await startRun(ts, slowRequest(2048))).done;
  const plan = Array.from({ length: 24 }, (_, i) => i % 6 === 2); // 4 bad among 24
  const calls = plan.map((isBad, i) => unary(ts.client, 'Predict', isBad ? bad() : good(i)).then(() => 'OK', (e: grpc.ServiceError) => grpc.status[e.code]));
  await waitQueued(ts, 'lookup@1', plan.length);
  await busy;
  const outcomes = await Promise.all(calls);
  assert.deepEqual(outcomes, plan.map((isBad) => (isBad ? 'INVALID_ARGUMENT' : 'OK')));
  const first = batches.find((b) => b.key === 'lookup@1');
  assert.deepEqual(first, { key: 'lookup@1', requests: 24, rows: 24 }, 'they were merged into one execution first');
  assert.equal(await breakerState('lookup'), 'closed');
});

test('a model that has never run any input successfully counts its failures: the breaker opens', async () => {
  let failures = 0;
  while ((await breakerState('fresh')) === 'closed') {
    await expectStatus(unary(ts.client, 'Predict', lookup([999_999], 'fresh')), grpc.status.INTERNAL, /ONNX Runtime failed/);
    failures++;
    assert.ok(failures <= 4, 'opens within volume_threshold failures');
  }
  await expectStatus(unary(ts.client, 'Predict', lookup([1], 'fresh')), grpc.status.UNAVAILABLE, /circuit breaker open/);
  assert.deepEqual((await unary(ts.client, 'Predict', good(3))).outputs[0].shape, [1, 2], 'other models unaffected');
});

test('FailureBlame: a recent success blames the input; else the known-good input decides, once for many', async () => {
  let now = 0;
  const probes: (() => void)[] = [];
  let probeFails = false;
  const blame = new FailureBlame(
    'm@1',
    () => new Promise((resolve, reject) => probes.push(() => (probeFails ? reject(new Error('broken')) : resolve(undefined)))),
    () => now,
  );
  const err = new ModelRunError('ONNX Runtime failed: boom');
  const code = async (p: Promise<ServingError>) => (await p).code;

  assert.equal(await code(blame.judge(err)), 'INTERNAL', 'no success yet: the model is blamed');
  blame.succeeded([{ name: 'x', dtype: 'FP32', shape: [1], data: new Uint8Array(4) }], []);
  assert.equal(await code(blame.judge(err)), 'INVALID_ARGUMENT', 'a success just now: the input is blamed');

  now += BLAME_WINDOW_MS + 1;
  const judged = [blame.judge(err), blame.judge(err), blame.judge(err)];
  assert.equal(probes.length, 1, 'one probe answers every waiting failure');
  probes.shift()!();
  assert.deepEqual(await Promise.all(judged.map(code)), ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT']);

  now += BLAME_WINDOW_MS + 1;
  probeFails = true;
  const broken = blame.judge(err);
  probes.shift()!();
  assert.equal(await code(broken), 'INTERNAL', 'the known-good input fails too: the model is blamed');
  assert.equal(await code(blame.judge(err)), 'INTERNAL', 'a failed probe is remembered for the window: no second probe');
  assert.equal(probes.length, 0);
});
