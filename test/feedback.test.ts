/**
 * Live accuracy from feedback, with real clients on a real server: a scripted sequence of sentiment predictions
 * (ModelService Predict, REST and gRPC v2 infer with ids) and feedbacks (gRPC Feedback, REST, buf curl through
 * reflection) gives exact accuracy and confusion counts in the Feedback answer, GET /v2/models/{m}/accuracy and
 * /metrics; the label distribution and confidence histogram count every classification row (mlp: class
 * indexes, softmax confidence); refusals (unknown id, another model's id, bad label, second feedback, a model
 * that is no classifier); and the prediction store's bounds (count, TTL with an injected clock) and the
 * sliding window, as units.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { createInferenceClient, v2Call, type InferenceClient } from '../src/client/inference-client';
import { AccuracyWindow } from '../src/feedback/accuracy-window';
import { MAX_ID_CHARS, PredictionStore, type RememberedPrediction } from '../src/feedback/prediction-store';
import { CONFIDENCE_BUCKETS } from '../src/telemetry/metrics';
import { addModel, copyBundledModel, expectStatus, f32Tensor, float32s, PACKAGE_ROOT, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { identityModelOf } from './fixtures/onnx-fixtures';
import { ok, parseJson } from './python-toolchain';

let ts: TestServer;
let v2: InferenceClient;
let repo: ReturnType<typeof tempDir>;
let base: string;
let vocab: Record<string, number>;

before(async () => {
  repo = tempDir('feedback');
  copyBundledModel(repo.dir, 'sentiment');
  copyBundledModel(repo.dir, 'mlp');
  addModel(repo.dir, 'plain', undefined, { 1: identityModelOf('fp32') });
  vocab = JSON.parse(fs.readFileSync(path.join(repo.dir, 'sentiment', 'vocab.json'), 'utf8'));
  ts = await startTestServer({ modelRepository: repo.dir });
  v2 = createInferenceClient(ts.address);
  base = `http://127.0.0.1:${ts.server.httpPort}/v2`;
});

after(async () => {
  v2?.close();
  await ts?.close();
  repo?.cleanup();
});

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function rpc(method: 'Feedback', request: object): Promise<any> {
  return new Promise((resolve, reject) => (ts.client[method] as Function).call(ts.client, request, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res))));
}

async function http(method: 'GET' | 'POST', route: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${route}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  return { status: res.status, json: await res.json() };
}

/** Every sample of `name` in the exposition whose labels include `labels`, as [labels, value]. */
async function samples(name: string, labels: Record<string, string>): Promise<[Record<string, string>, number][]> {
  const text = await (await fetch(`http://127.0.0.1:${ts.server.httpPort}/metrics`)).text();
  const found: [Record<string, string>, number][] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => set[k] === v)) found.push([set, Number(m[3])]);
  }
  return found;
}

async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const found = await samples(name, labels);
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.[1];
}

/** An INT64 token_ids row for the sentiment model, from its vocabulary. */
function tokenIds(words: string[]): number[] {
  return words.map((w) => vocab[w] ?? 1);
}

