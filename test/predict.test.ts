/**
 * Predict end to end on the bundled models: real server, real grpc-js client, answers checked against
 * ONNX Runtime run in-process on the same model file.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { BUNDLED_MODELS_DIR, f32Tensor, float32s, seededFloats, startTestServer, unary, type TestServer } from './common';

let ts: TestServer;
before(async () => {
  ts = await startTestServer();
});
after(async () => {
  await ts.close();
});

test('sentiment: input_text returns the label, its confidence and every label score', async () => {
  const res = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'I love this' });
  assert.equal(res.model, 'sentiment');
  assert.equal(res.version, '1');
  assert.equal(res.output_text, 'positive');
  assert.ok(res.confidence > 0.9, `confidence ${res.confidence}`);
  assert.deepEqual(res.labels.map((l: { label: string }) => l.label), ['negative', 'positive']);
  const sum = res.labels.reduce((a: number, l: { score: number }) => a + l.score, 0);
  assert.ok(Math.abs(sum - 1) < 1e-5, `label scores sum to ${sum}`);
  assert.equal(res.cached, false);
  assert.ok(res.request_id.length > 0, 'a request id is made up when none is sent');

  const negative = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'This is terrible, I hate it.' });
  assert.equal(negative.output_text, 'negative');
  assert.ok(negative.confidence > 0.9);
});

test('sentiment: the request id sent is echoed', async () => {
  const res = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'fine', options: { request_id: 'abc-123' } });
  assert.equal(res.request_id, 'abc-123');
});

test('mlp: tensor Predict matches in-process ONNX Runtime exactly', async () => {
  const rows = 5;
  const values = seededFloats(rows * 64, 7);
  const res = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [rows, 64], values)] });
  assert.equal(res.outputs.length, 1);
  const out = res.outputs[0];
  assert.equal(out.name, 'logits');
  assert.equal(out.dtype, 'FP32');
  assert.deepEqual(out.shape, [rows, 10]);

  const session = await ort.InferenceSession.create(path.join(BUNDLED_MODELS_DIR, 'mlp/1/model.onnx'), { intraOpNumThreads: 1 });
  const expected = await session.run({ input: new ort.Tensor('float32', values, [rows, 64]) });
  await session.release();
  // Byte-exact: the same kernels on the same bytes.
  assert.deepEqual(Buffer.from(out.data), Buffer.from((expected.logits!.data as Float32Array).buffer));
});

test('convnet: a batch of images gives one row of logits each', async () => {
  const res = await unary(ts.client, 'Predict', { model: 'convnet', inputs: [f32Tensor('image', [3, 3, 32, 32], seededFloats(3 * 3 * 32 * 32))] });
  assert.deepEqual(res.outputs[0].shape, [3, 10]);
  assert.ok(float32s(res.outputs[0].data).every(Number.isFinite));
});

test('explicit version and requested outputs are honoured', async () => {
  const res = await unary(ts.client, 'Predict', {
    model: 'mlp',
    version: '1',
    inputs: [f32Tensor('input', [1, 64], new Float32Array(64))],
    outputs: ['logits'],
  });
  assert.equal(res.version, '1');
  assert.deepEqual(res.outputs.map((o: { name: string }) => o.name), ['logits']);
});

test('ListModels and GetModel describe versions, states, tensors and config', async () => {
  const list = await unary(ts.client, 'ListModels', {});
  assert.deepEqual(list.models.map((m: { name: string }) => m.name), ['convnet', 'mlp', 'sentiment', 'tiny-lm']);
  const mlp = await unary(ts.client, 'GetModel', { model: 'mlp' });
  assert.equal(mlp.platform, 'onnxruntime');
  assert.equal(mlp.default_version, '1');
  assert.equal(mlp.versions[0].state, 'READY');
  assert.deepEqual(mlp.versions[0].inputs[0], { name: 'input', dtype: 'FP32', shape: [-1, 64], dim_names: ['batch', ''] });
  assert.deepEqual(mlp.versions[0].outputs[0].shape, [-1, 10]);
  assert.deepEqual(mlp.session.execution_providers, ['cpu']);
  assert.equal(JSON.parse(mlp.config_json).deterministic, true);
  assert.equal(mlp.text_pipeline, null);
  const sentiment = await unary(ts.client, 'GetModel', { model: 'sentiment' });
  assert.deepEqual(sentiment.text_pipeline, { kind: 'text_classification', labels: ['negative', 'positive'] });
});

test('Generate on a model that is not a generation model is INVALID_ARGUMENT, saying to call Predict', async () => {
  const call = (ts.client.Generate as Function).call(ts.client, { model: 'sentiment', prompt: 'hi' }) as import('@grpc/grpc-js').ClientReadableStream<unknown>;
  const err = await new Promise<import('@grpc/grpc-js').ServiceError>((resolve) => call.on('error', resolve));
  assert.equal(err.code, 3 /* INVALID_ARGUMENT */);
  assert.match(err.details, /model 'sentiment' is not a generation model .*call Predict/);
});
