/**
 * The int8 and pruning passes of `tensorgate optimize` on real models in ONNX Runtime: what they store, what
 * they leave alone, and how far the answers move (the tolerances the README states).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DataType, GraphBuilder, attr, floatTensor, saveModel } from '../src/onnx/onnx-builder';
import { decodeModel, encodeModel, type OnnxModel } from '../src/onnx/onnx-proto';
import { floatValues } from '../src/onnx/onnx-tensors';
import { argmaxRows, difference, numericValues } from '../src/optimize/output-difference';
import { parsePruneSpec, pruneMagnitude } from '../src/optimize/prune-magnitude';
import { quantizeInt8Dynamic } from '../src/optimize/quantize-int8';
import { seededInputs } from '../src/optimize/sample-inputs';
import type { SessionSettings } from '../src/runtime/messages';
import { NativeSession } from '../src/runtime/ort-session';
import { BUNDLED_MODELS_DIR, seededFloats, tempDir } from './common';

const SETTINGS: SessionSettings = { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', executionProviders: ['cpu'] };
/** The int8 tolerance the README states: the largest difference at most 3% of the largest original output. */
const INT8_RELATIVE_TOLERANCE = 0.03;

let work: { dir: string; cleanup: () => void };
before(() => {
  work = tempDir('optimize-passes');
});
after(() => work?.cleanup());

const bundled = (model: string) => path.join(BUNDLED_MODELS_DIR, model, '1', 'model.onnx');
const read = (file: string) => decodeModel(fs.readFileSync(file));

function write(model: OnnxModel, name: string): string {
  const file = path.join(work.dir, `${name}.onnx`);
  fs.writeFileSync(file, encodeModel(model));
  return file;
}

/** Both files on the same seeded rows: the largest difference, the largest original output, top-1 agreement. */
function runBoth(original: string, changed: string, rows: number): { maxAbs: number; largest: number; agreement: number } {
  const a = new NativeSession(original, SETTINGS);
  const b = new NativeSession(changed, SETTINGS);
  try {
    assert.deepEqual(b.inputs, a.inputs, 'same inputs');
    assert.deepEqual(b.outputs, a.outputs, 'same outputs');
    const inputs = seededInputs(a.inputs, rows, 7n);
    const x = a.run(inputs, []).outputs[0]!;
    const y = b.run(inputs, []).outputs[0]!;
    const largest = Math.max(...Array.from(numericValues(x)!, Math.abs));
    const ax = argmaxRows(x);
    const ay = argmaxRows(y);
    return { maxAbs: difference(x, y).maxAbs, largest, agreement: ax.filter((c, i) => c === ay[i]).length / ax.length };
  } finally {
    a.dispose();
    b.dispose();
  }
}

test('int8: mlp computes in integers, 3.5x smaller, within 3% of the original and agreeing on the top class', () => {
  const model = read(bundled('mlp'));
  const report = quantizeInt8Dynamic(model);
  assert.deepEqual(report.layers.map((l) => [l.op, l.weight, l.compute]), [['Gemm', 'fc1.weight', 'integer'], ['Gemm', 'fc2.weight', 'integer'], ['Gemm', 'fc3.weight', 'integer']]);
  assert.deepEqual(report.skipped, []);
  const ops = model.graph!.node!.map((n) => n.opType);
  assert.ok(!ops.includes('Gemm') && ops.filter((o) => o === 'MatMulInteger').length === 3, `ops: ${ops.join(' ')}`);
  assert.deepEqual(model.graph!.initializer!.filter((t) => t.dataType === DataType.FLOAT && t.name!.endsWith('weight')), [], 'no float weight left');
  const file = write(model, 'mlp-int8');
  const ratio = fs.statSync(bundled('mlp')).size / fs.statSync(file).size;
  assert.ok(ratio >= 3.5, `mlp int8 is ${ratio.toFixed(2)}x smaller`);
  const { maxAbs, largest, agreement } = runBoth(bundled('mlp'), file, 256);
  assert.ok(maxAbs <= INT8_RELATIVE_TOLERANCE * largest, `largest difference ${maxAbs} against outputs up to ${largest}`);
  assert.ok(agreement >= 0.95, `top-1 agreement ${agreement}`);
});

test('int8: convnet stores int8 convolution weights (float compute) and an integer classifier, 3.5x smaller, within 3%', () => {
  const model = read(bundled('convnet'));
  const report = quantizeInt8Dynamic(model);
  assert.equal(report.layers.filter((l) => l.op === 'Conv' && l.compute === 'float').length, 7);
  assert.deepEqual(report.layers.filter((l) => l.op === 'Gemm').map((l) => l.compute), ['integer']);
  const file = write(model, 'convnet-int8');
  const ratio = fs.statSync(bundled('convnet')).size / fs.statSync(file).size;
  assert.ok(ratio >= 3.5, `convnet int8 is ${ratio.toFixed(2)}x smaller`);
  const { maxAbs, largest, agreement } = runBoth(bundled('convnet'), file, 16);
  assert.ok(maxAbs <= INT8_RELATIVE_TOLERANCE * largest, `largest difference ${maxAbs} against outputs up to ${largest}`);
  assert.equal(agreement, 1);
});

