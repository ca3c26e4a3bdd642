/**
 * `optimize --fp16`'s conversion (src/optimize/convert-fp16.ts), run through real ONNX Runtime: the bundled models
 * keep their signature, shrink by half where their weights were float32, and answer as before within float16's
 * precision; small graphs show the parts a bundled model does not exercise (blocked ops, Constants, an If whose
 * branch reads an outer value, a com.microsoft op) and the float16 rounding itself.
 *
 * Tolerance: the largest difference on an output may be 2^-8 of that output's largest magnitude. float16 keeps
 * 11 significant bits (a rounding step of 2^-11 relative); 2^-8 allows 8 such steps of error accumulated over
 * the layers. Measured (seeded inputs, 1 thread): mlp 1.8e-4 of 0.51, convnet 1.2e-5 of 0.039, sentiment 0,
 * tiny-lm logits 1.3e-3 of 14.7 and keys 1.9e-3 of 4.6: each at least 10x inside the bound.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { InferTensor } from '../src/core/tensor';
import { SeededRandom } from '../src/generation/seeded-random';
import { attr, DataType, floatTensor, GraphBuilder, int64Tensor, saveModel } from '../src/onnx/onnx-builder';
import { AttributeType, decodeModel, int64ToNumber, type OnnxModel, type OnnxNode } from '../src/onnx/onnx-proto';
import { float32ToFloat16Bits } from '../src/onnx/onnx-tensors';
import { convertToFloat16, type Fp16Report } from '../src/optimize/convert-fp16';
import { difference, numericValues } from '../src/optimize/output-difference';
import { seededInputs } from '../src/optimize/sample-inputs';
import type { SessionSettings } from '../src/runtime/messages';
import { NativeSession } from '../src/runtime/ort-session';
import { BUNDLED_MODELS_DIR, tempDir } from './common';

const SETTINGS: SessionSettings = { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', executionProviders: ['cpu'] };
const RELATIVE_TOLERANCE = 2 ** -8;

let tmp: { dir: string; cleanup: () => void };
before(() => { tmp = tempDir('fp16'); });
after(() => tmp?.cleanup());

/** Writes `model` and its float16 conversion; returns both paths and the report. */
function convertAndSave(name: string, model: OnnxModel): { original: string; converted: string; report: Fp16Report; model: OnnxModel } {
  const original = path.join(tmp.dir, `${name}.onnx`);
  const converted = path.join(tmp.dir, `${name}-fp16.onnx`);
  saveModel(original, model);
  const copy = decodeModel(fs.readFileSync(original));
  const report = convertToFloat16(copy);
  saveModel(converted, copy);
  return { original, converted, report, model: copy };
}

/** Runs each file on the same inputs; the outputs of each, in ONNX Runtime's order. */
function runBoth(files: readonly string[], inputs: readonly InferTensor[]): InferTensor[][] {
  return files.map((file) => {
    const session = new NativeSession(file, SETTINGS);
    try {
      return session.run(inputs, []).outputs;
    } finally {
      session.dispose();
    }
  });
}

function assertClose(expected: readonly InferTensor[], actual: readonly InferTensor[], what: string): void {
  assert.deepEqual(actual.map((t) => [t.name, t.dtype, t.shape]), expected.map((t) => [t.name, t.dtype, t.shape]), `${what}: outputs`);
  expected.forEach((e, i) => {
    const scale = Array.from(numericValues(e)!).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const d = difference(e, actual[i]!);
    assert.ok(d.maxAbs <= RELATIVE_TOLERANCE * scale, `${what} ${e.name}: largest difference ${d.maxAbs} over a largest magnitude ${scale}`);
  });
}

const i64 = (name: string, shape: number[], values: readonly number[]): InferTensor =>
  ({ name, dtype: 'INT64', shape, data: new Uint8Array(BigInt64Array.from(values, BigInt).buffer) });
const f32 = (name: string, shape: number[], values: ArrayLike<number>): InferTensor =>
  ({ name, dtype: 'FP32', shape, data: new Uint8Array(Float32Array.from(values).buffer) });
