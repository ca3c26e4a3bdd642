/**
 * The batching policy (ModelQueue) with a fake clock, and the batch merge/split, as pure units.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelQueue, type BatchPolicy, type QueuedRequest } from '../src/scheduling/model-queue';
import { batchSignature, mergeInputs, splitOutputs } from '../src/scheduling/batch';
import type { InferTensor } from '../src/core/tensor';

const policy = (p: Partial<BatchPolicy> = {}): BatchPolicy => ({
  maxBatchSize: 8,
  maxRowsPerRequest: 8,
  preferredBatchSizes: [],
  maxQueueDelayMs: 5,
  maxQueueSize: 0,
  priorityLevels: 3,
  defaultPriority: 2,
  defaultTimeoutMs: 0,
  ...p,
});

function tensor(name: string, shape: number[], fill = 0): InferTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype: 'FP32', shape, data: new Uint8Array(new Float32Array(n).fill(fill).buffer) };
}

function request(rows: number, at: number, extra: Partial<QueuedRequest> = {}, width = 4): QueuedRequest & { id: number } {
  const inputs = [tensor('x', [rows, width])];
  return { id: Math.random(), inputs, outputs: [], rows, signature: batchSignature(inputs, []), priority: 2, enqueuedAt: at, deadline: undefined, signal: undefined, ...extra };
}

test('a lone request waits exactly until the delay, then goes alone', () => {
  const q = new ModelQueue('m@1', policy({ maxQueueDelayMs: 5 }));
  const r = request(1, 100);
  q.push(r);
  assert.deepEqual(q.next(100), { wakeAt: 105 });
  assert.deepEqual(q.next(104.999), { wakeAt: 105 });
  assert.deepEqual(q.next(105), { batch: [r] });
  assert.equal(q.size, 0);
});

test('the delay caps the OLDEST request wait, whichever request heads the queue', () => {
  const q = new ModelQueue('m@1', policy({ maxQueueDelayMs: 5 }));
  q.push(request(1, 100, { priority: 3 }));
  q.push(request(1, 103, { priority: 1 }));
  assert.deepEqual(q.next(104), { wakeAt: 105 });
  const d = q.next(105) as { batch: QueuedRequest[] };
  assert.equal(d.batch.length, 2);
  assert.equal(d.batch[0]!.priority, 1, 'highest priority first within the batch');
});

test('a batch goes at once when max_batch_size fills, leaving the rest queued', () => {
  const q = new ModelQueue('m@1', policy({ maxBatchSize: 8 }));
  const rs = [request(3, 0), request(3, 0), request(3, 0)];
  rs.forEach((r) => q.push(r));
  const d = q.next(0) as { batch: QueuedRequest[] };
  assert.deepEqual(d.batch, rs.slice(0, 2), 'two requests (6 rows) fit; the third would exceed 8');
  assert.equal(q.size, 1);
  assert.deepEqual(q.next(0), { wakeAt: 5 });
});

test('a preferred batch size that a prefix fills is sent at once', () => {
  const q = new ModelQueue('m@1', policy({ maxBatchSize: 16, preferredBatchSizes: [4, 8] }));
  for (let i = 0; i < 5; i++) q.push(request(1, 0));
  const d = q.next(0) as { batch: QueuedRequest[] };
  assert.equal(d.batch.length, 4);
  assert.deepEqual(q.next(0), { wakeAt: 5 }, 'the fifth waits for more or for the delay');
});

test('requests with other dims, dtypes or outputs are never merged', () => {
  const q = new ModelQueue('m@1', policy({ maxQueueDelayMs: 0 }));
  const a = request(1, 0, {}, 4);
  const b = request(1, 0, {}, 5);
  const c = request(1, 0, {}, 4);
  const d = { ...request(1, 0, {}, 4), outputs: ['y'], signature: batchSignature([tensor('x', [1, 4])], ['y']) };
  [a, b, c, d].forEach((r) => q.push(r));
  assert.deepEqual((q.next(0) as { batch: QueuedRequest[] }).batch, [a, c]);
  assert.deepEqual((q.next(0) as { batch: QueuedRequest[] }).batch, [b]);
  assert.deepEqual((q.next(0) as { batch: QueuedRequest[] }).batch, [d]);
  assert.equal(q.next(0), undefined);
});

test('without merging each request runs alone, highest priority first, FIFO within a level', () => {
  const q = new ModelQueue('m@1', policy({ maxBatchSize: 0 }));
  const low1 = request(1, 0, { priority: 3 });
  const mid = request(1, 1, { priority: 2 });
  const low2 = request(1, 2, { priority: 3 });
  const high = request(1, 3, { priority: 1 });
  [low1, mid, low2, high].forEach((r) => q.push(r));
  const order = [];
  for (let d = q.next(0); d && 'batch' in d; d = q.next(0)) order.push(d.batch[0]);
  assert.deepEqual(order, [high, mid, low1, low2]);
});

test('a full queue refuses at once with RESOURCE_EXHAUSTED and keeps what it holds', () => {
  const q = new ModelQueue('m@1', policy({ maxQueueSize: 2 }));
  q.push(request(1, 0));
  q.push(request(1, 0));
  assert.throws(() => q.push(request(1, 0)), (e: { code: string; message: string }) => e.code === 'RESOURCE_EXHAUSTED' && /queue of 'm@1' is full \(2 requests waiting, queue.max_size 2\)/.test(e.message));
  assert.equal(q.size, 2);
});

test('cancelled and expired requests are removed before a batch forms', () => {
  const q = new ModelQueue('m@1', policy({ maxQueueDelayMs: 0 }));
  const controller = new AbortController();
  const live = request(1, 0);
  const gone = request(1, 0, { signal: controller.signal });
  const late = request(1, 0, { deadline: 1000 });
  [gone, live, late].forEach((r) => q.push(r));
  controller.abort();
  assert.deepEqual(q.removeDead(1000), [gone, late]);
  assert.deepEqual((q.next(0) as { batch: QueuedRequest[] }).batch, [live]);
});

test('merge concatenates along dim 0 and split gives each member exactly its rows', () => {
  const a = [tensor('x', [1, 2], 1), { name: 's', dtype: 'STRING' as const, shape: [1], data: new Uint8Array(0), strings: ['a'] }];
  const b = [tensor('x', [2, 2], 2), { name: 's', dtype: 'STRING' as const, shape: [2], data: new Uint8Array(0), strings: ['b', 'c'] }];
  const merged = mergeInputs([a, b]);
  assert.deepEqual(merged[0]!.shape, [3, 2]);
  assert.deepEqual([...new Float32Array(merged[0]!.data.buffer)], [1, 1, 2, 2, 2, 2]);
  assert.equal(merged[0]!.data.byteOffset, 0);
  assert.equal(merged[0]!.data.byteLength, merged[0]!.data.buffer.byteLength, 'owns its buffer whole, so it can be transferred');
  assert.deepEqual(merged[1]!.strings, ['a', 'b', 'c']);
  const parts = splitOutputs(merged, [1, 2]);
  assert.deepEqual(parts[0]![0]!.shape, [1, 2]);
  assert.deepEqual([...new Float32Array(parts[1]![0]!.data.slice().buffer)], [2, 2, 2, 2]);
  assert.deepEqual(parts[1]![1]!.strings, ['b', 'c']);
  assert.throws(() => splitOutputs([tensor('y', [4, 1])], [1, 2]), /dim 0 = 4, expected the batch's 3 rows/);
});

test('reconfiguring a model keeps its waiting requests within the new limits', async () => {
  const { RequestScheduler } = await import('../src/scheduling/scheduler.js');
  const { ExecutionPool } = await import('../src/runtime/execution-pool.js');
  // A real pool whose worker takes no runs (0 slots): everything submitted waits in the queue.
  const pool = new ExecutionPool({ workers: 1, slotsPerWorker: 0 });
  const scheduler = new RequestScheduler(pool);
  const wide = { ...policy({ maxBatchSize: 0, maxRowsPerRequest: 0, priorityLevels: 3, maxQueueSize: 0 }) };
  scheduler.configure('m@1', { policy: wide, instanceCount: 0, executionTimeoutMs: 0 });
  const submit = (priority: number) =>
    scheduler.submit({ key: 'm@1', inputs: [tensor('x', [1, 4])], outputs: [], deadline: undefined, signal: undefined, priority });
  const waiting = [submit(3), submit(1), submit(2)];
  const outcomes = waiting.map((p) => p.then(() => 'ran', (e: Error) => e.message));
  assert.equal(scheduler.queueDepthOf('m@1'), 3);
  // One priority level and room for two: the two highest-priority requests move, the last is refused.
  scheduler.configure('m@1', { policy: { ...wide, priorityLevels: 1, defaultPriority: 1, maxQueueSize: 2 }, instanceCount: 0, executionTimeoutMs: 0 });
  assert.equal(scheduler.queueDepthOf('m@1'), 2);
  scheduler.remove('m@1');
  const [low, high, mid] = await Promise.all(outcomes);
  assert.match(low!, /queue of 'm@1' is full/);
  assert.match(high!, /was unloaded while the request was queued/);
  assert.match(mid!, /was unloaded while the request was queued/);
  await pool.close();
});
