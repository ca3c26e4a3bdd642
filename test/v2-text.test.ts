/**
 * Text over the v2 protocols, which have no text field: a one-element BYTES input named input_text to a model
 * with a text pipeline is its text, answered as label, confidence, labels and probabilities tensors, the same
 * figures ModelService Predict gives for input_text, on REST and on gRPC ModelInfer.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createInferenceClient, v2Call, type InferenceClient } from '../src/client/inference-client';
import { expectStatus, startTestServer, unary, type TestServer } from './common';

let ts: TestServer;
let v2: InferenceClient;
let base: string;
before(async () => {
  ts = await startTestServer({ loadModels: ['sentiment', 'mlp'], modelControlMode: 'explicit' });
  v2 = createInferenceClient(ts.address);
  base = `http://127.0.0.1:${ts.server.httpPort}`;
});
after(async () => {
  v2?.close();
  await ts?.close();
});

const TEXT = 'the food was great but the service was slow';

async function rest(model: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

test('REST: input_text is the text; the answer is the label, its confidence, and every label with its probability, as Predict gives them', async () => {
  const predicted = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: TEXT });
  const { status, json } = await rest('sentiment', { id: 't1', inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [1], data: [TEXT] }] });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.id, 't1');
  const byName = Object.fromEntries(json.outputs.map((o: any) => [o.name, o]));
  assert.deepEqual(Object.keys(byName), ['label', 'confidence', 'labels', 'probabilities']);
  assert.deepEqual(byName.label, { name: 'label', datatype: 'BYTES', shape: [1], data: [predicted.output_text] });
  assert.equal(byName.confidence.data[0], predicted.confidence);
  assert.deepEqual(byName.labels.data, predicted.labels.map((l: any) => l.label));
  assert.deepEqual(byName.probabilities.shape, [1, 2]);
  assert.deepEqual(byName.probabilities.data, predicted.labels.map((l: any) => l.score));
});

test('gRPC ModelInfer: the same text gives the same tensors', async () => {
  const predicted = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: TEXT });
  const res = await v2Call(v2, 'ModelInfer', {
    model_name: 'sentiment',
    inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(TEXT)] } }],
  });
  assert.deepEqual(res.outputs.map((o: any) => [o.name, o.datatype, o.shape.map(Number)]), [['label', 'BYTES', [1]], ['confidence', 'FP32', [1]], ['labels', 'BYTES', [2]], ['probabilities', 'FP32', [1, 2]]]);
  const label = res.raw_output_contents[0] as Buffer;
  assert.equal(label.subarray(4).toString(), predicted.output_text, 'a length-prefixed BYTES element');
  assert.equal(Buffer.from(res.raw_output_contents[1]).readFloatLE(0), predicted.confidence);
});

test('text is refused clearly where it cannot go', async () => {
  const mlp = await rest('mlp', { inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [1], data: ['hello'] }] });
  assert.equal(mlp.status, 400);
  assert.match(mlp.json.error, /unknown input 'input_text'; model 'mlp' version 1 expects inputs: input FP32/);
  const two = await rest('sentiment', { inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [2], data: ['a', 'b'] }] });
  assert.equal(two.status, 400, 'two texts are not one text: the tensor goes to the model as sent, and is refused');
  assert.match(two.json.error, /input_text/);
  const chosen = await rest('sentiment', { inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [1], data: [TEXT] }], outputs: [{ name: 'probabilities' }] });
  assert.equal(chosen.status, 400);
  assert.match(chosen.json.error, /outputs cannot be chosen with input_text/);
  await expectStatus(
    v2Call(v2, 'ModelInfer', { model_name: 'sentiment', inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('x'.repeat(2_000_000))] } }] }),
    grpc.status.RESOURCE_EXHAUSTED,
    /input_text is 2000000 bytes, more than the limit/,
  );
});
