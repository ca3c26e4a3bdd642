/**
 * Inline execution: a version whose measured runs are short moves from the worker threads onto the main
 * thread, and nothing about its answers changes: the same bytes as the workers give, merged batches
 * included; a long model never moves; a request far bigger than the version's measured runs still goes to
 * a worker; cancelled and expired requests are still dropped unrun. The placement rule itself is tested
 * on its own with an injected clock.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { InferTensor } from '../src/core/tensor';
import { HARD_CAP_FACTOR, Placement, WINDOW } from '../src/scheduling/placement';
import { addModel, copyBundledModel, expectStatus, f32Tensor, seededFloats, slowRequest, startTestServer, tempDir, unary, type TestServer } from './common';
import { writeLookupModel, writeSlowModel } from './fixtures/onnx-fixtures';
import { SLOW_MODEL_UNPINNED_CONFIG } from './fixtures/configs';

describe('placement rule', () => {
  const policy = { maxRunUs: 100 };
  /** WINDOW worker runs of 50 µs; the first change they cause, if any. */
  const promote = (p: Placement, bytes = 256) => {
    let first;
    for (let i = 0; i < WINDOW; i++) first ??= p.observeWorkerRun(0.05, bytes);
    return first;
  };

  test(`moves inline only after ${WINDOW} worker runs whose median is within the limit`, () => {
    const p = new Placement(policy);
    for (let i = 0; i < WINDOW - 1; i++) assert.equal(p.observeWorkerRun(0.05, 256), undefined);
    assert.equal(p.where, 'worker');
    assert.equal(p.observeWorkerRun(0.05, 256)?.to, 'main_thread');
    assert.equal(p.where, 'main_thread');
  });

  test('a version whose median run is over the limit stays on the workers, whatever a few short runs say', () => {
    const p = new Placement(policy);
    for (let i = 0; i < 4 * WINDOW; i++) assert.equal(p.observeWorkerRun(i % 3 === 0 ? 0.05 : 0.5, 256), undefined);
    assert.equal(p.where, 'worker');
  });

  test('inline, a median over the limit or one run far over it moves the version back, with a doubling back-off', () => {
    let now = 0;
    const p = new Placement(policy, () => now);
    promote(p);
    // Single slow runs (a preempted thread) do not move it; a median over the limit does.
    for (let i = 0; i < WINDOW; i++) assert.equal(p.observeInlineRun(i % 4 === 0 ? 0.9 : 0.02, 256), undefined);
    let change;
    for (let i = 0; i < WINDOW && !change; i++) change = p.observeInlineRun(0.3, 256);
    assert.equal(change?.to, 'worker');
    assert.match(change!.reason, /median .* may try again in 10 s/);
    // Within the back-off it stays on the workers however short its runs are.
    assert.equal(promote(p), undefined);
    now += 10_000;
    assert.equal(promote(p)?.to, 'main_thread');
    // One run HARD_CAP_FACTOR x over the limit moves it back at once; the next back-off is twice as long.
    change = p.observeInlineRun((HARD_CAP_FACTOR * policy.maxRunUs + 1) / 1000, 256);
    assert.equal(change?.to, 'worker');
    assert.match(change!.reason, /a run took \d+ µs .* may try again in 20 s/);
    now += 10_000;
    assert.equal(promote(p), undefined);
    now += 10_000;
    assert.equal(promote(p)?.to, 'main_thread');
  });

  test('inline admits inputs up to what was measured within the limit, twice that when the run took under half of it', () => {
    const p = new Placement(policy);
    assert.equal(p.admits(1), false, 'nothing runs inline while the version is on the workers');
    promote(p, 1000); // 50 µs: half the limit
    assert.equal(p.admits(2000), true);
    assert.equal(p.admits(2001), false);
    p.observeWorkerRun(0.09, 8000); // within the limit, not within half of it
    assert.equal(p.admits(8000), true);
    assert.equal(p.admits(8001), false);
  });

  test('an ineligible version, or a limit of 0, never moves', () => {
    for (const p of [new Placement({ maxRunUs: 100, ineligible: 'config.yaml sets execution.placement: worker' }), new Placement({ maxRunUs: 0 })]) {
      assert.equal(promote(p), undefined);
      assert.equal(p.where, 'worker');
      assert.match(p.reason, /^on the workers: (config\.yaml sets execution\.placement: worker|main-thread execution is off)/);
    }
  });
});