/**
 * `t` with the positions a left-padded batch masks out set to 0 (`mask` is [batch, total], `axis` the position
 * axis). What a model computes there is never read: a padded query may attend to nothing, and the original's -1e9
 * mask and the converted model's -65504 (-1e9 saturated) leave different amounts of the scores in that softmax
 * (measured: logits up to 1.9 apart at padded positions, within 2e-3 at every real one).
 */
function withoutPadding(t: InferTensor, mask: readonly number[], axis: number): InferTensor {
  const values = Float32Array.from(numericValues(t)!);
  const total = t.shape[axis]!;
  const inner = t.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const perRow = t.shape.slice(1).reduce((a, b) => a * b, 1);
  for (let i = 0; i < values.length; i++) if (mask[Math.floor(i / perRow) * total + (Math.floor(i / inner) % total)] === 0) values[i] = 0;
  return f32(t.name, t.shape, values);
}
const unpadded = (outputs: InferTensor[], mask: readonly number[]) => outputs.map((t) => withoutPadding(t, mask, t.name === 'logits' ? 1 : 2));
const float16Bits = (t: { rawData?: Uint8Array } | undefined): number[] =>
  Array.from(new Uint16Array(t!.rawData!.slice().buffer));
const producerOf = (m: OnnxModel, value: string): OnnxNode | undefined => m.graph!.node!.find((n) => n.output?.includes(value));
const castTo = (n: OnnxNode | undefined): number | undefined => (n?.opType === 'Cast' ? int64ToNumber(n.attribute?.[0]?.i) : undefined);

/** Converts a bundled model and checks what every one must keep: loadable, same signature, and its size ratio. */
function convertBundled(name: string, ratio: [number, number]) {
  const file = path.join(BUNDLED_MODELS_DIR, name, '1', 'model.onnx');
  const model = decodeModel(fs.readFileSync(file));
  const report = convertToFloat16(model);
  const converted = path.join(tmp.dir, `${name}-fp16.onnx`);
  saveModel(converted, model);
  const a = new NativeSession(file, SETTINGS);
  const b = new NativeSession(converted, SETTINGS);
  assert.deepEqual(b.inputs, a.inputs, `${name}: inputs`);
  assert.deepEqual(b.outputs, a.outputs, `${name}: outputs`);
  a.dispose();
  b.dispose();
  const shrink = fs.statSync(file).size / fs.statSync(converted).size;
  assert.ok(shrink >= ratio[0] && shrink <= ratio[1], `${name}: the file is ${shrink.toFixed(3)}x smaller`);
  return { file, converted, report, model, specs: a.inputs };
}

for (const name of ['mlp', 'convnet']) {
  test(`${name}: half the file, same signature, same answers within float16's precision`, () => {
    const { file, converted, report, specs } = convertBundled(name, [1.8, 2.1]);
    assert.ok(report.tensorsConverted > 0);
    assert.deepEqual(report.keptFloat32, []);
    const [a, b] = runBoth([file, converted], seededInputs(specs, 4));
    assertClose(a!, b!, name);
  });
}

test('sentiment: word ids of real sentences score as before (the file is 1.89x smaller: 13.9 kB, some of it graph)', () => {
  const { file, converted, report } = convertBundled('sentiment', [1.8, 2.1]);
  assert.equal(report.tensorsConverted, 3); // valence and the two scales; the int64 axes stay
  const vocab = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODELS_DIR, 'sentiment', 'vocab.json'), 'utf8')) as Record<string, number>;
  const sentences = ['what a wonderful happy day', 'a terrible awful mess', 'good food but bad service', 'nothing here at all'];
  const ids = sentences.flatMap((s) => {
    const words = s.split(' ').map((w) => vocab[w] ?? vocab['<unk>']!);
    return [...words, ...Array(8 - words.length).fill(0)];
  });
  assert.ok(ids.filter((id) => id > 1).length >= 6, 'the sentences have words the lexicon scores');
  const [a, b] = runBoth([file, converted], [i64('token_ids', [4, 8], ids)]);
  assertClose(a!, b!, 'sentiment');
});

