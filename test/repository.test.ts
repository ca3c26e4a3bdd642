/**
 * The model repository: version policies, config validation, and broken models reported UNAVAILABLE
 * with their reason while every other model serves.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { addModel, copyBundledModel, expectStatus, f32Tensor, startTestServer, tempDir, unary, type TestServer } from './common';
import { writeFixedShapeModel } from './fixtures/onnx-fixtures';

let ts: TestServer;
let repo: ReturnType<typeof tempDir>;
const mlpFile = (file: string) => fs.copyFileSync(path.join(repo.dir, 'mlp/1/model.onnx'), file);

before(async () => {
  repo = tempDir('repository');
  copyBundledModel(repo.dir, 'mlp');
  // Three versions of the same graph, newest two served.
  addModel(repo.dir, 'latest2', 'version_policy: { latest: 2 }\n', { 1: mlpFile, 2: mlpFile, 3: mlpFile });
  addModel(repo.dir, 'specific', 'version_policy: { specific: [1, 5] }\n', { 1: mlpFile, 2: mlpFile });
  addModel(repo.dir, 'all', 'version_policy: { all: true }\n', { 1: mlpFile, 10: mlpFile, 2: mlpFile });
  addModel(repo.dir, 'corrupt', undefined, { 1: (f) => fs.writeFileSync(f, 'this is not an onnx model') });
  addModel(repo.dir, 'missing-file', undefined, { 1: () => undefined });
  addModel(repo.dir, 'bad-key', 'version_policy: { latest: 1 }\nsesion: { intra_op_threads: 1 }\n', { 1: mlpFile });
  addModel(repo.dir, 'bad-yaml', 'inputs: [ { name: x\n', { 1: mlpFile });
  addModel(repo.dir, 'cuda', 'session: { execution_providers: [cuda, cpu] }\n', { 1: mlpFile });
  addModel(repo.dir, 'mismatch', 'inputs: [{ name: x, dtype: INT32, shape: [2, 3] }]\n', { 1: writeFixedShapeModel });
  addModel(repo.dir, 'no-versions', 'description: empty\n', {});
  ts = await startTestServer({ modelRepository: repo.dir });
});
after(async () => {
  await ts.close();
  repo.cleanup();
});

const getModel = (name: string) => unary(ts.client, 'GetModel', { model: name });
const predictMlpLike = (model: string, version = '') =>
  unary(ts.client, 'Predict', { model, version, inputs: [f32Tensor('input', [1, 64], new Float32Array(64))] });

test('latest: 2 serves the two newest versions, newest by default', async () => {
  const info = await getModel('latest2');
  assert.deepEqual(info.versions.map((v: { version: string }) => v.version), ['3', '2']);
  assert.equal(info.default_version, '3');
  assert.equal((await predictMlpLike('latest2')).version, '3');
  assert.equal((await predictMlpLike('latest2', '2')).version, '2');
  await expectStatus(predictMlpLike('latest2', '1'), grpc.status.NOT_FOUND, /version '1' of model 'latest2' not found; served versions: 3, 2/);
});

test('all: every version folder, ordered numerically', async () => {
  const info = await getModel('all');
  assert.deepEqual(info.versions.map((v: { version: string }) => v.version), ['10', '2', '1']);
  assert.equal((await predictMlpLike('all')).version, '10');
});

test('specific: listed versions; one missing on disk is reported, not dropped', async () => {
  const info = await getModel('specific');
  const states = Object.fromEntries(info.versions.map((v: { version: string; state: string }) => [v.version, v.state]));
  assert.deepEqual(states, { '5': 'UNAVAILABLE', '1': 'READY' });
  assert.match(info.versions[0].reason, /version folder '5' does not exist/);
  assert.equal(info.default_version, '1');
  await expectStatus(predictMlpLike('specific', '5'), grpc.status.UNAVAILABLE, /version 5 of model 'specific' is UNAVAILABLE/);
});

const broken: [string, RegExp][] = [
  ['corrupt', /ONNX Runtime cannot load '1\/model.onnx'/],
  ['missing-file', /model file '1\/model.onnx' is missing/],
  ['bad-key', /invalid config.yaml: \(top level\): unknown key 'sesion'/],
  ['bad-yaml', /config.yaml is not valid YAML/],
  ['cuda', /execution provider 'cuda' not available in this ONNX Runtime build \(available: .*cpu.*\)/],
  ['mismatch', /model does not match config.yaml: input 'x' is declared INT32 but the model says FP32/],
];

for (const [name, reason] of broken) {
  test(`broken model '${name}' is UNAVAILABLE with its reason; Predict says so`, async () => {
    const info = await getModel(name);
    assert.equal(info.default_version, '');
    assert.equal(info.versions[0].state, 'UNAVAILABLE');
    assert.match(info.versions[0].reason, reason);
    await expectStatus(unary(ts.client, 'Predict', { model: name, inputs: [f32Tensor('x', [2, 3], new Float32Array(6))] }), grpc.status.UNAVAILABLE, reason);
  });
}

test('a model folder without versions is listed with the reason', async () => {
  const info = await getModel('no-versions');
  assert.deepEqual(info.versions, []);
  assert.match(info.reason, /no version folders/);
});

test('the healthy models serve next to the broken ones; ready_only filters', async () => {
  assert.equal((await predictMlpLike('mlp')).version, '1');
  const all = await unary(ts.client, 'ListModels', {});
  assert.equal(all.models.length, 11);
  const ready = await unary(ts.client, 'ListModels', { ready_only: true });
  assert.deepEqual(ready.models.map((m: { name: string }) => m.name), ['all', 'latest2', 'mlp', 'specific']);
});

test('GetModel of an unknown model is NOT_FOUND listing the models', async () => {
  await expectStatus(getModel('nope'), grpc.status.NOT_FOUND, /model 'nope' not found; available models: all, bad-key/);
});
