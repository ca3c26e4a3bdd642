/**
 * ResultCache and hashRequest: pure unit tests over the real lru-cache with an injected clock (no sleeps).
 */
import type { CancelSignal } from '../src/core/cancellation';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashRequest, type HashParts } from '../src/cache/input-hash';
import { ResultCache, type EvictReason } from '../src/cache/result-cache';
import { PACK_MAX_BYTES } from '../src/cache/packed-entry';
import { Code, ServingError, deadlineExceeded } from '../src/core/errors';
import type { InferenceResult } from '../src/core/request';
import type { InferTensor } from '../src/core/tensor';

const tensor = (name: string, bytes: number[] | Uint8Array, shape = [bytes.length / 4], dtype: InferTensor['dtype'] = 'FP32'): InferTensor =>
  ({ name, dtype, shape, data: bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes) });
const parts = (over: Partial<HashParts> = {}): HashParts =>
  ({ model: 'mlp', version: '1', inputs: [tensor('input', [1, 2, 3, 4, 5, 6, 7, 8])], outputs: ['logits'], ...over });
const result = (bytes = 40, version = '1', model = 'mlp'): InferenceResult => ({
  model, version, cached: false, computeMs: 3, queueMs: 1, batchRequests: 1, batchRows: 1,
  outputs: [{ name: 'logits', dtype: 'FP32', shape: [1, bytes / 4], data: new Uint8Array(bytes).fill(7) }],
});
const resultOf = result;
const key = (model: string, version: string, n: number) => hashRequest(parts({ model, version, inputs: [tensor('input', [n, 0, 0, 0])] }));

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

test('a small result comes back from its packed entry: equal bytes, aligned, frozen, cached=true', async () => {
  const cache = new ResultCache({ maxBytes: 1 << 20 });
  const k = hashRequest(parts());
  const stored = result(40);
  await cache.getOrCompute(k, 60_000, async () => stored);
  const hit = await cache.getOrCompute(k, 60_000, async () => assert.fail('a hit computes nothing'));
  assert.equal(hit.cached, true);
  assert.deepEqual({ ...hit.result, outputs: undefined }, { ...stored, cached: true, outputs: undefined });
  const data = hit.result.outputs[0].data;
  assert.deepEqual([...data], new Array(40).fill(7));
  assert.equal(data.byteOffset % 8, 0, 'typed-array views of any dtype work');
  assert.deepEqual(hit.result.outputs[0].shape, [1, 10]);
  assert.throws(() => { (hit.result.outputs[0] as { name: string }).name = 'evil'; }, TypeError);
  assert.throws(() => hit.result.outputs[0].shape.push(1), TypeError);
  const again = await cache.getOrCompute(k, 60_000, async () => assert.fail('a hit computes nothing'));
  assert.notEqual(again.result.outputs[0].data, data, 'each hit gets its own copy of a small result');
});

test('a hit on a large result returns the identical stored bytes with cached=true, and the stored result is frozen', async () => {
  const cache = new ResultCache({ maxBytes: 1 << 20 });
  const k = hashRequest(parts());
  const result = (bytes = PACK_MAX_BYTES + 8) => resultOf(bytes);
  const first = await cache.getOrCompute(k, 60_000, async () => result());
  assert.equal(first.cached, false);
  let calls = 0;
  const second = await cache.getOrCompute(k, 60_000, async () => (calls++, result()));
  assert.equal(calls, 0);
  assert.equal(second.cached, true);
  assert.equal(second.result.cached, true);
  assert.equal(second.result.outputs[0].data, first.result.outputs[0].data, 'bytes are shared, not copied');
  assert.deepEqual([...second.result.outputs[0].data], new Array(PACK_MAX_BYTES + 8).fill(7));
  assert.throws(() => second.result.outputs.push(tensor('x', [])), TypeError);
  assert.throws(() => { (second.result.outputs[0] as { name: string }).name = 'evil'; }, TypeError);
  assert.throws(() => second.result.outputs[0].shape.push(1), TypeError);
  assert.deepEqual({ ...cache.stats(), bytes: 0 }, { hits: 1, misses: 1, coalesced: 0, evictions: 0, expirations: 0, invalidations: 0, tooLarge: 0, entries: 1, bytes: 0, maxBytes: 1 << 20 });
});

