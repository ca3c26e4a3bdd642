/**
 * Rate limits and per-caller limits of the access policy: token buckets per principal and per model (unit,
 * with a controlled clock), enforced on gRPC and REST with a retry hint, recovering once the hinted wait has
 * passed, never harming another caller; Generate's per-principal prompt and max_tokens limits; concurrent
 * streams per connection; and the startup errors of a policy that does not load.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { RateLimiter } from '../src/security/rate-limiter';
import { principal } from '../src/security/principal';
import { createModelClient, type ModelServiceClient } from '../src/client/model-client';
import { serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';
import { copyBundledModel, expectStatus, f32Tensor, tempDir, unary } from './common';
import { newKey, sha256, startLoggedServer, type LoggedServer } from './auth-fixtures';

test('token buckets: burst, refill, a bucket per principal, a model bucket shared, no token spent on a refusal', () => {
  let now = 0;
  const limiter = new RateLimiter(
    [
      { principals: ['*'], requests_per_second: 2, burst: 2 },
      { models: ['mlp'], requests_per_second: 1, burst: 3 },
    ],
    () => now,
  );
  const [a, b, c] = ['a', 'b', 'c'].map((n) => principal('key', n)) as [ReturnType<typeof principal>, ReturnType<typeof principal>, ReturnType<typeof principal>];
  assert.equal(limiter.take(a, 'other'), 0);
  assert.equal(limiter.take(a, 'other'), 0);
  assert.equal(limiter.take(a, 'other'), 500, 'a is empty: one token comes back in 1/2 s');
  assert.equal(limiter.take(b, 'other'), 0, 'b has its own bucket');
  now = 500;
  assert.equal(limiter.take(a, 'other'), 0, 'refilled');
  // b's bucket is full again (2); mlp's bucket (3, shared by every caller) starts now.
  assert.equal(limiter.take(b, 'mlp'), 0);
  assert.equal(limiter.take(b, 'mlp'), 0);
  assert.equal(limiter.take(b, 'mlp'), 500, "b's own bucket is empty; mlp's keeps its last token");
  assert.equal(limiter.take(c, 'mlp'), 0, "c takes mlp's last token");
  assert.equal(limiter.take(c, 'mlp'), 1000, "mlp's bucket is empty for everyone: 1 token a second");
  // That refusal spent none of c's own tokens: c has exactly one left.
  assert.equal(limiter.take(c, 'other'), 0);
  assert.equal(limiter.take(c, 'other'), 500);
});

const keys = { limited: newKey(), other: newKey(), small: newKey() };
let repo: { dir: string; cleanup: () => void };
let ts: LoggedServer;
const clients: grpc.Client[] = [];
const mlpRequest = { model: 'mlp', inputs: [f32Tensor('input', [1, 64], new Float32Array(64).fill(0.25))] };

function client(token: string): ModelServiceClient {
  const c = createModelClient(`127.0.0.1:${ts.server.port}`, {}, { security: { token } });
  clients.push(c);
  return c;
}

before(async () => {
  repo = tempDir('limits');
  const models = path.join(repo.dir, 'models');
  fs.mkdirSync(models);
  for (const m of ['mlp', 'tiny-lm']) copyBundledModel(models, m);
  const policy = {
    api_keys: Object.entries(keys).map(([name, key]) => ({ name, sha256: sha256(key) })),
    // Half a token a second and a burst of 2: the third quick call is refused whatever the machine's speed.
    rate_limits: [{ principals: ['key:limited'], requests_per_second: 0.5, burst: 2 }],
    generation_limits: [{ principals: ['key:small'], max_prompt_bytes: 20, max_tokens: 4 }],
  };
  fs.writeFileSync(path.join(repo.dir, 'policy.yaml'), JSON.stringify(policy));
  ts = await startLoggedServer({ modelRepository: models, authConfig: path.join(repo.dir, 'policy.yaml'), maxConcurrentStreams: 3 });
});

after(async () => {
  for (const c of clients) c.close();
  await ts?.close();
  repo?.cleanup();
});

test('gRPC: over the limit -> RESOURCE_EXHAUSTED with retry-after and grpc-retry-pushback-ms; other callers unharmed; recovers after the hint', async () => {
  const limited = client(keys.limited);
  await unary(limited, 'Predict', mlpRequest);
  await unary(limited, 'Predict', mlpRequest);
  const refused = await expectStatus(unary(limited, 'Predict', mlpRequest), grpc.status.RESOURCE_EXHAUSTED, /rate limit reached for key:limited on model "mlp"; retry in \d+ ms/);
  const pushbackMs = Number(refused.metadata.get('grpc-retry-pushback-ms')[0]);
  assert.ok(pushbackMs > 0 && pushbackMs <= 2000, `pushback ${pushbackMs} ms`);
  assert.equal(refused.metadata.get('retry-after')[0], String(Math.ceil(pushbackMs / 1000)));
  // Another principal is not held back by it.
  for (let i = 0; i < 5; i++) await unary(client(keys.other), 'Predict', mlpRequest);
  // The hint is the time until a token is back: after it, the call is served.
  await delay(pushbackMs + 50);
  const answer = await unary(limited, 'Predict', mlpRequest);
  assert.equal(answer.model, 'mlp');
});

test('REST: over the limit -> 429 with Retry-After', async () => {
  const body = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Array(64).fill(0.25) }] });
  const post = () => fetch(`http://127.0.0.1:${ts.server.httpPort}/v2/models/mlp/infer`, { method: 'POST', headers: { authorization: `Bearer ${keys.limited}`, 'content-type': 'application/json' }, body });
  let last: Response | undefined;
  for (let i = 0; i < 3 && last?.status !== 429; i++) last = await post();
  assert.equal(last!.status, 429);
  assert.match(last!.headers.get('retry-after') ?? '', /^[12]$/);
  assert.match(((await last!.json()) as { error: string }).error, /rate limit reached for key:limited/);
});

test("Generate: a caller's max_tokens and prompt bytes limits", async () => {
  const small = client(keys.small);
  const run = (request: object, caller = small) =>
    new Promise<{ text: string; chunks: number }>((resolve, reject) => {
      const call = caller.Generate(request);
      let text = '';
      let chunks = 0;
      call.on('data', (m: { text: string }) => {
        text += m.text;
        chunks++;
      });
      call.on('error', reject);
      call.on('end', () => resolve({ text, chunks }));
    });
  await expectStatus(run({ model: 'tiny-lm', prompt: 'Hello', max_tokens: 8 }), grpc.status.RESOURCE_EXHAUSTED, /max_tokens 8 is more than the 4 this caller may ask for/);
  await expectStatus(run({ model: 'tiny-lm', prompt: 'a prompt of thirty-one bytes..', max_tokens: 2 }), grpc.status.RESOURCE_EXHAUSTED, /prompt is 30 bytes, more than the 20 this caller may send/);
  // Asking for nothing gets the model's default, held to the caller's 4.
  const usage = await new Promise<{ completion_tokens: number }>((resolve, reject) => {
    const call = small.Generate({ model: 'tiny-lm', prompt: 'Hello', temperature: 0, ignore_eos: true });
    let last: { usage?: { completion_tokens: number } } = {};
    call.on('data', (m: typeof last) => (last = m));
    call.on('error', reject);
    call.on('end', () => resolve(last.usage!));
  });
  assert.equal(Number(usage.completion_tokens), 4);
  // Another caller is not held to it.
  const other = await run({ model: 'tiny-lm', prompt: 'a prompt of thirty-one bytes..', max_tokens: 6, temperature: 0, ignore_eos: true }, client(keys.other));
  assert.ok(other.chunks > 0);
});

test('--max-concurrent-streams is what the server advertises to every HTTP/2 connection', async () => {
  const session = http2.connect(`http://127.0.0.1:${ts.server.port}`);
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve());
      session.once('error', reject);
    });
    assert.equal(session.remoteSettings.maxConcurrentStreams, 3);
  } finally {
    session.destroy();
  }
});

test('a policy that does not load stops the start with one message naming the file and the problem', async () => {
  const dir = tempDir('bad-policy');
  try {
    const cases: [string, RegExp][] = [
      ['api_keys: [{ name: a, sha256: nothex }]', /api_keys\.0\.sha256: 64 hex digits/],
      ['api_keys: [{ name: a, sha256: ' + 'a'.repeat(64) + ' }]\npermisions: []', /unknown key 'permisions'/],
      ['open: [health]', /no way to authenticate/],
      ['jwt: { jwks_file: missing.json }', /cannot read jwt jwks_file .*missing\.json: ENOENT/],
      ['api_keys: [{ name: a, sha256: ' + 'a'.repeat(64) + ' }]\npermissions: [{ principals: [a], models: [mlp], actions: [infer, fly] }]', /permissions\.0\.actions\.1/],
    ];
    for (const [i, [text, expected]] of cases.entries()) {
      const file = path.join(dir.dir, `policy-${i}.yaml`);
      fs.writeFileSync(file, text);
      const config = serverConfigSchema.parse({ port: 0, httpPort: 0, workers: 1, logLevel: 'silent', authConfig: file, modelRepository: path.join(dir.dir, 'none') });
      const server = new TensorgateServer(config, createLogger('silent'));
      try {
        await assert.rejects(server.start(), (err: Error) => {
          assert.equal(err.name, 'StartupError');
          assert.match(err.message, new RegExp(`--auth-config ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
          assert.match(err.message, expected);
          return true;
        });
      } finally {
        await server.shutdown(0);
      }
    }
  } finally {
    dir.cleanup();
  }
});
