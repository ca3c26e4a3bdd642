/**
 * Checks the ONNX writer (tools/onnx-builder.ts) end to end: the fixture models
 * and the bundled models under models/ must load and compute in ONNX Runtime.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { parse as parseYaml } from 'yaml';
import {
  IDENTITY_DTYPES,
  type IdentityDtype,
  writeFixedShapeModel,
  writeIdentityModel,
  writeReshapeModel,
  writeSlowModel,
} from './fixtures/onnx-fixtures';

// Compiled to dist/test/, so the repository's models/ is two levels up.
const MODELS_DIR = path.resolve(__dirname, '..', '..', 'models');
const SINGLE_THREAD: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-onnx-fixtures-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function load(file: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(file, SINGLE_THREAD);
}

/** A [2, 3] sample per dtype, including values at the edges of each type's range. */
function sample(dtype: IdentityDtype): ort.Tensor {
  const dims = [2, 3];
  switch (dtype) {
    case 'fp32':
      return new ort.Tensor('float32', Float32Array.from([0, -1.5, 3.25, 1e-30, -3.4e38, Infinity]), dims);
    case 'fp64':
      return new ort.Tensor('float64', Float64Array.from([0, -1.5, Math.PI, 1e-300, -1.7e308, -Infinity]), dims);
    case 'fp16': // raw IEEE half bits: 0, 1.0, -2.0, 65504 (max), smallest subnormal, NaN
      return new ort.Tensor('float16', Uint16Array.from([0x0000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x7e00]), dims);
    case 'int8':
      return new ort.Tensor('int8', Int8Array.from([0, 1, -1, 127, -128, 42]), dims);
    case 'int16':
      return new ort.Tensor('int16', Int16Array.from([0, 1, -1, 32767, -32768, 42]), dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from([0, 1, -1, 2147483647, -2147483648, 42]), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from([0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n]), dims);
    case 'uint8':
      return new ort.Tensor('uint8', Uint8Array.from([0, 1, 2, 127, 128, 255]), dims);
    case 'uint16':
      return new ort.Tensor('uint16', Uint16Array.from([0, 1, 2, 32767, 32768, 65535]), dims);
    case 'uint32':
      return new ort.Tensor('uint32', Uint32Array.from([0, 1, 2, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]), dims);
    case 'uint64':
      return new ort.Tensor('uint64', BigUint64Array.from([0n, 1n, 2n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 53n + 1n]), dims);
    case 'bool':
      return new ort.Tensor('bool', Uint8Array.from([1, 0, 1, 1, 0, 0]), dims);
    case 'string':
      return new ort.Tensor('string', ['', 'a', 'héllo', 'with space', '😀', 'x'.repeat(100)], dims);
  }
}

test('identity model round-trips every dtype exactly', async () => {
  const file = path.join(tmp, 'identity.onnx');
  writeIdentityModel(file);
  const session = await load(file);
  assert.deepEqual([...session.inputNames], IDENTITY_DTYPES.map((d) => `x_${d}`));
  assert.deepEqual([...session.outputNames], IDENTITY_DTYPES.map((d) => `y_${d}`));

  const feeds: Record<string, ort.Tensor> = {};
  for (const d of IDENTITY_DTYPES) feeds[`x_${d}`] = sample(d);
  const out = await session.run(feeds);
  for (const d of IDENTITY_DTYPES) {
    const sent = feeds[`x_${d}`]!;
    const got = out[`y_${d}`];
    assert.ok(got, `missing y_${d}`);
    assert.equal(got.type, sent.type, `${d}: type`);
    assert.deepEqual(got.dims, sent.dims, `${d}: dims`);
    // Same typed array class and same elements (Object.is semantics, so NaN and -0 count).
    assert.equal(got.data.constructor, sent.data.constructor, `${d}: data class`);
    assert.deepEqual(Array.from(got.data as ArrayLike<unknown>), Array.from(sent.data as ArrayLike<unknown>), `${d}: values`);
  }
  await session.release();
});

test('reshape model fails at run time on a bad shape and keeps working afterwards', async () => {
  const file = path.join(tmp, 'reshape.onnx');
  writeReshapeModel(file);
  // ORT also prints failed kernels to stderr at ERROR level; 4 (FATAL) keeps the test output clean.
  const session = await ort.InferenceSession.create(file, { ...SINGLE_THREAD, logSeverityLevel: 4 });
  const x = new ort.Tensor('float32', Float32Array.from({ length: 8 }, (_, i) => i), [2, 4]);
  const shape = (dims: bigint[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(dims), [2]);

  await assert.rejects(session.run({ x, shape: shape([3n, 3n]) }));
  const ok = await session.run({ x, shape: shape([4n, 2n]) });
  assert.deepEqual(ok['y']!.dims, [4, 2]);
  assert.deepEqual(Array.from(ok['y']!.data as Float32Array), [0, 1, 2, 3, 4, 5, 6, 7]);
  await session.release();
});

test('fixed-shape model computes Relu on [2, 3]', async () => {
  const file = path.join(tmp, 'fixed.onnx');
  writeFixedShapeModel(file);
  const session = await load(file);
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 2, -3, 4, 0, -0.5]), [2, 3]) });
  assert.deepEqual(out['y']!.dims, [2, 3]);
  assert.deepEqual(Array.from(out['y']!.data as Float32Array), [0, 2, 0, 4, 0, 0]);
  await session.release();
});

