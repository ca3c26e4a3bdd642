/**
 * Authentication and per-model authorisation (--auth-config) on every front door, with real clients: grpc-js
 * (ModelService, v2, health, reflection), node:http on REST /v2 and the probes, and the official openai
 * client on /v1. API keys are checked by hash, JWTs by jose against a JWKS file; refusals are
 * UNAUTHENTICATED/401 or PERMISSION_DENIED/403 exactly, logged and counted without the token.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { createModelClient, unary, type ModelServiceClient } from '../src/client/model-client';
import { createInferenceClient, v2Call } from '../src/client/inference-client';
import { CALL_ACTIONS } from '../src/security/call-actions';
import { inferenceServiceDefinition, modelServiceDefinition } from '../src/api/grpc/protos';
import { copyBundledModel, expectStatus, f32Tensor, tempDir } from './common';
import { healthClient } from './health-client';
import { cli } from './cli-process';
import { AUDIENCE, ISSUER, makeIssuer, newKey, sha256, startLoggedServer, type Issuer, type LoggedServer } from './auth-fixtures';

const keys = { alice: newKey(), ops: newKey(), gen: newKey(), narrow: newKey() };
let repo: { dir: string; cleanup: () => void };
let issuer: Issuer;
let ts: LoggedServer;
let grpcAddress: string;
let httpBase: string;
const clients: grpc.Client[] = [];

const mlpRequest = { model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64).fill(0.5))] };

function client(token?: string): ModelServiceClient {
  const c = createModelClient(grpcAddress, {}, { security: token ? { token } : {} });
  clients.push(c);
  return c;
}

before(async () => {
  repo = tempDir('auth');
  const models = path.join(repo.dir, 'models');
  fs.mkdirSync(models);
  for (const m of ['mlp', 'sentiment', 'tiny-lm']) copyBundledModel(models, m);
  issuer = await makeIssuer(repo.dir);
  const policy = {
    api_keys: Object.entries(keys).map(([name, key]) => ({ name, sha256: sha256(key) })),
    jwt: { jwks_file: 'jwks.json', issuer: ISSUER, audience: AUDIENCE },
    open: ['health'],
    permissions: [
      { principals: ['key:alice', 'key:gen', 'jwt:svc-7'], models: ['*'], actions: ['metadata'] },
      { principals: ['key:narrow'], models: ['mlp'], actions: ['metadata'] },
      { principals: ['key:alice'], models: ['mlp'], actions: ['infer'] },
      { principals: ['claim:role=ml'], models: ['sentiment'], actions: ['infer'] },
      { principals: ['key:gen'], models: ['tiny-lm'], actions: ['generate'] },
      { principals: ['key:ops'], models: ['*'], actions: ['*'] },
    ],
  };
  fs.writeFileSync(path.join(repo.dir, 'policy.yaml'), JSON.stringify(policy)); // JSON is YAML
  ts = await startLoggedServer({ modelRepository: models, authConfig: path.join(repo.dir, 'policy.yaml'), modelControlMode: 'explicit', loadModels: ['*'] });
  grpcAddress = `127.0.0.1:${ts.server.port}`;
  httpBase = `http://127.0.0.1:${ts.server.httpPort}`;
});

after(async () => {
  for (const c of clients) c.close();
  await ts?.close();
  repo?.cleanup();
});

test('gRPC: no token, an unknown key, a malformed header -> UNAUTHENTICATED; a valid key -> served', async () => {
  await expectStatus(unary(client(), 'Predict', mlpRequest), grpc.status.UNAUTHENTICATED, /requires credentials.*Bearer/);
  await expectStatus(unary(client(newKey()), 'Predict', mlpRequest), grpc.status.UNAUTHENTICATED, /not a known API key/);
  const md = new grpc.Metadata();
  md.set('authorization', `Basic ${Buffer.from('a:b').toString('base64')}`);
  await expectStatus(unary(client(), 'Predict', mlpRequest, { metadata: md }), grpc.status.UNAUTHENTICATED, /must be 'Bearer/);
  const answer = await unary(client(keys.alice), 'Predict', mlpRequest);
  assert.equal(answer.outputs[0].name, 'logits');
});

test('gRPC: a valid key without the permission -> PERMISSION_DENIED naming principal, action and model', async () => {
  const alice = client(keys.alice);
  await expectStatus(unary(alice, 'Predict', { model: 'sentiment', input_text: 'good' }), grpc.status.PERMISSION_DENIED, /key:alice has no 'infer' permission on model "sentiment"/);
  // metadata on any model is granted to everyone; repository control only to ops.
  assert.equal((await unary(alice, 'GetModel', { model: 'sentiment' })).name, 'sentiment');
  const v2 = createInferenceClient(grpcAddress, false, {}, { token: keys.alice });
  clients.push(v2);
  await expectStatus(v2Call(v2, 'RepositoryModelUnload', { model_name: 'mlp' }), grpc.status.PERMISSION_DENIED, /has no 'control' permission on model "mlp"/);
  const infer = await v2Call(v2, 'ModelInfer', { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], contents: { fp32_contents: new Array(64).fill(0.5) } }] });
  assert.equal(infer.model_name, 'mlp');
  const anonymous = createInferenceClient(grpcAddress);
  clients.push(anonymous);
  await expectStatus(v2Call(anonymous, 'ModelInfer', { model_name: 'mlp', inputs: [] }), grpc.status.UNAUTHENTICATED);
});

test('JWT: a valid token authorises by claim; expired, forged, wrong issuer or audience -> UNAUTHENTICATED', async () => {
  const good = await issuer.token('svc-7', { role: 'ml' });
  const text = await unary(client(good), 'Predict', { model: 'sentiment', input_text: 'a wonderful film' });
  assert.ok(text.output_text);
  await expectStatus(unary(client(good), 'Predict', mlpRequest), grpc.status.PERMISSION_DENIED, /jwt:svc-7 has no 'infer' permission on model "mlp"/);
  await expectStatus(unary(client(await issuer.token('svc-7', { role: 'ml' }, { ttlSecs: -120 })), 'Predict', mlpRequest), grpc.status.UNAUTHENTICATED, /expired/);
  await expectStatus(unary(client(await issuer.forged('svc-7')), 'Predict', mlpRequest), grpc.status.UNAUTHENTICATED, /signature/);
  await expectStatus(unary(client(await issuer.token('svc-7', {}, { issuer: 'https://evil.example/' })), 'Predict', mlpRequest), grpc.status.UNAUTHENTICATED, /'iss' claim/);
  await expectStatus(unary(client(await issuer.token('svc-7', {}, { audience: 'other' })), 'Predict', mlpRequest), grpc.status.UNAUTHENTICATED, /'aud' claim/);
});

test('open groups: health answers without credentials, reflection does not', async () => {
  const health = healthClient(grpcAddress);
  clients.push(health);
  const status = await new Promise<{ status: string }>((resolve, reject) => health.Check({ service: '' }, (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res))));
  assert.equal(status.status, 'SERVING');
  const v2 = createInferenceClient(grpcAddress);
  clients.push(v2);
  assert.equal((await v2Call(v2, 'ServerLive', {})).live, true);
  await expectStatus(v2Call(v2, 'ServerMetadata', {}), grpc.status.UNAUTHENTICATED);
  const reflection = new grpc.Client(grpcAddress, grpc.credentials.createInsecure());
  clients.push(reflection);
  const refused = await new Promise<grpc.StatusObject>((resolve) => {
    const call = reflection.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (x: Buffer) => x, (x: Buffer) => x);
    call.on('data', () => {});
    call.on('status', resolve);
    call.on('error', () => {});
    call.end();
  });
  assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
});

async function get(pathname: string, token?: string, init: { method?: string; body?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const res = await fetch(`${httpBase}${pathname}`, {
    method: init.method ?? 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) },
    ...(init.body ? { body: init.body } : {}),
  });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

test('HTTP: probes open, /metrics and the APIs need a token; 401 vs 403 on REST v2', async () => {
  assert.equal((await get('/healthz')).status, 200);
  assert.equal((await get('/v2/health/live')).status, 200);
  const metrics = await get('/metrics');
  assert.equal(metrics.status, 401);
  assert.equal(metrics.headers['www-authenticate'], 'Bearer');
  assert.match(JSON.parse(metrics.body).error, /requires credentials/);
  assert.equal((await get('/metrics', keys.ops)).status, 200);
  // `open: [health]` leaves out the console group: its page and files need credentials too.
  for (const file of ['/', '/console/style.css']) {
    assert.equal((await get(file)).status, 401, `${file} without a token`);
    assert.equal((await get(file, keys.ops)).status, 200, `${file} with a key`);
  }
  const infer = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Array(64).fill(0.5) }] });
  assert.equal((await get('/v2/models/mlp/infer', undefined, { method: 'POST', body: infer })).status, 401);
  assert.equal((await get('/v2/models/mlp/infer', keys.alice, { method: 'POST', body: infer })).status, 200);
  const denied = await get('/v2/models/mlp/infer', await issuer.token('svc-7', { role: 'ml' }), { method: 'POST', body: infer });
  assert.equal(denied.status, 403);
  assert.match(JSON.parse(denied.body).error, /jwt:svc-7 has no 'infer' permission on model "mlp"/);
  assert.equal((await get('/v2/repository/models/mlp/unload', keys.alice, { method: 'POST', body: '{}' })).status, 403);
});

test('HTTP: an unauthenticated body is refused before it is read (no 100 Continue)', async () => {
  const { status, continued } = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = http.request(`${httpBase}/v2/models/mlp/infer`, { method: 'POST', headers: { expect: '100-continue', 'content-type': 'application/json', 'content-length': 1_000_000 } });
    req.on('continue', () => (continued = true));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, continued }));
    });
    req.on('error', reject);
    req.flushHeaders();
  });
  assert.equal(status, 401);
  assert.equal(continued, false);
});

test('OpenAI API with the official client: the API key is the bearer token; 401 and 403 in the API shape', async () => {
  const base = `${httpBase}/v1`;
  const gen = new OpenAI({ baseURL: base, apiKey: keys.gen, maxRetries: 0 });
  const done = await gen.completions.create({ model: 'tiny-lm', prompt: 'Hello', max_tokens: 4, temperature: 0 });
  assert.equal(done.choices.length, 1);
  const stranger = new OpenAI({ baseURL: base, apiKey: newKey(), maxRetries: 0 });
  await assert.rejects(stranger.completions.create({ model: 'tiny-lm', prompt: 'Hello', max_tokens: 4 }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
    assert.equal((err.error as { type: string }).type, 'authentication_error');
    return true;
  });
  const alice = new OpenAI({ baseURL: base, apiKey: keys.alice, maxRetries: 0 });
  await assert.rejects(alice.chat.completions.create({ model: 'tiny-lm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.PermissionDeniedError, String(err));
    assert.match(err.message, /key:alice has no 'generate' permission on model "tiny-lm"/);
    return true;
  });
});

test('a refused call is logged and counted like any other, and its token appears nowhere', async () => {
  const secret = newKey();
  await expectStatus(unary(client(secret), 'Predict', mlpRequest), grpc.status.UNAUTHENTICATED);
  await expectStatus(unary(client(keys.alice), 'Predict', { model: 'sentiment', input_text: 'x' }), grpc.status.PERMISSION_DENIED);
  const access = ts.lines.filter((l) => l.access === true);
  assert.ok(access.some((l) => l.method === 'Predict' && l.code === 'UNAUTHENTICATED'));
  assert.ok(access.some((l) => l.method === 'Predict' && l.code === 'PERMISSION_DENIED' && l.principal === 'key:alice'));
  assert.ok(access.some((l) => l.code === 'OK' && l.principal === 'key:alice'), 'served calls name their principal');
  const everything = JSON.stringify(ts.lines);
  for (const token of [secret, ...Object.values(keys)]) assert.ok(!everything.includes(token), 'no token in any log line');
  const metrics = (await get('/metrics', keys.ops)).body;
  assert.match(metrics, /tensorgate_requests_total\{[^}]*method="Predict"[^}]*code="UNAUTHENTICATED"[^}]*\} [1-9]/);
  assert.match(metrics, /tensorgate_requests_total\{[^}]*method="Predict"[^}]*code="PERMISSION_DENIED"[^}]*\} [1-9]/);
  assert.ok(!metrics.includes(secret));
});

test('every RPC of both services has an action in the permission table', () => {
  const methods = [...Object.values(modelServiceDefinition()), ...Object.values(inferenceServiceDefinition())].map((m) => m.path.slice(m.path.lastIndexOf('/') + 1));
  assert.ok(methods.length >= 15);
  for (const m of methods) assert.ok(CALL_ACTIONS[m], `${m} has no action in CALL_ACTIONS`);
});

test('the CLI: without a token it says how to send one; with --token it is served; keys new prints a key and the line holding its hash', async () => {
  const refused = await cli(['models', '--address', grpcAddress]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /requires credentials.*\(this CLI sends one with --token TOKEN or TENSORGATE_TOKEN\)/);
  const served = await cli(['models', '--address', grpcAddress, '--token', keys.alice]);
  assert.equal(served.code, 0, served.stderr);
  assert.match(served.stdout, /^mlp\s+v1 READY$/m);
  const made = await cli(['keys', 'new', 'carol']);
  assert.equal(made.code, 0, made.stderr);
  const lines = made.stdout.trim().split('\n');
  assert.match(lines[1]!, /^tg_[A-Za-z0-9_-]{43}$/);
  assert.equal(lines[3], `  - { name: carol, sha256: "${sha256(lines[1]!)}" }`);
});

test('listings show a caller only the models it may read: ListModels, the v2 index on gRPC and REST, statistics, /v1/models', async () => {
  const narrow = client(keys.narrow);
  assert.deepEqual((await unary(narrow, 'ListModels', {})).models.map((m: { name: string }) => m.name), ['mlp']);
  assert.deepEqual((await unary(client(keys.alice), 'ListModels', {})).models.map((m: { name: string }) => m.name).sort(), ['mlp', 'sentiment', 'tiny-lm']);
  await expectStatus(unary(narrow, 'GetModel', { model: 'sentiment' }), grpc.status.PERMISSION_DENIED, /key:narrow has no 'metadata' permission on model "sentiment"/);
  const v2 = createInferenceClient(grpcAddress, false, {}, { token: keys.narrow });
  clients.push(v2);
  assert.deepEqual([...new Set((await v2Call(v2, 'RepositoryIndex', {})).models.map((m: { name: string }) => m.name))], ['mlp']);
  assert.deepEqual((await v2Call(v2, 'ModelStatistics', {})).model_stats.map((m: { name: string }) => m.name), ['mlp']);
  const index = await get('/v2/repository/index', keys.narrow, { method: 'POST', body: '{}' });
  assert.deepEqual([...new Set((JSON.parse(index.body) as { name: string }[]).map((m) => m.name))], ['mlp']);
  const stats = JSON.parse((await get('/v2/models/stats', keys.narrow)).body) as { model_stats: { name: string }[] };
  assert.deepEqual(stats.model_stats.map((m) => m.name), ['mlp']);
  assert.deepEqual((JSON.parse((await get('/v1/models', keys.narrow)).body) as { data: unknown[] }).data, []);
  assert.deepEqual((JSON.parse((await get('/v1/models', keys.gen)).body) as { data: { id: string }[] }).data.map((m) => m.id), ['tiny-lm']);
});

test('hostile authorization values (random, JWT-shaped garbage, huge, non-ASCII) are UNAUTHENTICATED with a bounded message, and the server keeps serving', async () => {
  const fc = await import('fast-check');
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const token = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.tuple(fc.string(), fc.string(), fc.string()).map(([a, b, c]) => `${a}.${b}.${c}`),
    fc.tuple(fc.json(), fc.json(), fc.string()).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${b64(s)}`),
    fc.constantFrom(`${b64('{"alg":"none"}')}.${b64('{"sub":"ops"}')}.`, `${b64('{"alg":"HS256"}')}.${b64('{"sub":"ops"}')}.${b64('x')}`, 'x'.repeat(20_000)),
  );
  const raw = new grpc.Client(grpcAddress, grpc.credentials.createInsecure());
  clients.push(raw);
  const identity = (b: Buffer) => b;
  await fc.assert(
    fc.asyncProperty(token, fc.constantFrom('Bearer ', 'bearer ', 'Basic ', ''), async (t, scheme) => {
      const md = new grpc.Metadata();
      const value = `${scheme}${t}`.replace(/[^\x20-\x7e]/g, '?'); // header values are visible ASCII on the wire
      if (value.trim() !== '') md.set('authorization', value);
      const answer = await new Promise<{ code: grpc.status; details: string }>((resolve) =>
        raw.makeUnaryRequest('/tensorgate.v1.ModelService/ListModels', identity, identity, Buffer.alloc(0), md, { deadline: Date.now() + 20_000 }, (err) =>
          resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
        ),
      );
      assert.equal(answer.code, grpc.status.UNAUTHENTICATED, `${value.slice(0, 80)} -> ${grpc.status[answer.code]} ${answer.details}`);
      assert.ok(answer.details.length <= 1024);
      assert.ok(!answer.details.includes(t.slice(0, 40)) || t.length < 8, 'the token is not echoed');
    }),
    { numRuns: 300, seed: 14 },
  );
  assert.equal((await unary(client(keys.alice), 'Predict', mlpRequest)).outputs[0].name, 'logits');
});