test('a scripted sequence of predictions and feedbacks gives exact accuracy and confusion counts in the answer, /accuracy and /metrics', async () => {
  const confidences: number[] = [];
  const predict = async (text: string, requestId?: string) => {
    const res = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: text, ...(requestId ? { options: { request_id: requestId } } : {}) });
    confidences.push(res.confidence);
    return res;
  };
  const anonymous = await predict('I love this');
  assert.ok(anonymous.request_id, 'the server makes up a request id and returns it');
  await expectStatus(rpc('Feedback', { model: 'sentiment', request_id: anonymous.request_id, label: 'positive' }), grpc.status.NOT_FOUND, /under the id their request named/);
  const p1 = await predict('I love this', 'p1');
  assert.equal(p1.output_text, 'positive');
  const p2 = await predict('this is terrible', 'p2');
  assert.equal(p2.output_text, 'negative');
  const p3 = await predict('a great day but a rude waiter', 'p3');
  assert.equal(p3.output_text, 'positive');
  assert.equal(p3.request_id, 'p3');
  // REST v2 infer with an id: the same prediction can be named by it.
  const rest4 = await http('POST', '/models/sentiment/infer', { id: 'rest-4', inputs: [{ name: 'token_ids', datatype: 'INT64', shape: [1, 1], data: tokenIds(['awful']) }] });
  assert.equal(rest4.status, 200, JSON.stringify(rest4.json));
  confidences.push(Math.max(...rest4.json.outputs[0].data));
  // gRPC v2 ModelInfer with an id.
  const grpc5 = await v2Call(v2, 'ModelInfer', {
    model_name: 'sentiment',
    id: 'grpc-v2-5',
    inputs: [{ name: 'token_ids', datatype: 'INT64', shape: [1, 2], contents: { int64_contents: tokenIds(['i', 'hate']) } }],
  });
  const scores5 = float32s(Buffer.from(grpc5.raw_output_contents[0]));
  assert.ok(scores5[0]! > scores5[1]!, 'hate is negative');
  confidences.push(scores5[0]!);
  const p6 = await predict('awesome', 'p6');
  assert.ok(Math.abs(p6.confidence - sigmoid(4)) < 1e-6);

  // Feedback through each door: gRPC, REST, buf curl through reflection.
  const f1 = await rpc('Feedback', { model: 'sentiment', request_id: p1.request_id, label: 'positive' });
  assert.deepEqual([f1.label, f1.predicted_label, f1.correct, f1.version], ['positive', 'positive', true, '1']);
  const f2 = await http('POST', '/models/sentiment/feedback', { id: p2.request_id, label: 'negative' });
  assert.equal(f2.status, 200, JSON.stringify(f2.json));
  assert.equal(f2.json.correct, true);
  const f3 = await http('POST', '/models/sentiment/feedback', { id: 'p3', label: 'negative' });
  assert.deepEqual([f3.json.label, f3.json.predicted_label, f3.json.correct], ['negative', 'positive', false]);
  const f4 = await rpc('Feedback', { model: 'sentiment', request_id: 'rest-4', label: 'positive' });
  assert.deepEqual([f4.label, f4.predicted_label, f4.correct], ['positive', 'negative', false]);
  const buf = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'buf');
  const env = { ...process.env, BUF_CACHE_DIR: path.join(repo.dir, '.buf-cache') };
  const f6 = parseJson(
    await ok(buf, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://${ts.address}/tensorgate.v1.ModelService/Feedback`, '-d', JSON.stringify({ model: 'sentiment', request_id: p6.request_id, label: 'positive' })], env),
    'buf curl Feedback',
  );
  // buf prints proto3 JSON: lowerCamelCase names, uint64 as strings.
  assert.equal(f6.correct, true);
  assert.equal(f6.accuracy.accuracy, 0.6);
  assert.equal(f6.accuracy.totalFeedback, '5');

  const expected = {
    model: 'sentiment',
    version: '1',
    window_size: 1000,
    window_feedback: 5,
    window_correct: 3,
    accuracy: 0.6,
    total_feedback: 5,
    total_correct: 3,
    labels: ['negative', 'positive'],
    confusion: [
      { label: 'negative', predicted: 'negative', count: 1 },
      { label: 'negative', predicted: 'positive', count: 1 },
      { label: 'positive', predicted: 'negative', count: 1 },
      { label: 'positive', predicted: 'positive', count: 2 },
    ],
  };
  const accuracy = await http('GET', '/models/sentiment/accuracy');
  assert.equal(accuracy.status, 200);
  assert.deepEqual(accuracy.json, { model: 'sentiment', versions: [expected] });
  assert.deepEqual((await http('GET', '/models/sentiment/versions/1/accuracy')).json, { model: 'sentiment', versions: [expected] });
  // The gRPC answer before the last feedback: four of them, two right.
  const { _accuracy, ...f4Report } = f4.accuracy;
  assert.deepEqual(f4Report, {
    ...expected,
    window_feedback: 4,
    window_correct: 2,
    accuracy: 0.5,
    total_feedback: 4,
    total_correct: 2,
    confusion: expected.confusion.map((c) => (c.label === 'positive' && c.predicted === 'positive' ? { ...c, count: 1 } : c)),
  });

  const sentiment = { model: 'sentiment', version: '1' };
  const cells: [string, string, number][] = [
    ['negative', 'negative', 1],
    ['negative', 'positive', 1],
    ['positive', 'negative', 1],
    ['positive', 'positive', 2],
  ];
  for (const [label, predicted, count] of cells) assert.equal(await metric('tensorgate_feedback_total', { ...sentiment, label, predicted }), count, `${label} x ${predicted}`);
  assert.equal(await metric('tensorgate_feedback_accuracy', sentiment), 0.6);
  assert.equal(await metric('tensorgate_feedback_window', sentiment), 5);
  // Every classification prediction, remembered or not: four positive (the anonymous one, p1, p3, p6), three
  // negative (p2, rest-4, grpc-v2-5).
  assert.equal(await metric('tensorgate_predicted_labels_total', { ...sentiment, label: 'positive' }), 4);
  assert.equal(await metric('tensorgate_predicted_labels_total', { ...sentiment, label: 'negative' }), 3);
  assert.equal(await metric('tensorgate_prediction_confidence_count', sentiment), 7);
  for (const le of CONFIDENCE_BUCKETS) {
    assert.equal(await metric('tensorgate_prediction_confidence_bucket', { ...sentiment, le: String(le) }), confidences.filter((c) => c <= le).length, `bucket le=${le}`);
  }
  assert.ok(Math.abs((await metric('tensorgate_prediction_confidence_sum', sentiment))! - confidences.reduce((a, b) => a + b, 0)) < 1e-5);
});

