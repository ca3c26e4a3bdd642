/**
 * `tensorgate optimize --graph-optimize`: ONNX Runtime's offline optimisation written as a new version, checked
 * against the original, never over an existing version; the new version serves what the original serves.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { optimizeModel } from '../src/optimize/graph-optimize';
import { BUNDLED_MODELS_DIR, copyBundledModel, f32Tensor, seededFloats, startTestServer, tempDir, unary } from './common';
import { cli } from './cli-process';

let repo: { dir: string; cleanup: () => void };
before(() => {
  repo = tempDir('optimize');
  for (const m of ['mlp', 'convnet']) copyBundledModel(repo.dir, m);
  // Both versions served, so they can be compared through the server.
  const config = path.join(repo.dir, 'mlp', 'config.yaml');
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace(/version_policy:\n  latest: 1\n/, 'version_policy: { all: true }\n'));
});
after(() => repo?.cleanup());

test('optimize writes a checked new version in place, whole, and never over one', async () => {
  const report = await optimizeModel({ models: repo.dir, model: 'convnet', to: 3, graphOptimize: 'extended' });
  assert.equal(report.from, 1);
  assert.ok(fs.statSync(path.join(repo.dir, 'convnet', '3', 'model.onnx')).size > 0);
  assert.ok(report.maxAbsError.logits! <= 1e-5, `largest difference ${report.maxAbsError.logits}`);
  assert.deepEqual(fs.readdirSync(path.join(repo.dir, 'convnet')).sort(), ['1', '3', 'config.yaml'], 'no staging folder left');
  await assert.rejects(optimizeModel({ models: repo.dir, model: 'convnet', to: 3, graphOptimize: 'all' }), /version 3 of model 'convnet' exists .*never overwrites/);
  await assert.rejects(optimizeModel({ models: repo.dir, model: 'convnet', to: 4, from: 2, graphOptimize: 'all' }), /has no version 2 \(it has 1, 3\)/);
  await assert.rejects(optimizeModel({ models: repo.dir, model: 'nope', to: 2, graphOptimize: 'all' }), /no model 'nope'/);
  await assert.rejects(optimizeModel({ models: repo.dir, model: '../mlp', to: 2, graphOptimize: 'all' }), /not a folder name/);
  await assert.rejects(optimizeModel({ models: repo.dir, model: 'mlp', to: 2, graphOptimize: 'most' as 'all' }), /--graph-optimize must be one of basic, extended, all/);
});

test('the CLI prints what changed, and the optimised version serves what the original serves', async () => {
  const run = await cli(['optimize', 'mlp', '--to', '2', '--graph-optimize', 'all', '--models', repo.dir]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^mlp: version 1 -> version 2 \(ONNX Runtime graph optimisation 'all'\)$/m);
  assert.match(run.stdout, /output logits: largest difference over 4 rows of seeded inputs/);
  const again = await cli(['optimize', 'mlp', '--to', '2', '--graph-optimize', 'all', '--models', repo.dir]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /never overwrites/);

  const ts = await startTestServer({ modelRepository: repo.dir });
  try {
    const input = [f32Tensor('input', [3, 64], seededFloats(192, 5))];
    const v1 = await unary(ts.client, 'Predict', { model: 'mlp', version: '1', inputs: input, options: { bypass_cache: true } });
    const v2 = await unary(ts.client, 'Predict', { model: 'mlp', version: '2', inputs: input, options: { bypass_cache: true } });
    const a = new Float32Array(new Uint8Array(v1.outputs[0].data).buffer);
    const b = new Float32Array(new Uint8Array(v2.outputs[0].data).buffer);
    assert.equal(a.length, 30);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5, `logit ${i}: ${a[i]} vs ${b[i]}`);
  } finally {
    await ts.close();
  }
  assert.ok(fs.existsSync(path.join(BUNDLED_MODELS_DIR, 'mlp', '1', 'model.onnx')) && !fs.existsSync(path.join(BUNDLED_MODELS_DIR, 'mlp', '2')), 'the bundled models are untouched');
});