test('hashRequest: canonical order, model@version prefix, and no collisions across meaning-changing differences', () => {
  const base = hashRequest(parts());
  assert.match(base, /^mlp@1:[0-9a-f]{64}$/);
  const a = tensor('a', [1, 2, 3, 4]), b = tensor('b', [5, 6, 7, 8]);
  assert.equal(hashRequest(parts({ inputs: [a, b] })), hashRequest(parts({ inputs: [b, a] })), 'input order does not matter');
  assert.equal(hashRequest(parts({ outputs: ['x', 'y'] })), hashRequest(parts({ outputs: ['y', 'x'] })), 'output order does not matter');
  const six = Array.from({ length: 24 }, (_, i) => i);
  const big = (n: number, fill: number) => new Uint8Array(n).fill(fill);
  const variants: HashParts[] = [
    parts(),
    parts({ version: '2' }),
    parts({ model: 'mlp2' }),
    parts({ model: 'mlp@1', version: '' }),
    parts({ outputs: [] }),
    parts({ outputs: ['logits', 'probs'] }),
    parts({ outputs: ['logitsprobs'] }),
    parts({ text: '' }),
    parts({ text: 'hi' }),
    parts({ pipelineOptions: 'hi' }),
    parts({ inputs: [tensor('input', six, [2, 3])] }),
    parts({ inputs: [tensor('input', six, [3, 2])] }),
    parts({ inputs: [tensor('input', six, [6])] }),
    parts({ inputs: [tensor('input', six, [2, 3], 'INT32')] }),
    parts({ inputs: [tensor('input2', six, [2, 3])] }),
    // boundary shifts: the concatenated bytes (and names) are equal, the split differs
    parts({ inputs: [tensor('a', [1, 2, 3, 4, 5, 6, 7, 8]), tensor('b', [9, 10, 11, 12])] }),
    parts({ inputs: [tensor('a', [1, 2, 3, 4]), tensor('b', [5, 6, 7, 8, 9, 10, 11, 12])] }),
    parts({ inputs: [tensor('ab', [1, 2, 3, 4]), tensor('c', [5, 6, 7, 8])] }),
    parts({ inputs: [tensor('a', [1, 2, 3, 4]), tensor('bc', [5, 6, 7, 8])] }),
    parts({ inputs: [tensor('a', big(8192, 1)), tensor('b', big(4096, 1))] }),
    parts({ inputs: [tensor('a', big(4096, 1)), tensor('b', big(8192, 1))] }),
    parts({ inputs: [{ ...tensor('s', [], [2], 'STRING'), strings: ['ab', 'c'] }] }),
    parts({ inputs: [{ ...tensor('s', [], [2], 'STRING'), strings: ['a', 'bc'] }] }),
    parts({ inputs: [{ ...tensor('s', [], [0], 'STRING'), strings: [] }] }),
    parts({ inputs: [tensor('s', [], [0], 'STRING')] }),
    parts({ text: '\uD800' }),
    parts({ text: '\uD801' }),
  ];
  const keys = variants.map(hashRequest);
  assert.equal(new Set(keys).size, keys.length, `collision among ${keys.length} variants`);
});

test('100 concurrent calls of one key run compute exactly once and all get the result', async () => {
  const cache = new ResultCache({ maxBytes: 1 << 20 });
  const gate = deferred<InferenceResult>();
  let calls = 0;
  const all = Array.from({ length: 100 }, () => cache.getOrCompute('mlp@1:k', 1000, () => (calls++, gate.promise)));
  gate.resolve(result());
  const answers = await Promise.all(all);
  assert.equal(calls, 1);
  assert.ok(answers.every((a) => a.result === answers[0].result && a.cached === false));
  assert.equal(cache.stats().misses, 1);
  assert.equal(cache.stats().coalesced, 99);
  assert.equal((await cache.getOrCompute('mlp@1:k', 1000, async () => result())).cached, true);
});

test('a failing compute rejects all 100 callers with the same error, caches nothing, and the next call computes again', async () => {
  const cache = new ResultCache({ maxBytes: 1 << 20 });
  const gate = deferred<InferenceResult>();
  let calls = 0;
  const all = Array.from({ length: 100 }, () => cache.getOrCompute('mlp@1:k', 1000, () => (calls++, gate.promise)));
  const boom = new ServingError(Code.INTERNAL, 'onnxruntime failed');
  gate.reject(boom);
  const settled = await Promise.allSettled(all);
  assert.ok(settled.every((s) => s.status === 'rejected' && s.reason === boom));
  assert.equal(calls, 1);
  assert.equal(cache.stats().entries, 0);
  const again = await cache.getOrCompute('mlp@1:k', 1000, async () => (calls++, result()));
  assert.equal(again.cached, false);
  assert.equal(calls, 2);
  // a compute that throws synchronously leaves no stuck in-flight entry either
  await assert.rejects(cache.getOrCompute('mlp@1:sync', 1000, () => { throw boom; }), boom);
  assert.equal((await cache.getOrCompute('mlp@1:sync', 1000, async () => result())).cached, false);
});