test('tiny-lm: prefill with left padding and a decode step agree; its weights were float16 already, so the file barely shrinks', () => {
  // The bundled tiny-lm stores its matrices as FLOAT16 with Casts to float (tools/tiny-lm export.py --fp16-weights):
  // only its norm weights and constants were still float32, so the file is ~1.001x smaller. Those Casts are dropped.
  const { file, converted, report, model, specs } = convertBundled('tiny-lm', [1.0, 1.01]);
  assert.deepEqual(model.graph!.initializer!.filter((t) => t.dataType === DataType.FLOAT).map((t) => t.name), []);
  assert.ok(report.keptFloat32.includes('Sin /net/Sin') && report.keptFloat32.includes('Mul /net/Mul'), 'the rotary angle stays float32');
  assert.ok(!model.graph!.node!.some((n) => n.opType === 'Cast' && castTo(n) === DataType.FLOAT16 && n.input![0]!.endsWith('_fp16')), 'no float16-to-float16 Casts');

  const random = new SeededRandom(11n);
  const [batch, length, pad] = [2, 16, 5];
  const ids = Array.from({ length: batch * length }, () => 3 + Math.floor(random.next() * 4093)); // 0-2 are <pad>, <s>, </s>
  const mask = Array.from({ length: batch * length }, (_, i) => (i >= length && i < length + pad ? 0 : 1)); // row 2 left-padded
  const positions = mask.map((_, i) => (i < length ? i : Math.max(0, i - length - pad)));
  const empty = specs.slice(3).map((s) => f32(s.name, [batch, 4, 0, 64], []));
  const prefill = [i64('input_ids', [batch, length], ids), i64('attention_mask', [batch, length], mask), i64('position_ids', [batch, length], positions), ...empty];
  const [a, b] = runBoth([file, converted], prefill);
  assertClose(unpadded(a!, mask), unpadded(b!, mask), 'tiny-lm prefill');

  // One more token per row, each model continuing from its own cache.
  const stepMask = [...mask.slice(0, length), 1, ...mask.slice(length), 1];
  const step = (outputs: InferTensor[]) => [
    i64('input_ids', [batch, 1], [ids[3]!, ids[7]!]),
    i64('attention_mask', [batch, length + 1], stepMask),
    i64('position_ids', [batch, 1], [length, length - pad]),
    ...outputs.filter((t) => t.name.startsWith('present.')).map((t) => ({ ...t, name: t.name.replace('present.', 'past_key_values.') })),
  ];
  const [a2] = runBoth([file], step(a!));
  const [b2] = runBoth([converted], step(b!));
  assertClose(unpadded(a2!, stepMask), unpadded(b2!, stepMask), 'tiny-lm decode step');
});

test('a blocked op stays float32 between Casts, its own weights stay FLOAT, and the graph inputs and outputs stay FLOAT', () => {
  const g = new GraphBuilder('blocked');
  const x = g.input('x', DataType.FLOAT, ['batch', 4]);
  const w = g.initializer(floatTensor('w', [4, 4], Array.from({ length: 16 }, (_, i) => Math.sin(i))));
  const c = g.initializer(floatTensor('c', [4], [0.1, -0.2, 0.3, -0.4]));
  const h = g.node('MatMul', [x, w]);
  const m = g.node('Max', [h, c]);
  g.node('Relu', [m], {}, 'y');
  g.output('y', DataType.FLOAT, ['batch', 4]);
  const { original, converted, report, model } = convertAndSave('blocked', g.build());

  assert.deepEqual(report, { tensorsConverted: 1, keptFloat32: ['Max Max_node_1'] });
  const types = Object.fromEntries(model.graph!.initializer!.map((t) => [t.name, t.dataType]));
  assert.deepEqual(types, { w: DataType.FLOAT16, c: DataType.FLOAT });
  const max = model.graph!.node!.find((n) => n.opType === 'Max')!;
  assert.equal(castTo(producerOf(model, max.input![0]!)), DataType.FLOAT, 'the MatMul result is cast to float for Max');
  assert.equal(max.input![1], 'c');
  const relu = model.graph!.node!.find((n) => n.opType === 'Relu')!;
  assert.equal(castTo(producerOf(model, relu.input![0]!)), DataType.FLOAT16, "Max's result is cast back to float16");
  assert.equal(castTo(producerOf(model, 'y')), DataType.FLOAT, 'y keeps its name, written by a Cast to float');
  assert.equal(castTo(producerOf(model, model.graph!.node!.find((n) => n.opType === 'MatMul')!.input![0]!)), DataType.FLOAT16);
  assert.deepEqual([...model.graph!.input!, ...model.graph!.output!].map((v) => v.type!.tensorType!.elemType), [DataType.FLOAT, DataType.FLOAT]);

  const [a, b] = runBoth([original, converted], [f32('x', [3, 4], Array.from({ length: 12 }, (_, i) => i / 7 - 0.8))]);
  assertClose(a!, b!, 'blocked');
});