test('feedback refusals: unknown id, another model, a label the model lacks, a second feedback, a model that is no classifier', async () => {
  const p = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: 'nice', options: { request_id: 'refusals-1' } });
  assert.equal(p.request_id, 'refusals-1');
  const refusals: [string, unknown, number, number, RegExp][] = [
    ['sentiment', { id: 'never-seen', label: 'positive' }, 404, grpc.status.NOT_FOUND, /no prediction with request id 'never-seen' in the last 1 h \(kept: at most 100000 single-row classification predictions, under the id their request named/],
    ['mlp', { id: 'refusals-1', label: '3' }, 400, grpc.status.INVALID_ARGUMENT, /request id 'refusals-1' is a prediction of model 'sentiment', not of model 'mlp'/],
    ['sentiment', { id: 'refusals-1', label: 'neutral' }, 400, grpc.status.INVALID_ARGUMENT, /label 'neutral' is not one of model 'sentiment' version 1's labels: negative, positive/],
    ['sentiment', { id: '', label: 'positive' }, 400, grpc.status.INVALID_ARGUMENT, /the request id is empty/],
    ['plain', { id: 'refusals-1', label: 'positive' }, 400, grpc.status.FAILED_PRECONDITION, /model 'plain' is not a classifier.*text_pipeline.kind: text_classification.*FP32 \[batch, classes\]/],
    ['nope', { id: 'refusals-1', label: 'positive' }, 404, grpc.status.NOT_FOUND, /model 'nope' not found/],
  ];
  for (const [model, body, status, code, pattern] of refusals) {
    const r = await http('POST', `/models/${model}/feedback`, body);
    assert.equal(r.status, status, `${model} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    assert.deepEqual(Object.keys(r.json), ['error']);
    assert.match(r.json.error, pattern);
    const b = body as { id: string; label: string };
    await expectStatus(rpc('Feedback', { model, request_id: b.id, label: b.label }), code, pattern);
  }
  const r = await http('POST', '/models/sentiment/feedback', { id: 'refusals-1', label: 'positive', extra: 1 });
  assert.equal(r.status, 400);
  assert.match(r.json.error, /unknown field 'extra'/);

  // One feedback per prediction: the first counts, a second is refused and changes nothing.
  const first = await rpc('Feedback', { model: 'sentiment', request_id: 'refusals-1', label: 'positive' });
  assert.equal(first.correct, true);
  const again = await http('POST', '/models/sentiment/feedback', { id: 'refusals-1', label: 'negative' });
  assert.equal(again.status, 409);
  assert.match(again.json.error, /request id 'refusals-1' already has feedback \(label 'positive'\); a prediction takes one feedback, the first/);
  await expectStatus(rpc('Feedback', { model: 'sentiment', request_id: 'refusals-1', label: 'positive' }), grpc.status.ALREADY_EXISTS);
  const after = (await http('GET', '/models/sentiment/accuracy')).json.versions[0];
  assert.equal(after.total_feedback, first.accuracy.total_feedback);

  const noAccuracy = await http('GET', '/models/plain/accuracy');
  assert.equal(noAccuracy.status, 400);
  assert.match(noAccuracy.json.error, /model 'plain' is not a classifier/);
  assert.equal((await http('GET', '/models/sentiment/versions/9/accuracy')).status, 404);
  const post = await fetch(`${base}/models/sentiment/accuracy`, { method: 'POST' });
  assert.deepEqual([post.status, post.headers.get('allow')], [405, 'GET']);
  const get = await fetch(`${base}/models/sentiment/feedback`);
  assert.deepEqual([get.status, get.headers.get('allow')], [405, 'POST']);
});

test('a tensor classifier (mlp): class indexes as labels, softmax confidence, every row counted, single rows remembered', async () => {
  const rows = 3;
  const values = seededFloats(rows * 64, 11);
  const batch = await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [rows, 64], values)], options: { request_id: 'mlp-batch' } });
  const logits = float32s(batch.outputs[0].data);
  const expected = Array.from({ length: rows }, (_, r) => {
    const row = Array.from(logits.subarray(r * 10, r * 10 + 10));
    const max = Math.max(...row);
    return { label: String(row.indexOf(max)), confidence: 1 / row.reduce((s, v) => s + Math.exp(v - max), 0) };
  });
  const mlp = { model: 'mlp', version: '1' };
  for (const label of new Set(expected.map((e) => e.label))) {
    assert.equal(await metric('tensorgate_predicted_labels_total', { ...mlp, label }), expected.filter((e) => e.label === label).length, `label ${label}`);
  }
  assert.equal(await metric('tensorgate_prediction_confidence_count', mlp), rows);
  assert.ok(Math.abs((await metric('tensorgate_prediction_confidence_sum', mlp))! - expected.reduce((s, e) => s + e.confidence, 0)) < 1e-6);

  // A batch has one id and feedback one label: batches are not remembered.
  await expectStatus(rpc('Feedback', { model: 'mlp', request_id: 'mlp-batch', label: '0' }), grpc.status.NOT_FOUND, /no prediction with request id 'mlp-batch'/);
  await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], values.subarray(0, 64))], options: { request_id: 'mlp-1' } });
  await expectStatus(rpc('Feedback', { model: 'mlp', request_id: 'mlp-1', label: '10' }), grpc.status.INVALID_ARGUMENT, /labels: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9$/);
  const answer = await rpc('Feedback', { model: 'mlp', request_id: 'mlp-1', label: expected[0]!.label });
  assert.deepEqual([answer.predicted_label, answer.correct, answer.accuracy.accuracy], [expected[0]!.label, true, 1]);
  assert.equal(answer.accuracy.labels.length, 10);
});

test('accuracy is per load: a reload starts the counts over, and feedback for a prediction of the earlier load is refused', async () => {
  const own = tempDir('feedback-reload');
  copyBundledModel(own.dir, 'sentiment');
  const server = await startTestServer({ modelRepository: own.dir, modelControlMode: 'explicit', loadModels: ['*'] });
  try {
    const url = `http://127.0.0.1:${server.server.httpPort}/v2`;
    const post = (route: string, body: unknown) => fetch(`${url}${route}`, { method: 'POST', body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, json: (await r.json()) as any }));
    await unary(server.client, 'Predict', { model: 'sentiment', input_text: 'good', options: { request_id: 'counted' } });
    await unary(server.client, 'Predict', { model: 'sentiment', input_text: 'bad', options: { request_id: 'before-reload' } });
    assert.equal((await post('/models/sentiment/feedback', { id: 'counted', label: 'positive' })).json.accuracy.total_feedback, 1);
    const reload = await post('/repository/models/sentiment/load', {});
    assert.equal(reload.status, 200, JSON.stringify(reload.json));
    const fresh = (await fetch(`${url}/models/sentiment/accuracy`).then((r) => r.json())) as any;
    assert.deepEqual([fresh.versions[0].total_feedback, fresh.versions[0].accuracy, fresh.versions[0].confusion], [0, null, []]);
    const refused = await post('/models/sentiment/feedback', { id: 'before-reload', label: 'negative' });
    assert.equal(refused.status, 400);
    assert.match(refused.json.error, /'before-reload' was predicted by model 'sentiment' version 1 as loaded before it was reloaded or unloaded/);
  } finally {
    await server.close();
    own.cleanup();
  }
});

