/**
 * The result cache in the running server: hits are byte-identical and marked, identical concurrent
 * requests run once (counted by the workers), keys separate inputs/outputs/versions, and reloading a
 * version drops its entries.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { addModel, copyBundledModel, f32Tensor, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { writeIdentityModel } from './fixtures/onnx-fixtures';

let repo: ReturnType<typeof tempDir>;
let ts: TestServer;

before(async () => {
  repo = tempDir('cache');
  copyBundledModel(repo.dir, 'mlp');
  copyBundledModel(repo.dir, 'sentiment');
  // Two versions of mlp-shaped models for the version tests.
  addModel(repo.dir, 'versions', 'version_policy: { all: true }\ndeterministic: true\n', {
    1: (f) => fs.copyFileSync(path.join(repo.dir, 'mlp/1/model.onnx'), f),
    2: (f) => fs.copyFileSync(path.join(repo.dir, 'mlp/1/model.onnx'), f),
  });
  addModel(repo.dir, 'nondeterministic', undefined, { 1: (f) => fs.copyFileSync(path.join(repo.dir, 'mlp/1/model.onnx'), f) });
  addModel(repo.dir, 'identity', 'deterministic: true\n', { 1: writeIdentityModel });
  ts = await startTestServer({ modelRepository: repo.dir, workers: 2 });
});
after(async () => {
  await ts.close();
  repo.cleanup();
});

async function runs(key: string): Promise<number> {
  return (await ts.server.pool.stats()).reduce((n, s) => n + (s.runs[key] ?? 0), 0);
}

const mlp = (seed: number, extra: object = {}) => ({ model: 'mlp', inputs: [f32Tensor('input', [1, 64], seededFloats(64, seed))], ...extra });

test('a repeated request is answered from the cache with identical bytes and cached=true', async () => {
  const first = await unary(ts.client, 'Predict', mlp(1));
  const before = await runs('mlp@1');
  const second = await unary(ts.client, 'Predict', mlp(1));
  assert.equal(first.cached, false);
  assert.equal(second.cached, true);
  assert.deepEqual(Buffer.from(second.outputs[0].data), Buffer.from(first.outputs[0].data));
  assert.equal(await runs('mlp@1'), before, 'the hit did not run the model');
  const text1 = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'what a lovely day' });
  const text2 = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'what a lovely day' });
  assert.equal(text2.cached, true);
  assert.equal(text2.output_text, text1.output_text);
  assert.deepEqual(text2.labels, text1.labels);
});

test('100 concurrent identical requests run the model exactly once', async () => {
  const before = await runs('mlp@1');
  const results = await Promise.all(Array.from({ length: 100 }, () => unary(ts.client, 'Predict', mlp(42))));
  assert.equal(await runs('mlp@1'), before + 1);
  const bytes = Buffer.from(results[0].outputs[0].data);
  for (const r of results) assert.deepEqual(Buffer.from(r.outputs[0].data), bytes);
});

test('different inputs, shapes, dtypes, outputs and versions never collide', async () => {
  const a = await unary(ts.client, 'Predict', mlp(7));
  const b = await unary(ts.client, 'Predict', mlp(8));
  assert.equal(b.cached, false);
  assert.notDeepEqual(Buffer.from(a.outputs[0].data), Buffer.from(b.outputs[0].data));
  // Same bytes, different shape / dtype: identity echoes them back with their own shape and dtype.
  const bytes = Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
  const identity = (name: string, dtype: string, shape: number[]) => ({
    model: 'identity',
    inputs: ['fp32', 'fp64', 'fp16', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool', 'string'].map((s) =>
      s === name
        ? { name: `x_${s}`, dtype, shape, data: bytes, string_data: [] }
        : { name: `x_${s}`, dtype: s.toUpperCase(), shape: [0, 0], data: Buffer.alloc(0), string_data: [] },
    ),
    outputs: [`y_${name}`],
  });
  const r23 = await unary(ts.client, 'Predict', identity('fp32', 'FP32', [2, 3]));
  const r32 = await unary(ts.client, 'Predict', identity('fp32', 'FP32', [3, 2]));
  const rInt = await unary(ts.client, 'Predict', identity('int32', 'INT32', [2, 3]));
  assert.deepEqual([r23.cached, r32.cached, rInt.cached], [false, false, false]);
  assert.deepEqual(r32.outputs[0].shape, [3, 2]);
  assert.equal(rInt.outputs[0].dtype, 'INT32');
  // Versions: the same request to v1 and v2 are separate entries.
  const v1 = await unary(ts.client, 'Predict', { ...mlp(9), model: 'versions', version: '1' });
  const v2 = await unary(ts.client, 'Predict', { ...mlp(9), model: 'versions', version: '2' });
  assert.equal(v1.version, '1');
  assert.equal(v2.version, '2');
  assert.equal(v2.cached, false);
});

test('models not marked deterministic are never cached; bypass_cache skips the cache', async () => {
  await unary(ts.client, 'Predict', { ...mlp(3), model: 'nondeterministic' });
  const again = await unary(ts.client, 'Predict', { ...mlp(3), model: 'nondeterministic' });
  assert.equal(again.cached, false);
  await unary(ts.client, 'Predict', mlp(4));
  const bypassed = await unary(ts.client, 'Predict', mlp(4, { options: { bypass_cache: true } }));
  assert.equal(bypassed.cached, false);
  assert.equal((await unary(ts.client, 'Predict', mlp(4))).cached, true, 'the bypassing request left the entry alone');
});

test('reloading a version with a new model file drops its cached results', async () => {
  const req = { ...mlp(11), model: 'versions', version: '2' };
  const old = await unary(ts.client, 'Predict', req);
  assert.equal((await unary(ts.client, 'Predict', req)).cached, true);
  // Replace version 2 with a different network of the same signature: flip one bit in the weights near
  // the end of the file (the last initializers are stored there).
  const file = path.join(repo.dir, 'versions/2/model.onnx');
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 100] ^= 0x40;
  fs.writeFileSync(file, bytes);
  await ts.server.repository.loadModel('versions');
  const fresh = await unary(ts.client, 'Predict', req);
  assert.equal(fresh.cached, false, 'the reloaded version computed afresh');
  assert.notDeepEqual(Buffer.from(fresh.outputs[0].data), Buffer.from(old.outputs[0].data));
  assert.ok(ts.server.cache!.stats().invalidations > 0);
});

test('a text request after the same tensor request gets its label from the shared entry, not an empty answer', async () => {
  // "I love this" tokenises to the same ids as this tensor request, with the same output.
  const pipeline = ts.server.repository.entry('sentiment').textPipeline!;
  const ids = pipeline.tokenize('I love this');
  const tensor = { name: 'token_ids', dtype: 'INT64', shape: [1, ids.length], data: Buffer.from(new BigInt64Array(ids.map(BigInt)).buffer), string_data: [] };
  const first = await unary(ts.client, 'Predict', { model: 'sentiment', inputs: [tensor], outputs: ['probabilities'] });
  assert.equal(first.cached, false);
  const text = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'I love this' });
  assert.equal(text.cached, true, 'served from the entry the tensor request stored');
  assert.equal(text.output_text, 'positive');
  assert.ok(text.confidence > 0.5, `confidence ${text.confidence}`);
  assert.deepEqual(text.labels.map((l: { label: string }) => l.label), ['negative', 'positive']);
  // And the other way round: a tensor request after a text request gets tensors.
  const other = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'what a terrible day' });
  assert.equal(other.output_text, 'negative');
  const otherIds = pipeline.tokenize('what a terrible day');
  const again = await unary(ts.client, 'Predict', { model: 'sentiment', inputs: [{ ...tensor, shape: [1, otherIds.length], data: Buffer.from(new BigInt64Array(otherIds.map(BigInt)).buffer) }], outputs: ['probabilities'] });
  assert.equal(again.cached, true);
  assert.deepEqual(again.outputs[0].shape, [1, 2]);
  assert.equal(again.output_text, '');
});