test('Constants, ConstantOfShape and Casts to float become float16; values beyond its range saturate', () => {
  const g = new GraphBuilder('constants');
  const x = g.input('x', DataType.FLOAT, [4]);
  const k = g.node('Constant', [], { value_float: attr.float(0) }, 'k'); // value replaced below by a tensor
  const s = g.node('Constant', [], { value_float: attr.float(2.5) }, 's');
  const z = g.node('ConstantOfShape', [g.initializer(int64Tensor('shape', [1], [4]))], {}, 'z');
  const n = g.node('Cast', [g.initializer(int64Tensor('n', [4], [1, 2, 3, 4]))], { to: attr.int(DataType.FLOAT) }, 'n_float');
  const big = g.initializer(floatTensor('big', [6], [1e9, -1e9, Infinity, NaN, 65519, 1e-9]));
  g.node('Mul', [g.node('Add', [g.node('Mul', [g.node('Add', [x, k]), s]), z]), n], {}, 'y');
  g.node('Neg', [big], {}, 'neg');
  g.output('y', DataType.FLOAT, [4]);
  g.output('neg', DataType.FLOAT, [6]);
  const built = g.build();
  producerOf(built, 'k')!.attribute = [{ name: 'value', type: AttributeType.TENSOR, t: floatTensor('', [4], [0.5, -1, 0.1, 3]) }];
  producerOf(built, 'z')!.attribute = [{ name: 'value', type: AttributeType.TENSOR, t: floatTensor('', [1], [0.25]) }];
  const { original, converted, report, model } = convertAndSave('constants', built);

  assert.deepEqual(report, { tensorsConverted: 4, keptFloat32: [] });
  assert.deepEqual(float16Bits(producerOf(model, 'k')!.attribute![0]!.t), [0x3800, 0xbc00, 0x2e66, 0x4200]);
  const scalar = producerOf(model, 's')!.attribute![0]!;
  assert.equal(scalar.name, 'value');
  assert.deepEqual([scalar.t!.dataType, scalar.t!.dims, float16Bits(scalar.t)], [DataType.FLOAT16, [], [0x4100]]);
  assert.deepEqual(float16Bits(producerOf(model, 'z')!.attribute![0]!.t), [0x3400]);
  assert.equal(castTo(producerOf(model, 'n_float')), DataType.FLOAT16);
  // Saturated, not infinite; infinity and NaN kept; 1e-9 is below half the smallest subnormal: zero.
  assert.deepEqual(float16Bits(model.graph!.initializer!.find((t) => t.name === 'big')), [0x7bff, 0xfbff, 0x7c00, 0x7e00, 0x7bff, 0x0000]);

  const [a, b] = runBoth([original, converted], [f32('x', [4], [1, -2, 0.5, 0.25])]);
  assertClose([a![0]!], [b![0]!], 'constants');
  assert.deepEqual(Array.from(numericValues(b![1]!)!, (v) => v + 0), [-65504, 65504, -Infinity, NaN, -65504, 0]);
});

