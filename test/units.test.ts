/**
 * Unit tests of the small pure pieces: version policy, config schema, tokenizer, FP16 conversion,
 * server settings precedence.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { selectVersions } from '../src/repository/version-policy';
import { modelConfigSchema, readModelConfig } from '../src/repository/model-config';
import { TextClassificationPipeline } from '../src/pipelines/text-classification';
import { bytesToValues, float16BitsToFloat32, float32ToFloat16Bits, valuesToBytes } from '../src/core/tensor-values';
import { resolveServerConfig } from '../src/config/server-config';
import { BUNDLED_MODELS_DIR, tempDir } from './common';
import { InflightCalls } from '../src/api/inflight-calls';
import { unavailable, type ServingError } from '../src/core/errors';

test('version policy: latest N, all, specific', () => {
  assert.deepEqual(selectVersions([1, 3, 2, 10], { latest: 1 }), [10]);
  assert.deepEqual(selectVersions([1, 3, 2, 10], { latest: 3 }), [10, 3, 2]);
  assert.deepEqual(selectVersions([1, 3], { latest: 5 }), [3, 1]);
  assert.deepEqual(selectVersions([1, 3, 2], { all: true }), [3, 2, 1]);
  assert.deepEqual(selectVersions([1, 3, 2], { specific: [2, 7] }), [2]);
});

test('model config: defaults filled in, unknown keys and bad values named', async () => {
  const config = modelConfigSchema.parse({});
  assert.deepEqual(config.version_policy, { latest: 1 });
  assert.deepEqual(config.session.execution_providers, ['cpu']);
  assert.equal(config.session.graph_optimization_level, 'all');
  assert.equal(config.deterministic, false);

  const t = tempDir('config');
  try {
    const file = path.join(t.dir, 'config.yaml');
    fs.writeFileSync(file, 'session:\n  intra_op_thread: 2\n');
    await assert.rejects(readModelConfig(file, 'm'), /session: unknown key 'intra_op_thread'/);
    fs.writeFileSync(file, 'inputs: [{ name: x, dtype: FP33 }]\n');
    await assert.rejects(readModelConfig(file, 'm'), /inputs.0.dtype: /);
    fs.writeFileSync(file, 'name: other\n');
    await assert.rejects(readModelConfig(file, 'm'), /name 'other' does not match the folder name 'm'/);
    fs.writeFileSync(file, 'version_policy: { latest: 0 }\n');
    await assert.rejects(readModelConfig(file, 'm'), /version_policy/);
    const missing = await readModelConfig(path.join(t.dir, 'absent.yaml'), 'm');
    assert.deepEqual(missing.version_policy, { latest: 1 });
  } finally {
    t.cleanup();
  }
});

test('every bundled config.yaml is valid', async () => {
  for (const name of fs.readdirSync(BUNDLED_MODELS_DIR)) {
    await readModelConfig(path.join(BUNDLED_MODELS_DIR, name, 'config.yaml'), name);
  }
});

test('word tokenizer: lowercases, splits on non-word characters, maps unknown words to 1, pads empty text', async () => {
  const config = (await readModelConfig(path.join(BUNDLED_MODELS_DIR, 'sentiment/config.yaml'), 'sentiment')).text_pipeline!;
  const pipeline = await TextClassificationPipeline.load(path.join(BUNDLED_MODELS_DIR, 'sentiment'), config);
  const vocab = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODELS_DIR, 'sentiment/vocab.json'), 'utf8'));
  assert.deepEqual(pipeline.tokenize('I LOVE it, zzqx!'), [1, vocab.love, 1, 1]);
  assert.deepEqual(pipeline.tokenize("can't"), [vocab["can't"] ?? 1]);
  const empty = pipeline.encode('');
  assert.deepEqual(empty.shape, [1, 1]);
  assert.deepEqual([...new BigInt64Array(empty.data.buffer)], [0n]);
  const long = pipeline.encode('good '.repeat(500));
  assert.deepEqual(long.shape, [1, 128], 'max_tokens caps the sequence');
  // The INT64 bytes are the ids (written as 32-bit words); a scan stopped at max_tokens leaves the next text unaffected.
  const sentence = pipeline.encode('Love it, hate zzqx');
  assert.deepEqual([...new BigInt64Array(sentence.data.buffer)], [vocab.love, 1, vocab.hate, 1].map(BigInt));
  assert.deepEqual(pipeline.tokenize('good bad'), [vocab.good, vocab.bad]);
});

test('a vocabulary id beyond INT32 is refused at load, naming the word', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-vocab-'));
  try {
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify({ fine: 2, huge: 2 ** 31 }));
    const config = (await readModelConfig(path.join(BUNDLED_MODELS_DIR, 'sentiment/config.yaml'), 'sentiment')).text_pipeline!;
    await assert.rejects(TextClassificationPipeline.load(dir, config), /id of 'huge' must be an integer from 0 to 2147483647/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('FP16 conversion round-trips representable values and rounds to nearest even', () => {
  for (const v of [0, -0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8, Infinity, -Infinity]) {
    assert.equal(float16BitsToFloat32(float32ToFloat16Bits(v)), v, `value ${v}`);
  }
  assert.ok(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN))));
  assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00, 'a tie rounds to even');
  assert.equal(float32ToFloat16Bits(70000), 0x7c00, 'overflow saturates to infinity');
});

test('tensor values <-> little-endian bytes for every numeric dtype', () => {
  assert.deepEqual([...valuesToBytes('INT16', [1, -2])], [1, 0, 0xfe, 0xff]);
  assert.deepEqual(bytesToValues('UINT64', valuesToBytes('UINT64', [2n ** 64n - 1n])), [2n ** 64n - 1n]);
  assert.deepEqual(bytesToValues('BOOL', valuesToBytes('BOOL', [true, false])), [true, false]);
  assert.deepEqual(bytesToValues('FP64', valuesToBytes('FP64', [Math.PI])), [Math.PI]);
});

test('server settings: defaults < environment < flags, invalid values named', () => {
  assert.equal(resolveServerConfig({}, {}).port, 50051);
  assert.equal(resolveServerConfig({}, {}).host, '127.0.0.1');
  assert.equal(resolveServerConfig({}, { TENSORGATE_PORT: '6000' }).port, 6000);
  assert.equal(resolveServerConfig({ port: '7000' }, { TENSORGATE_PORT: '6000' }).port, 7000);
  assert.equal(resolveServerConfig({ workers: '3' }, {}).workers, 3);
  assert.throws(() => resolveServerConfig({ port: 'abc' }, {}), /invalid setting: --port "abc": expected number, received NaN \(--port: gRPC port/);
  assert.throws(() => resolveServerConfig({}, { TENSORGATE_WORKERS: '-2' }), /invalid setting: TENSORGATE_WORKERS "-2": Too small/);
  assert.throws(() => resolveServerConfig({ 'log-level': 'loud' }, {}), /--log-level "loud": Invalid option: expected one of "fatal"/);
});

test('in-flight calls: forgotten ones are not failed, forgetting twice is harmless, the rest are failed once each', () => {
  const calls = new InflightCalls();
  const failed: string[] = [];
  const track = (name: string) => calls.track((err: ServingError) => failed.push(`${name}: ${err.code}`));
  const forgetA = track('a');
  const forgetB = track('b');
  track('c');
  const forgetD = track('d');
  assert.equal(calls.size, 4);
  forgetB();
  forgetB();
  forgetD();
  forgetA();
  assert.equal(calls.size, 1);
  const forgetE = track('e');
  assert.equal(calls.failAll(unavailable('draining')), 2);
  assert.deepEqual(failed.sort(), ['c: UNAVAILABLE', 'e: UNAVAILABLE']);
  assert.equal(calls.size, 0);
  forgetE();
  assert.equal(calls.size, 0, 'a call answered after the drain failed it is not counted twice');
  assert.equal(calls.failAll(unavailable('again')), 0);
});
