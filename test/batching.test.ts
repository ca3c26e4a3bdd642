/**
 * Dynamic batching end to end: a real server with one worker, held busy by a slow request so that the
 * requests sent meanwhile queue up and merge when the worker frees.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { addModel, copyBundledModel, expectStatus, f32Tensor, float32s, seededFloats, slowRequest, startRun, startTestServer, tempDir, unary, waitQueued, type TestServer } from './common';
import { writeSlowModel, writeSumAllModel } from './fixtures/onnx-fixtures';
import { once } from 'node:events';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';

let repo: ReturnType<typeof tempDir>;
let ts: TestServer;
const batches: { key: string; requests: number; rows: number }[] = [];

before(async () => {
  repo = tempDir('batching');
  copyBundledModel(repo.dir, 'mlp'); // max_batch_size 256, dynamic batching
  copyBundledModel(repo.dir, 'sentiment'); // max_batch_size 128, dynamic batching
  addModel(repo.dir, 'slow', SLOW_MODEL_CONFIG + 'queue: { priority_levels: 2, default_priority: 2 }\n', { 1: writeSlowModel });
  addModel(repo.dir, 'bounded', SLOW_MODEL_CONFIG + 'queue: { max_size: 3 }\n', { 1: writeSlowModel });
  addModel(repo.dir, 'sumall', 'max_batch_size: 8\ndynamic_batching: {}\ninstance_count: 1\n', { 1: writeSumAllModel });
  ts = await startTestServer({ modelRepository: repo.dir, workers: 1 });
  ts.server.scheduler.on('batch', (b) => batches.push(b));
});
after(async () => {
  await ts.close();
  repo.cleanup();
});

/** Occupies the only worker with a ~0.3 s run; resolves once it is running. */
const occupyWorker = () => startRun(ts, slowRequest(4096));

/** Resolves once `n` requests for `key` wait in the scheduler. */
const queued = (key: string, n: number) => waitQueued(ts, key, n);

test('merged results equal unbatched ONNX Runtime results row for row', async () => {
  const session = await ort.InferenceSession.create(path.join(repo.dir, 'mlp/1/model.onnx'), { intraOpNumThreads: 1 });
  const rowsPerRequest = [1, 3, 2, 5, 1, 4, 1, 7];
  const inputs = rowsPerRequest.map((rows, i) => seededFloats(rows * 64, 100 + i));
  batches.length = 0;
  const busy = (await occupyWorker()).done;
  const calls = inputs.map((values, i) => unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [rowsPerRequest[i]!, 64], values)] }));
  await queued('mlp@1', calls.length);
  await busy;
  const results = await Promise.all(calls);
  const mlpBatches = batches.filter((b) => b.key === 'mlp@1');
  assert.deepEqual(mlpBatches, [{ key: 'mlp@1', requests: 8, rows: 24 }], 'all eight requests ran as one execution');
  let maxRel = 0;
  for (let i = 0; i < calls.length; i++) {
    const got = float32s(results[i].outputs[0].data);
    assert.deepEqual(results[i].outputs[0].shape, [rowsPerRequest[i], 10]);
    const alone = (await session.run({ input: new ort.Tensor('float32', inputs[i]!, [rowsPerRequest[i]!, 64]) })).logits!.data as Float32Array;
    for (let j = 0; j < got.length; j++) {
      const rel = Math.abs(got[j]! - alone[j]!) / Math.max(Math.abs(alone[j]!), 1e-6);
      maxRel = Math.max(maxRel, rel);
    }
  }
  await session.release();
  assert.ok(maxRel <= 1e-6, `max relative difference ${maxRel}`);
});

test('texts of different lengths (mixed shapes) are never merged; equal ones are', async () => {
  batches.length = 0;
  const busy = (await occupyWorker()).done;
  const texts = ['good', 'bad', 'very good indeed', 'happy', 'truly awful day'];
  const calls = texts.map((t) => unary(ts.client, 'Predict', { model: 'sentiment', input_text: t }));
  await queued('sentiment@1', texts.length);
  await busy;
  const results = await Promise.all(calls);
  assert.deepEqual(results.map((r) => r.output_text), ['positive', 'negative', 'positive', 'positive', 'negative']);
  const sentimentBatches = batches.filter((b) => b.key === 'sentiment@1').map((b) => b.requests).sort();
  assert.deepEqual(sentimentBatches, [2, 3], 'one-word texts together, three-word texts together');
});