test('an If stays float32 with its branches, which read the float16 value they used through a Cast', () => {
  const branch = (name: string, op: string) => {
    const b = new GraphBuilder(name);
    b.node(op, ['h', b.initializer(floatTensor(`one_${name}`, [2], [1, 1]))], {}, `r_${name}`);
    b.output(`r_${name}`, DataType.FLOAT, [2]);
    return b.build().graph!;
  };
  const g = new GraphBuilder('if');
  const x = g.input('x', DataType.FLOAT, [2]);
  const cond = g.input('cond', DataType.BOOL, []);
  g.node('Mul', [x, g.initializer(floatTensor('w', [2], [0.5, 3]))], {}, 'h');
  g.node('Identity', ['h'], {}, 'r'); // becomes the If below
  g.node('Relu', ['r'], {}, 'y');
  g.output('y', DataType.FLOAT, [2]);
  const built = g.build();
  Object.assign(producerOf(built, 'r')!, {
    opType: 'If', name: 'branch', input: [cond],
    attribute: [{ name: 'then_branch', type: AttributeType.GRAPH, g: branch('then', 'Add') }, { name: 'else_branch', type: AttributeType.GRAPH, g: branch('else', 'Sub') }],
  });
  const { original, converted, report, model } = convertAndSave('if', built);

  assert.deepEqual(report.keptFloat32, ['If branch']);
  const thenAdd = producerOf(model, 'r')!.attribute![0]!.g!.node![0]!;
  assert.notEqual(thenAdd.input![0], 'h');
  assert.equal(castTo(producerOf(model, thenAdd.input![0]!)), DataType.FLOAT, 'the branch reads h cast to float');
  assert.equal(model.graph!.initializer!.find((t) => t.name === 'w')!.dataType, DataType.FLOAT16);
  for (const c of [true, false]) {
    const inputs = [f32('x', [2], [1.5, -0.25]), { name: 'cond', dtype: 'BOOL' as const, shape: [], data: new Uint8Array([c ? 1 : 0]) }];
    const [a, b] = runBoth([original, converted], inputs);
    assertClose(a!, b!, `if ${c}`);
  }
});

test('a com.microsoft op stays float32 and the ops after it convert', () => {
  const g = new GraphBuilder('contrib');
  const x = g.input('x', DataType.FLOAT, ['batch', 4]);
  const h = g.node('MatMul', [x, g.initializer(floatTensor('w', [4, 4], Array.from({ length: 16 }, (_, i) => Math.cos(i))))]);
  g.node('Relu', [g.node('Gelu', [h], {}, 'gelu')], {}, 'y');
  g.output('y', DataType.FLOAT, ['batch', 4]);
  const built = g.build();
  producerOf(built, 'gelu')!.domain = 'com.microsoft';
  built.opsetImport!.push({ domain: 'com.microsoft', version: 1 });
  const { original, converted, report, model } = convertAndSave('contrib', built);
  assert.deepEqual(report.keptFloat32, ['com.microsoft.Gelu Gelu_node_1']);
  assert.equal(castTo(producerOf(model, model.graph!.node!.find((n) => n.opType === 'Relu')!.input![0]!)), DataType.FLOAT16);
  const [a, b] = runBoth([original, converted], [f32('x', [2, 4], [1, 2, 3, 4, -1, -2, -3, -4])]);
  assertClose(a!, b!, 'contrib');
});

test('float32ToFloat16Bits: nearest even, overflow, subnormals, NaN', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [-0, 0x8000],
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next float16: to the even one, 1
    [1 + 3 * 2 ** -11, 0x3c02], // halfway, the other way: the even one is above
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just past halfway: up
    [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00], [-Infinity, 0xfc00], // the raw rounding overflows; the pass saturates first
    [2 ** -14, 0x0400], [2 ** -14 - 2 ** -24, 0x03ff], [2 ** -24, 0x0001], [-(2 ** -24), 0x8001],
    [1.5 * 2 ** -24, 0x0002], [2.5 * 2 ** -24, 0x0002], [0.75 * 2 ** -24, 0x0001], [2 ** -25, 0x0000], [2 ** -26, 0x0000],
    [NaN, 0x7e00],
  ];
  for (const [value, bits] of cases) assert.equal(float32ToFloat16Bits(value).toString(16), bits.toString(16), `${value}`);
});