test('slow model keeps shape [batch, 256] and bounded values', async () => {
  const file = path.join(tmp, 'slow.onnx');
  writeSlowModel(file);
  const session = await load(file);
  const x = new ort.Tensor('float32', Float32Array.from({ length: 4 * 256 }, (_, i) => Math.sin(i)), [4, 256]);
  const y = (await session.run({ x }))['y']!;
  assert.deepEqual(y.dims, [4, 256]);
  const data = y.data as Float32Array;
  assert.ok(data.every((v) => Number.isFinite(v) && Math.abs(v) < 1));
  assert.ok(data.some((v) => v !== 0), 'output should not collapse to all zeros');
  await session.release();
});

test('fixture writers are deterministic', () => {
  const a = path.join(tmp, 'det-a.onnx');
  const b = path.join(tmp, 'det-b.onnx');
  for (const write of [writeIdentityModel, writeReshapeModel, writeFixedShapeModel, writeSlowModel]) {
    write(a);
    write(b);
    assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)), `${write.name} output differs between runs`);
  }
});

interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

/** Loads a bundled model and checks its config.yaml names the same inputs and outputs. */
async function loadBundled(model: string): Promise<ort.InferenceSession> {
  const session = await load(path.join(MODELS_DIR, model, '1', 'model.onnx'));
  const config = parseYaml(fs.readFileSync(path.join(MODELS_DIR, model, 'config.yaml'), 'utf8')) as {
    inputs: TensorSpec[];
    outputs: TensorSpec[];
    deterministic: boolean;
  };
  assert.deepEqual(config.inputs.map((s) => s.name), [...session.inputNames], `${model}: config inputs`);
  assert.deepEqual(config.outputs.map((s) => s.name), [...session.outputNames], `${model}: config outputs`);
  assert.equal(config.deterministic, true);
  return session;
}

test('bundled sentiment model scores known words', async () => {
  const vocab = JSON.parse(fs.readFileSync(path.join(MODELS_DIR, 'sentiment', 'vocab.json'), 'utf8')) as Record<string, number>;
  assert.equal(vocab['<pad>'], 0);
  assert.equal(vocab['<unk>'], 1);
  const session = await loadBundled('sentiment');
  const id = (w: string): bigint => {
    const v = vocab[w];
    assert.equal(typeof v, 'number', `${w} should be in the vocabulary`);
    return BigInt(v!);
  };
  // Row 0: "love" (+3) padded; row 1: "hate" (-3) + "awful" (-3); row 2: unknown words only.
  const ids = BigInt64Array.from([id('love'), 0n, id('hate'), id('awful'), 1n, 1n]);
  const probs = (await session.run({ token_ids: new ort.Tensor('int64', ids, [3, 2]) }))['probabilities']!;
  assert.deepEqual(probs.dims, [3, 2]);
  const p = probs.data as Float32Array;
  assert.ok(p[1]! > 0.9, `love: positive ${p[1]}`);
  assert.ok(p[2]! > 0.9, `hate awful: negative ${p[2]}`);
  assert.ok(Math.abs(p[4]! - 0.5) < 1e-6 && Math.abs(p[5]! - 0.5) < 1e-6, 'unknown words are neutral');
  for (let row = 0; row < 3; row++) assert.ok(Math.abs(p[2 * row]! + p[2 * row + 1]! - 1) < 1e-6);
  await session.release();
});

for (const [model, input, dims] of [
  ['mlp', 'input', [3, 64]],
  ['convnet', 'image', [3, 3, 32, 32]],
] as const) {
  test(`bundled ${model} model maps a batch of 3 to logits [3, 10]`, async () => {
    const session = await loadBundled(model);
    const size = dims.reduce((a, b) => a * b, 1);
    const x = new ort.Tensor('float32', Float32Array.from({ length: size }, (_, i) => Math.cos(i)), [...dims]);
    const logits = (await session.run({ [input]: x }))['logits']!;
    assert.deepEqual(logits.dims, [3, 10]);
    assert.ok((logits.data as Float32Array).every(Number.isFinite));
    await session.release();
  });
}