describe('inline execution in the server', () => {
  let repo: ReturnType<typeof tempDir>;
  let inline: TestServer;
  let workers: TestServer;

  const LOOKUP = 'max_batch_size: 64\ndynamic_batching: {}\nresult_cache: { enabled: false }\n';
  const mlpRequest = (seed: number, rows = 1) => ({ model: 'mlp', inputs: [f32Tensor('input', [rows, 64], seededFloats(64 * rows, seed))] });
  const lookupRequest = (i: number) => ({
    model: 'lookup',
    inputs: [{ name: 'ids', dtype: 'INT64', shape: [1, 3], data: Buffer.from(new BigInt64Array([BigInt(i % 16), BigInt((i * 7) % 16), 3n]).buffer), string_data: [] }],
  });
  const texts = ['I love this movie', 'a terrible, boring film', 'fine', 'not bad at all, great acting'];

  const strip = (r: any) => ({ ...r, request_id: '' });

  /** Sends `count` requests one after another: each a run of its own, so the version's placement sees `count` runs. */
  async function warm(ts: TestServer, request: (i: number) => object, count = WINDOW + 8): Promise<void> {
    for (let i = 0; i < count; i++) await unary(ts.client, 'Predict', request(i));
  }

  async function placement(ts: TestServer, model: string): Promise<{ where: string; reason: string }> {
    return (await unary(ts.client, 'GetModel', { model })).versions[0].placement;
  }

  async function runs(ts: TestServer, key: string): Promise<{ worker: number; inline: number }> {
    const stats = await ts.server.pool.stats();
    const inlineStats = stats.pop()!; // the main thread's runs come last
    return { worker: stats.reduce((n, s) => n + (s.runs[key] ?? 0), 0), inline: inlineStats.runs[key] ?? 0 };
  }

  before(async () => {
    repo = tempDir('inline');
    copyBundledModel(repo.dir, 'mlp');
    copyBundledModel(repo.dir, 'sentiment');
    addModel(repo.dir, 'lookup', LOOKUP, { 1: writeLookupModel });
    addModel(repo.dir, 'slow', SLOW_MODEL_UNPINNED_CONFIG, { 1: writeSlowModel });
    addModel(repo.dir, 'pinned', `${LOOKUP}execution: { placement: worker }\n`, { 1: writeLookupModel });
    // A generous limit: these tests are about what inline execution does, not about where this
    // machine's timing puts the line (the placement rule is tested above with exact figures).
    [inline, workers] = await Promise.all([
      startTestServer({ modelRepository: repo.dir, cacheMaxBytes: 0, inlineMaxRunUs: 2000 }),
      startTestServer({ modelRepository: repo.dir, cacheMaxBytes: 0, inlineMaxRunUs: 0 }),
    ]);
    await Promise.all([warm(inline, (i) => mlpRequest(1000 + i)), warm(inline, lookupRequest), warm(inline, (i) => ({ model: 'sentiment', input_text: texts[i % texts.length] }))]);
  });
  after(async () => {
    await Promise.all([inline?.close(), workers?.close()]);
    repo.cleanup();
  });

  test('cheap versions move to the main thread and say so in GetModel and /metrics; the worker-only server never moves', async () => {
    for (const model of ['mlp', 'lookup', 'sentiment']) {
      const p = await placement(inline, model);
      assert.equal(p.where, 'main_thread', `${model}: ${p.reason}`);
      assert.match(p.reason, /^on the main thread: the median of its last 32 runs on a worker/);
      assert.equal((await placement(workers, model)).where, 'worker');
    }
    assert.match((await placement(workers, 'mlp')).reason, /--inline-max-run-us 0/);
    const metrics = await (await fetch(`http://127.0.0.1:${inline.server.httpPort}/metrics`)).text();
    assert.match(metrics, /tensorgate_execution_placement\{model="mlp",version="1",placement="main_thread"\} 1/);
    assert.match(metrics, /tensorgate_execution_placement\{model="mlp",version="1",placement="worker"\} 0/);
  });

  test('inline answers are byte for byte the workers\' answers: tensors, token ids, text, and merged batches', async () => {
    // One bigger request first: it runs on a worker (bigger than any run measured so far) and teaches
    // the version that batches of up to 64 rows run within the limit, so size never sends the ones below to a worker.
    await unary(inline.client, 'Predict', mlpRequest(5, 32));
    const before = await runs(inline, 'mlp@1');
    const requests = [
      ...Array.from({ length: 12 }, (_, i) => mlpRequest(i)),
      mlpRequest(99, 3),
      ...Array.from({ length: 12 }, (_, i) => lookupRequest(i)),
      ...texts.map((t) => ({ model: 'sentiment', input_text: t })),
      { model: 'sentiment', inputs: [{ name: 'token_ids', dtype: 'INT64', shape: [1, 3], data: Buffer.from(new BigInt64Array([5n, 17n, 1n]).buffer), string_data: [] }] },
    ];
    // Sequential, and all at once (merged batches of more than INLINE_MAX_REQUESTS go to a free worker).
    const sequential = [];
    for (const r of requests) sequential.push(strip(await unary(inline.client, 'Predict', r)));
    const concurrent = (await Promise.all(requests.map((r) => unary(inline.client, 'Predict', r)))).map(strip);
    const expected = [];
    for (const r of requests) expected.push(strip(await unary(workers.client, 'Predict', r)));
    assert.deepEqual(sequential, expected);
    assert.deepEqual(concurrent, expected);
    const after = await runs(inline, 'mlp@1');
    assert.ok(after.inline >= before.inline + 12, 'the one-row mlp requests ran inline');

    // A merged inline batch: requests queued in the same event-loop turn run as one batch on the main thread.
    const merged = [mlpRequest(201), mlpRequest(202), mlpRequest(203)];
    const tensor = (r: ReturnType<typeof mlpRequest>): InferTensor => ({ name: 'input', dtype: 'FP32', shape: r.inputs[0]!.shape, data: new Uint8Array(r.inputs[0]!.data) });
    const results = await Promise.all(
      merged.map((r) => inline.server.scheduler.submit({ key: 'mlp@1', inputs: [tensor(r)], outputs: [], deadline: undefined, signal: undefined })),
    );
    const afterMerged = await runs(inline, 'mlp@1');
    assert.deepEqual(results.map((r) => r.batchRequests), [3, 3, 3], 'one execution served the three');
    assert.deepEqual(afterMerged, { worker: after.worker, inline: after.inline + 1 }, 'and it ran inline');
    for (const [i, r] of merged.entries()) {
      const want = await unary(workers.client, 'Predict', r);
      assert.deepEqual(Buffer.from(results[i]!.outputs[0]!.data), Buffer.from(want.outputs[0].data));
    }
  });

  test('inline, an input that fails inside ONNX Runtime is INVALID_ARGUMENT, the server keeps serving and the breaker stays closed', async () => {
    assert.equal((await placement(inline, 'lookup')).where, 'main_thread');
    const bad = { model: 'lookup', inputs: [{ name: 'ids', dtype: 'INT64', shape: [1, 2], data: Buffer.from(new BigInt64Array([3n, 999_999n]).buffer), string_data: [] }] };
    for (let i = 0; i < 12; i++) {
      const err = await expectStatus(unary(inline.client, 'Predict', bad), grpc.status.INVALID_ARGUMENT, /cannot run this request's input, while it runs other inputs/);
      assert.ok(err.details.length <= 1024, 'a bounded message');
    }
    assert.deepEqual(strip(await unary(inline.client, 'Predict', lookupRequest(5))), strip(await unary(workers.client, 'Predict', lookupRequest(5))));
    assert.equal((await unary(inline.client, 'GetModel', { model: 'lookup' })).versions[0].breaker.state, 'closed');
  });

  test('a long model never runs inline, and a version pinned to the workers by its config never moves', async () => {
    await warm(inline, () => slowRequest(64), WINDOW + 4);
    await warm(inline, lookupRequest, WINDOW + 4);
    const slow = await placement(inline, 'slow');
    assert.equal(slow.where, 'worker');
    assert.match(slow.reason, /until the median of 32 runs shows at most 2000 µs/);
    assert.equal((await runs(inline, 'slow@1')).inline, 0);
    const pinned = await placement(inline, 'pinned');
    assert.equal(pinned.where, 'worker');
    assert.match(pinned.reason, /config\.yaml sets execution\.placement: worker/);
    assert.equal((await runs(inline, 'pinned@1')).inline, 0);
  });

  test('a request far bigger than any measured run goes to a worker, and gets the same answer', async () => {
    const big = mlpRequest(7, 256);
    const before = await runs(inline, 'mlp@1');
    const answer = await unary(inline.client, 'Predict', big);
    const after = await runs(inline, 'mlp@1');
    assert.equal(after.worker, before.worker + 1);
    assert.equal(after.inline, before.inline);
    assert.deepEqual(answer.outputs, (await unary(workers.client, 'Predict', big)).outputs);
    assert.equal((await placement(inline, 'mlp')).where, 'main_thread');
  });

  test('inline, a cancelled or expired request is still dropped before it runs', async () => {
    const scheduler = inline.server.scheduler;
    const tensor = (seed: number): InferTensor => {
      const v = seededFloats(64, seed);
      return { name: 'input', dtype: 'FP32', shape: [1, 64], data: new Uint8Array(v.buffer) };
    };
    const before = await runs(inline, 'mlp@1');
    const cancel = new AbortController();
    // Queued together: inline executions start only from the next event-loop turn.
    const kept = scheduler.submit({ key: 'mlp@1', inputs: [tensor(1)], outputs: [], deadline: undefined, signal: undefined });
    const cancelled = assert.rejects(scheduler.submit({ key: 'mlp@1', inputs: [tensor(2)], outputs: [], deadline: undefined, signal: cancel.signal }), { code: 'CANCELLED' });
    const expired = assert.rejects(scheduler.submit({ key: 'mlp@1', inputs: [tensor(3)], outputs: [], deadline: Date.now() + 2, signal: undefined }), {
      code: 'DEADLINE_EXCEEDED',
      message: /not run|nothing was run/,
    });
    cancel.abort();
    // Hold the thread past the deadline before the inline turn comes.
    const until = Date.now() + 5;
    while (Date.now() < until);
    await cancelled;
    await expired;
    const ok = await kept;
    assert.equal(ok.batchRequests, 1, 'only the live request ran');
    const after = await runs(inline, 'mlp@1');
    assert.equal(after.inline, before.inline + 1);
    assert.equal(after.worker, before.worker);
  });

  test('placement changes are events the server logs', async () => {
    // A fresh version's first worker runs are observed, then it moves: the event carries the reason.
    const repo2 = tempDir('inline-event');
    try {
      addModel(repo2.dir, 'lookup', LOOKUP, { 1: writeLookupModel });
      const ts = await startTestServer({ modelRepository: repo2.dir, cacheMaxBytes: 0, inlineMaxRunUs: 2000 });
      try {
        const moved = once(ts.server.scheduler, 'placement');
        await warm(ts, lookupRequest);
        const [event] = await moved;
        assert.deepEqual({ key: event.key, where: event.where }, { key: 'lookup@1', where: 'main_thread' });
      } finally {
        await ts.close();
      }
    } finally {
      repo2.cleanup();
    }
  });
});