test('the byte bound holds under churn; evictions and oversize results are counted', async () => {
  const maxBytes = 64 * 1024;
  const cache = new ResultCache({ maxBytes });
  const seen: EvictReason[] = [];
  cache.onEvict((_key, reason, bytes) => { assert.ok(bytes > 0); seen.push(reason); });
  for (let i = 0; i < 500; i++) {
    await cache.getOrCompute(key('mlp', '1', i), 60_000, async () => result(4 * (1 + ((i * 37) % 1000))));
    assert.ok(cache.stats().bytes <= maxBytes, `bytes ${cache.stats().bytes} > ${maxBytes} after ${i}`);
  }
  const s = cache.stats();
  assert.ok(s.evictions > 0);
  assert.equal(seen.length, s.evictions);
  assert.ok(seen.every((r) => r === 'evict'));
  assert.equal(s.misses, 500);
  // one result bigger than the whole cache is returned but not stored
  const huge = await cache.getOrCompute('mlp@1:huge', 60_000, async () => result(maxBytes));
  assert.equal(huge.result.outputs[0].data.byteLength, maxBytes);
  assert.equal(cache.stats().tooLarge, 1);
  assert.equal((await cache.getOrCompute('mlp@1:huge', 60_000, async () => result(4))).cached, false);
  // a pooled Buffer slice is compacted, so the bytes counted are the bytes kept alive
  const pooled = Buffer.from([1, 2, 3, 4]);
  const got = await cache.getOrCompute('mlp@1:pooled', 60_000, async () => ({ ...result(), outputs: [tensor('o', pooled)] }));
  assert.equal(got.result.outputs[0].data.buffer.byteLength, 4);
  assert.deepEqual([...got.result.outputs[0].data], [1, 2, 3, 4]);
});

test('entries expire after their TTL on the injected clock', async () => {
  let now = 1_000;
  const cache = new ResultCache({ maxBytes: 1 << 20, now: () => now });
  const expired: EvictReason[] = [];
  cache.onEvict((_k, reason) => expired.push(reason));
  await cache.getOrCompute('mlp@1:k', 500, async () => result());
  now += 499;
  assert.equal((await cache.getOrCompute('mlp@1:k', 500, async () => result())).cached, true);
  now += 2;
  let calls = 0;
  assert.equal((await cache.getOrCompute('mlp@1:k', 500, async () => (calls++, result()))).cached, false);
  assert.equal(calls, 1);
  assert.equal(cache.stats().expirations, 1);
  assert.deepEqual(expired, ['expire']);
  // ttl <= 0 computes but keeps nothing
  await cache.getOrCompute('mlp@1:zero', 0, async () => result());
  assert.equal((await cache.getOrCompute('mlp@1:zero', 0, async () => result())).cached, false);
});

test('invalidate(model, version) drops only that version; a running compute of it is not stored', async () => {
  const cache = new ResultCache({ maxBytes: 1 << 20 });
  for (const [m, v] of [['mlp', '1'], ['mlp', '2'], ['convnet', '1']]) {
    for (let i = 0; i < 3; i++) await cache.getOrCompute(key(m, v, i), 60_000, async () => result(40, v, m));
  }
  const gate = deferred<InferenceResult>();
  const running = cache.getOrCompute(key('mlp', '1', 99), 60_000, () => gate.promise);
  assert.equal(cache.invalidate('mlp', '1'), 4, '3 entries + 1 running compute');
  // a caller after the invalidation must not join the disowned compute
  const fresh = deferred<InferenceResult>();
  const after = cache.getOrCompute(key('mlp', '1', 99), 60_000, () => fresh.promise);
  gate.resolve(result(40, '1'));
  assert.equal((await running).result.version, '1', 'the callers that asked before still get their answer');
  let calls = 0;
  fresh.resolve(result(40, '1'));
  await after;
  assert.equal((await cache.getOrCompute(key('mlp', '1', 99), 60_000, async () => (calls++, result()))).cached, true);
  assert.equal(calls, 0, 'the post-invalidation compute was stored');
  assert.equal((await cache.getOrCompute(key('mlp', '1', 0), 60_000, async () => (calls++, result()))).cached, false);
  assert.equal((await cache.getOrCompute(key('mlp', '2', 0), 60_000, async () => (calls++, result()))).cached, true);
  assert.equal((await cache.getOrCompute(key('convnet', '1', 0), 60_000, async () => (calls++, result()))).cached, true);
  assert.equal(cache.invalidate('mlp'), 5, 'mlp@1 (2 entries) + mlp@2 (3 entries)');
  assert.equal(cache.stats().entries, 3);
  // the disowned compute's result never landed
  const gate2 = deferred<InferenceResult>();
  const p = cache.getOrCompute('convnet@1:x', 60_000, () => gate2.promise);
  cache.invalidate('convnet', '1');
  gate2.resolve(result());
  await p;
  assert.equal((await cache.getOrCompute('convnet@1:x', 60_000, async () => result())).cached, false);
});