test('a full queue answers RESOURCE_EXHAUSTED at once and loses nothing it admitted', async () => {
  const busy = (await occupyWorker()).done;
  const one = () => unary(ts.client, 'Predict', { model: 'bounded', inputs: [f32Tensor('x', [1, 256], new Float32Array(256))] });
  const admitted = [one(), one(), one()];
  await queued('bounded@1', 3);
  const refused = await Promise.allSettled([one(), one()]);
  for (const r of refused) {
    assert.equal(r.status, 'rejected');
    assert.equal((r as PromiseRejectedResult).reason.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match((r as PromiseRejectedResult).reason.details, /queue of 'bounded@1' is full \(3 requests waiting, queue.max_size 3\)/);
  }
  await busy;
  const done = await Promise.all(admitted);
  assert.equal(done.length, 3);
});

test('higher priority requests run first', async () => {
  batches.length = 0;
  const order: string[] = [];
  const busy = (await occupyWorker()).done;
  const call = (name: string, priority: number) =>
    unary(ts.client, 'Predict', { model: 'slow', inputs: [f32Tensor('x', [1, 256], new Float32Array(256))], options: { priority, request_id: name } }).then(() => order.push(name));
  const calls = [call('low-1', 2), call('low-2', 2)];
  await queued('slow@1', 2);
  calls.push(call('high', 1));
  await queued('slow@1', 3);
  await busy;
  await Promise.all(calls);
  assert.deepEqual(order, ['high', 'low-1', 'low-2']);
  await expectStatus(call('bad', 3), grpc.status.INVALID_ARGUMENT, /priority 3 is out of range; 'slow@1' has priority levels 1 \(highest\) to 2/);
});

test('a queue timeout expires a waiting request with DEADLINE_EXCEEDED; it never runs', async () => {
  const runsBefore = (await ts.server.pool.stats())[0]!.runs['slow@1'] ?? 0;
  const busy = (await occupyWorker()).done;
  await expectStatus(
    unary(ts.client, 'Predict', { model: 'slow', inputs: [f32Tensor('x', [1, 256], new Float32Array(256))], options: { timeout_us: 1000 } }),
    grpc.status.DEADLINE_EXCEEDED,
    // Normally the queue's timer expires it; on a loaded machine that timer can fire after the worker freed up,
    // and the worker's own deadline check refuses it instead. Either way it must not run (checked below).
    /queue timeout passed while queued; the request was not run|deadline passed before execution started; nothing was run/,
  );
  await busy;
  assert.equal((await ts.server.pool.stats())[0]!.runs['slow@1'], runsBefore + 1, 'only the occupying request ran');
});

test('a request with more rows than max_batch_size is refused', async () => {
  await expectStatus(
    unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [257, 64], new Float32Array(257 * 64))] }),
    grpc.status.INVALID_ARGUMENT,
    /request has 257 rows \(dim 0\) but 'mlp@1' accepts at most max_batch_size 256 per request; split it/,
  );
});

test('a queue timeout beyond the 32-bit timer range (~24.8 days) waits like any other', async () => {
  const busy = (await occupyWorker()).done;
  // 3e12 us = ~34.7 days: a plain setTimeout would overflow and fire after 1 ms.
  const calls = Array.from({ length: 5 }, (_, i) =>
    unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], seededFloats(64, 500 + i))], options: { timeout_us: 3e12, bypass_cache: true } }),
  );
  await queued('mlp@1', calls.length);
  await busy;
  for (const res of await Promise.all(calls)) assert.deepEqual(res.outputs[0].shape, [1, 10]);
});

test('a model whose output is not batched along dim 0 answers every merged request, then stops merging', async () => {
  batches.length = 0;
  const stopped = once(ts.server.scheduler, 'merging-stopped');
  const busy = (await occupyWorker()).done;
  const rows = [[1, 2, 3, 4], [10, 20, 30, 40], [100, 200, 300, 400]];
  const calls = rows.map((r) => unary(ts.client, 'Predict', { model: 'sumall', inputs: [f32Tensor('x', [1, 4], r)] }));
  await queued('sumall@1', calls.length);
  await busy;
  const sums = (await Promise.all(calls)).map((res) => float32s(res.outputs[0].data)[0]);
  assert.deepEqual(sums, [10, 100, 1000], 'each request got its own sum, run alone');
  const [{ key, reason }] = await stopped;
  assert.equal(key, 'sumall@1');
  assert.match(reason, /batched output 'y' has dim 0 = undefined, expected the batch's 3 rows/);
  const sumallBatches = batches.filter((b) => b.key === 'sumall@1').map((b) => b.requests);
  assert.deepEqual(sumallBatches, [3, 1, 1, 1], 'one merged attempt, then each request alone');
});