test('int8: a MatMul with a plain [K, N] weight is quantized per column; a shared weight and transA are left in float, with why', () => {
  const g = new GraphBuilder('int8_cases');
  const x = g.input('x', DataType.FLOAT, ['batch', 8]);
  const w = g.initializer(floatTensor('w', [8, 4], seededFloats(32, 3)));
  const shared = g.initializer(floatTensor('shared', [4, 4], seededFloats(16, 4)));
  const h = g.node('MatMul', [x, w]);
  const h2 = g.node('MatMul', [h, shared]);
  const h3 = g.node('MatMul', [h2, shared]);
  const t = g.initializer(floatTensor('t', [4, 4], seededFloats(16, 5)));
  g.node('Gemm', [h3, t], { transA: attr.int(1) }, 'y'); // [4, batch] x ... only valid for batch 4
  g.output('y', DataType.FLOAT, [4, 4]);
  const model = g.build();
  const original = path.join(work.dir, 'cases.onnx');
  saveModel(original, model);
  const report = quantizeInt8Dynamic(model);
  assert.deepEqual(report.layers.map((l) => l.weight), ['w']);
  assert.deepEqual(report.skipped.map((s) => s.reason), [
    "its weight 'shared' is not a float constant read by this layer alone",
    "its weight 'shared' is not a float constant read by this layer alone",
    'Gemm with transA=1 is left in float',
  ]);
  const { maxAbs, largest } = runBoth(original, write(model, 'cases-int8'), 4);
  assert.ok(maxAbs <= INT8_RELATIVE_TOLERANCE * largest, `largest difference ${maxAbs} against outputs up to ${largest}`);
});

test('prune magnitude:0.3 zeroes the smallest 30% of each layer and changes nothing else', () => {
  const original = read(bundled('mlp'));
  const model = read(bundled('mlp'));
  const report = pruneMagnitude(model, 0.3);
  assert.deepEqual(report.layers.map((l) => [l.weight, l.size, l.zeros]), [
    ['fc1.weight', 16384, Math.round(0.3 * 16384)],
    ['fc2.weight', 65536, Math.round(0.3 * 65536)],
    ['fc3.weight', 2560, Math.round(0.3 * 2560)],
  ]);
  for (const [i, before] of original.graph!.initializer!.entries()) {
    const after = model.graph!.initializer![i]!;
    assert.equal(after.name, before.name);
    const a = floatValues(before)!;
    const b = floatValues(after)!;
    if (!before.name!.endsWith('weight')) {
      assert.deepEqual(b, a, `${before.name} unchanged`);
      continue;
    }
    let largestZeroed = 0;
    let smallestKept = Infinity;
    for (let j = 0; j < a.length; j++) {
      if (b[j] === 0) largestZeroed = Math.max(largestZeroed, Math.abs(a[j]!));
      else {
        assert.equal(b[j], a[j], `${before.name}[${j}] kept as it was`);
        smallestKept = Math.min(smallestKept, Math.abs(a[j]!));
      }
    }
    assert.ok(largestZeroed <= smallestKept, `${before.name}: zeroed up to ${largestZeroed}, kept from ${smallestKept}`);
  }
  // Structure untouched: same nodes, and the file still loads and runs.
  assert.deepEqual(model.graph!.node!.map((n) => n.opType), original.graph!.node!.map((n) => n.opType));
  const { agreement } = runBoth(bundled('mlp'), write(model, 'mlp-pruned'), 64);
  assert.ok(agreement > 0, 'the pruned model runs');
});

test('prune covers embedding tables (Gather), e.g. the sentiment valences; --prune is checked', () => {
  const model = read(bundled('sentiment'));
  const report = pruneMagnitude(model, 0.5);
  assert.equal(report.layers.length, 1);
  assert.equal(report.layers[0]!.op, 'Gather');
  assert.ok(report.layers[0]!.zeros >= Math.round(0.5 * report.layers[0]!.size));
  assert.equal(parsePruneSpec('magnitude:0.3'), 0.3);
  for (const bad of ['0.3', 'magnitude:1', 'magnitude:-0.1', 'random:0.3', 'magnitude:']) {
    assert.throws(() => parsePruneSpec(bad), /--prune must be magnitude:FRACTION with FRACTION in \[0, 1\)/, bad);
  }
});