test('one caller cancelling does not cancel the shared compute; all cancelling aborts it', async () => {
  const cache = new ResultCache({ maxBytes: 1 << 20 });
  const gate = deferred<InferenceResult>();
  let shared: CancelSignal | undefined;
  const leaderAbort = new AbortController();
  const leader = cache.getOrCompute('mlp@1:k', 1000, (signal) => ((shared = signal), gate.promise), { signal: leaderAbort.signal });
  const waiter = cache.getOrCompute('mlp@1:k', 1000, () => Promise.reject(new Error('must not run')));
  leaderAbort.abort();
  await assert.rejects(leader, (e: ServingError) => e.code === Code.CANCELLED);
  assert.equal(shared!.aborted, false);
  gate.resolve(result());
  assert.equal((await waiter).result.outputs[0].data.byteLength, 40);

  const gate2 = deferred<InferenceResult>();
  const a = new AbortController(), b = new AbortController();
  let shared2: CancelSignal | undefined;
  const pa = cache.getOrCompute('mlp@1:k2', 1000, (signal) => ((shared2 = signal), gate2.promise), { signal: a.signal });
  const pb = cache.getOrCompute('mlp@1:k2', 1000, () => gate2.promise, { signal: b.signal });
  a.abort();
  assert.equal(shared2!.aborted, false);
  b.abort();
  assert.equal(shared2!.aborted, true);
  await assert.rejects(pa, (e: ServingError) => e.code === Code.CANCELLED);
  await assert.rejects(pb, (e: ServingError) => e.code === Code.CANCELLED);
  gate2.reject(new ServingError(Code.CANCELLED, 'dropped by scheduler')); // nobody awaits: must not crash
});

test("a joined caller retries when the leader's own deadline fails the shared compute", async () => {
  const cache = new ResultCache({ maxBytes: 1 << 20 });
  const gate = deferred<InferenceResult>();
  const leader = cache.getOrCompute('mlp@1:k', 1000, () => gate.promise);
  let ownCalls = 0;
  const waiter = cache.getOrCompute('mlp@1:k', 1000, async () => (ownCalls++, result()));
  gate.reject(deadlineExceeded('deadline passed while queued'));
  await assert.rejects(leader, (e: ServingError) => e.code === Code.DEADLINE_EXCEEDED);
  assert.equal((await waiter).cached, false);
  assert.equal(ownCalls, 1);
});

test('hashRequest stays exact when its scratch buffer grows mid-encoding (huge strings after big data)', () => {
  const long = 'x'.repeat(600_000); // 1.2 MB as UTF-16: grows the scratch past its reset threshold
  const req = (name: string, last: string) => parts({
    inputs: [tensor(name, new Uint8Array(8192).fill(3)), { ...tensor('s', [], [2], 'STRING'), strings: [long, last] }],
  });
  const k = hashRequest(req('a', 'y'));
  assert.equal(hashRequest(req('a', 'y')), k, 'deterministic');
  assert.notEqual(hashRequest(req('b', 'y')), k, 'fields written before the growth still count');
  assert.notEqual(hashRequest(req('a', 'z')), k, 'fields written after the growth count');
  assert.equal(hashRequest(parts()), hashRequest(parts()), 'small keys after a reset are unchanged');
  // 400 KB of strings: the first call grows the (just reset) scratch, the second finds it big enough.
  // Both must encode identically, so growing mid-encoding loses and invents nothing.
  const mid = (name: string) => parts({
    inputs: [tensor(name, new Uint8Array(8192).fill(3)), { ...tensor('s', [], [1], 'STRING'), strings: ['y'.repeat(200_000)] }],
  });
  const grown = hashRequest(mid('a'));
  assert.equal(hashRequest(mid('a')), grown);
  assert.notEqual(hashRequest(mid('b')), grown);
});