// ------------------------------------------------------------------------------------------------ units

const prediction = (): RememberedPrediction => ({
  classifier: { model: 'm', version: '1', key: 'm@1', output: 'y', labels: ['a', 'b'], text: false, labelCounters: [], confidenceHistogram: undefined },
  predicted: 0,
  confidence: 0.9,
  feedback: -1,
});

test('the prediction store keeps at most its bound, the most recent ones', () => {
  const store = new PredictionStore({ maxEntries: 100 });
  for (let i = 0; i < 1000; i++) store.remember(`id-${i}`, prediction());
  assert.equal(store.size, 100);
  for (let i = 0; i < 900; i++) assert.equal(store.get(`id-${i}`), undefined, `id-${i} was evicted`);
  for (let i = 900; i < 1000; i++) assert.ok(store.get(`id-${i}`), `id-${i} is kept`);
  // Ids over the length bound are not remembered, and the refusal says why.
  const long = 'x'.repeat(MAX_ID_CHARS + 1);
  store.remember(long, prediction());
  assert.equal(store.get(long), undefined);
  assert.match(store.missing(long, "'xxx...'"), new RegExp(`longer than ${MAX_ID_CHARS} characters`));
});

test('the prediction store forgets a prediction once it is older than its TTL (injected clock)', () => {
  let now = 1_000_000;
  const store = new PredictionStore({ maxEntries: 10, ttlMs: 60_000, clock: { now: () => now } });
  store.remember('early', prediction());
  now += 30_000;
  store.remember('late', prediction());
  assert.ok(store.get('early'));
  now += 30_001;
  assert.equal(store.get('early'), undefined, 'expired after 60 s');
  assert.ok(store.get('late'), 'the later one is 30 s old');
  now += 30_000;
  assert.equal(store.get('late'), undefined);
  assert.equal(store.missing('late', "'late'"), "no prediction with request id 'late' in the last 1 min (kept: at most 10 single-row classification predictions, under the id their request named: ModelService options.request_id, the v2 id)");
});

test('the accuracy window slides over the last feedbacks; confusion counts keep everything since load', () => {
  const w = new AccuracyWindow(['a', 'b', 'c'], 3);
  assert.equal(w.accuracy, null);
  w.add(0, 0); // right
  w.add(1, 2); // wrong
  assert.equal(w.accuracy, 0.5);
  w.add(2, 2); // right
  w.add(1, 1); // right; the first (right) leaves the window
  assert.equal(w.feedback, 3);
  assert.equal(w.accuracy, 2 / 3);
  w.add(0, 1); // wrong; the wrong one leaves: right, right, wrong
  assert.equal(w.accuracy, 2 / 3);
  const r = w.report('m', '1');
  assert.deepEqual([r.window_size, r.window_feedback, r.window_correct, r.total_feedback, r.total_correct], [3, 3, 2, 5, 3]);
  assert.deepEqual(r.confusion, [
    { label: 'a', predicted: 'a', count: 1 },
    { label: 'a', predicted: 'b', count: 1 },
    { label: 'b', predicted: 'b', count: 1 },
    { label: 'b', predicted: 'c', count: 1 },
    { label: 'c', predicted: 'c', count: 1 },
  ]);
});
