/**
 * `tensorgate predict` as a user runs it: the built CLI in its own Node process against a real server on an
 * ephemeral port. Covers tensors read from a file (`--input @FILE`) and from stdin (`--input -`), which a real
 * batch needs because it does not fit in one shell argument, and the `cached` and `request_id` it prints.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from './cli-process';
import { f32Tensor, float32s, PACKAGE_ROOT, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';

// Linux refuses a single argv string longer than this (MAX_ARG_STRLEN, 32 pages): spawn fails with E2BIG.
const MAX_ARG_STRLEN = 128 * 1024;

async function predictJson(args: string[], stdin?: string): Promise<any> {
  const r = await cli(['predict', '--address', ts.address, ...args], stdin);
  assert.equal(r.code, 0, `tensorgate predict exited ${r.code}\nstderr: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`tensorgate predict did not print JSON:\n${r.stdout.slice(0, 2000)}`);
  }
}

let ts: TestServer;
let tmp: { dir: string; cleanup: () => void };
// 32 convnet images: the largest batch the bundled convnet takes in one request.
const IMAGES = 32;
const batchValues = seededFloats(IMAGES * 3 * 32 * 32, 7);
const batchJson = JSON.stringify({ name: 'image', dtype: 'FP32', shape: [IMAGES, 3, 32, 32], values: Array.from(batchValues) });
let expectedLogits: number[];

before(async () => {
  tmp = tempDir('cli-predict');
  ts = await startTestServer();
  const res = await unary(ts.client, 'Predict', { model: 'convnet', inputs: [f32Tensor('image', [IMAGES, 3, 32, 32], batchValues)] });
  expectedLogits = Array.from(float32s(res.outputs[0].data));
});

after(async () => {
  await ts?.close();
  tmp?.cleanup();
});

function assertLogits(out: any): void {
  assert.equal(out.model, 'convnet');
  assert.equal(out.outputs.length, 1);
  assert.equal(out.outputs[0].name, 'logits');
  assert.deepEqual(out.outputs[0].shape, [IMAGES, 10]);
  const got: number[] = out.outputs[0].values;
  assert.equal(got.length, expectedLogits.length);
  // The same rows through the Node client: equal up to float rounding (ONNX Runtime may pick other kernels).
  got.forEach((v, i) => assert.ok(Math.abs(v - expectedLogits[i]!) <= 1e-5 * Math.max(1, Math.abs(expectedLogits[i]!)), `logit ${i}: ${v} vs ${expectedLogits[i]}`));
}

test('the 32-image batch is too long to pass as one argument (why @FILE and - exist)', () => {
  assert.ok(batchJson.length > MAX_ARG_STRLEN, `${batchJson.length} bytes of JSON`);
});

test('predict --input @FILE reads the tensor from a file', async () => {
  const file = path.join(tmp.dir, 'batch.json');
  fs.writeFileSync(file, batchJson);
  assertLogits(await predictJson(['--model', 'convnet', '--input', `@${file}`]));
});

test('predict --input - reads the tensor from stdin', async () => {
  assertLogits(await predictJson(['--model', 'convnet', '--input', '-'], batchJson));
});

test('predict --input - takes an array of tensors from stdin too', async () => {
  const tensors = JSON.stringify([{ name: 'token_ids', dtype: 'INT64', shape: [1, 2], values: [1963, 1] }]);
  const out = await predictJson(['--model', 'sentiment', '--input', '-', '--output', 'probabilities'], tensors);
  assert.deepEqual(out.outputs[0].shape, [1, 2]);
  const [negative, positive] = out.outputs[0].values;
  assert.ok(positive > negative, `"love" reads positive: ${out.outputs[0].values}`);
});

test('predict prints cached and request_id: a repeated call to a deterministic model is answered from the cache', async () => {
  // A text no other test sends, so the first call cannot find a cache entry.
  const args = ['--model', 'sentiment', '--text', 'cli-predict cache check: what a lovely day'];
  const first = await predictJson(args);
  const second = await predictJson(args);
  assert.equal(first.cached, false);
  assert.equal(second.cached, true);
  assert.equal(second.output_text, first.output_text);
  for (const r of [first, second]) assert.ok(typeof r.request_id === 'string' && r.request_id.length > 0, `request_id ${r.request_id}`);
  assert.notEqual(first.request_id, second.request_id, 'each call gets its own request id');
  // They lead the answer, before outputs that can run to megabytes.
  assert.deepEqual(Object.keys(first).slice(0, 4), ['model', 'version', 'cached', 'request_id']);
});

test('predict --input @FILE names a file it cannot read; --input - names stdin when it is not JSON', async () => {
  const missing = path.join(tmp.dir, 'no-such-batch.json');
  const r1 = await cli(['predict', '--address', ts.address, '--model', 'mlp', '--input', `@${missing}`]);
  assert.equal(r1.code, 1, `exit ${r1.code}, stderr: ${r1.stderr}`);
  assert.match(r1.stderr, new RegExp(`^tensorgate: --input @.*no-such-batch\\.json: cannot read .*ENOENT`));
  assert.equal(r1.stdout, '');

  const r2 = await cli(['predict', '--address', ts.address, '--model', 'mlp', '--input', '-'], '{"name": "input", ');
  assert.equal(r2.code, 1, `exit ${r2.code}, stderr: ${r2.stderr}`);
  assert.match(r2.stderr, /^tensorgate: --input - \(stdin\) is not JSON: /);
});
