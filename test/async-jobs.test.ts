/**
 * Async jobs (?async=true) on the HTTP port, with real servers, real models and fetch: a submission answers 202
 * at once, the job's result is the synchronous answer byte for byte (v2 JSON infer, binary inputs, OpenAI
 * completions and chat), a bad request is refused before any job exists, DELETE cancels a queued job (its
 * work dropped from the queue), results expire after the TTL (the store's clock moved, not waited for), the
 * count and byte bounds hold, a drain cancels unfinished jobs, and with an access policy a job is visible only
 * to the principal that created it. Waits are the store's 'finished' event or a bounded poll of the status.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Job, JobStore } from '../src/jobs/job-store';
import { addModel, copyBundledModel, seededFloats, tempDir } from './common';
import { newKey, sha256, startLoggedServer, type LoggedServer } from './auth-fixtures';
import { SLOW_MODEL_CONFIG } from './fixtures/configs';
import { writeSlowModel } from './fixtures/onnx-fixtures';

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
const TTL_SECS = 600;

let repo: { dir: string; cleanup: () => void };
let main: LoggedServer;
let base: string;
const servers: LoggedServer[] = [];

before(async () => {
  repo = tempDir('async-jobs');
  const models = path.join(repo.dir, 'models');
  fs.mkdirSync(models);
  copyBundledModel(models, 'mlp');
  copyBundledModel(models, 'tiny-lm');
  addModel(models, 'slow', SLOW_MODEL_CONFIG, { 1: writeSlowModel });
  // Requests wait for a batch of 64 rows or an hour: a one-row request stays queued for the whole test.
  addModel(models, 'held', `${SLOW_MODEL_CONFIG}max_batch_size: 64\ndynamic_batching: { max_queue_delay_us: 3600000000 }\n`, { 1: writeSlowModel });
  main = await startLoggedServer({ modelRepository: models, modelControlMode: 'explicit', loadModels: ['*'], jobTtlSecs: TTL_SECS });
  servers.push(main);
  base = `http://127.0.0.1:${main.server.httpPort}`;
});

after(async () => {
  for (const s of servers) await s.close();
  repo?.cleanup();
});

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function call(at: string, pathname: string, init: { method?: string; body?: unknown; token?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const raw = init.body === undefined || typeof init.body === 'string' || Buffer.isBuffer(init.body) ? init.body : JSON.stringify(init.body);
  const res = await fetch(`${at}${pathname}`, {
    method: init.method ?? (raw === undefined ? 'GET' : 'POST'),
    headers: { ...(raw !== undefined ? { 'content-type': 'application/json' } : {}), ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...init.headers },
    ...(raw !== undefined ? { body: raw as string | Buffer } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: (res.headers.get('content-type') ?? '').startsWith('application/json') && text ? JSON.parse(text) : undefined };
}

/** Resolves once job `id` (visible to `owner`) has finished; at once if it already has. */
function finished(store: JobStore, id: string, owner?: string): Promise<void> {
  const job = store.get(id, owner);
  assert.ok(job, `job ${id} exists`);
  if (FINAL.has(job.status)) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (j: Job) => {
      if (j.id !== id) return;
      store.off('finished', on);
      resolve();
    };
    store.on('finished', on);
  });
}

/** Polls GET `location` until the job is final (a client's loop: no sleeps, a bounded number of turns). */
async function pollUntilFinal(at: string, location: string, token?: string): Promise<Reply> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await call(at, location, { token });
    if (r.status !== 200 || FINAL.has(r.json.status)) return r;
    assert.ok(Date.now() < deadline, `job still ${r.json.status} after 60 s`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const accessLines = (s: LoggedServer) => s.lines.filter((l) => l.access === true);
const slowRow = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0) }] };

test('an async v2 JSON infer answers 202 at once and its result is the synchronous answer byte for byte', async () => {
  const request = { id: 'job-mlp', parameters: { bypass_cache: true }, inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 64], data: Array.from(seededFloats(192, 11)) }] };
  const sync = await call(base, '/v2/models/mlp/infer', { body: request });
  assert.equal(sync.status, 200, sync.text);
  const submitted = await call(base, '/v2/models/mlp/infer?async=true', { body: request });
  assert.equal(submitted.status, 202, submitted.text);
  assert.deepEqual(Object.keys(submitted.json), ['job_id', 'status', 'model', 'location']);
  assert.match(submitted.json.status, /^(queued|running|succeeded)$/);
  assert.equal(submitted.json.model, 'mlp');
  assert.equal(submitted.json.location, `/v2/jobs/${submitted.json.job_id}`);
  assert.equal(submitted.headers.get('location'), submitted.json.location);

  const done = await pollUntilFinal(base, submitted.json.location);
  assert.equal(done.json.status, 'succeeded', done.text.slice(0, 300));
  assert.ok(done.text.endsWith(`,"result":${sync.text}}`), 'the result is the synchronous body, inserted unchanged');
  assert.equal(JSON.stringify(done.json.result), sync.text);
  assert.equal(done.json.version, '1');
  const created = Date.parse(done.json.created);
  const ended = Date.parse(done.json.finished);
  assert.ok(created <= ended);
  assert.equal(Date.parse(done.json.expires), ended + TTL_SECS * 1000);
  assert.equal(done.json.error, undefined);

  // The submission and the job's execution are each one record: logged and counted.
  const lines = accessLines(main).filter((l) => l.request_id === 'job-mlp');
  const execution = lines.find((l) => l.method === 'job POST /v2/models/{name}/infer');
  assert.ok(execution, JSON.stringify(lines));
  assert.equal(execution.code, 'OK');
  assert.equal(execution.model, 'mlp');
  assert.equal(execution.version, '1');
  assert.equal(execution.batch_requests, 1);
  assert.equal(lines.filter((l) => l.method === 'POST /v2/models/{name}/infer' && l.code === 'OK').length, 2, 'the synchronous call and the submission');
  // The v2 statistics count two inferences (the synchronous call and the job), not the submission.
  const stats = (await call(base, '/v2/models/mlp/stats')).json.model_stats[0];
  assert.equal(stats.inference_stats.success.count, 2, JSON.stringify(stats));
  const metrics = (await call(base, '/metrics')).text;
  assert.match(metrics, /^tensorgate_jobs_total\{model="mlp",status="succeeded"\} [1-9]/m);
  assert.match(metrics, /^tensorgate_jobs\{status="succeeded"\} [1-9]/m);
  assert.match(metrics, /^tensorgate_requests_total\{protocol="http",method="job POST \/v2\/models\/\{name\}\/infer",model="mlp",version="1",code="OK"\} [1-9]/m);
});

test('binary inputs work with async; the job is running once its inference leaves the queue', async () => {
  const rows = 8;
  const raw = Buffer.from(seededFloats(rows * 256, 5).buffer);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 256], parameters: { binary_data_size: raw.length } }] }));
  const init = { body: Buffer.concat([header, raw]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } };
  const sync = await call(base, '/v2/models/slow/infer', init);
  assert.equal(sync.status, 200, sync.text.slice(0, 200));
  const atRun = once(main.server.pool, 'run-start').then(() => main.server.jobs.store.counts());
  const submitted = await call(base, '/v2/models/slow/infer?async=true', init);
  assert.equal(submitted.status, 202, submitted.text);
  const counts = await atRun;
  assert.equal(counts.running, 1, JSON.stringify(counts));
  assert.equal(counts.queued, 0);
  await finished(main.server.jobs.store, submitted.json.job_id);
  const done = await call(base, submitted.json.location);
  assert.equal(done.json.status, 'succeeded');
  assert.equal(JSON.stringify(done.json.result), sync.text);
});

test('generation jobs: /v1/completions and /v1/chat/completions results equal the synchronous answers', async () => {
  for (const [route, body] of [
    ['/v1/completions', { model: 'tiny-lm', prompt: 'In the beginning God', max_tokens: 12, temperature: 0, seed: 7 }],
    ['/v1/chat/completions', { model: 'tiny-lm', messages: [{ role: 'user', content: 'Who made the light?' }], max_tokens: 10, temperature: 0.8, seed: 11 }],
  ] as const) {
    const headers = { 'x-request-id': `gen-${route.length}` };
    const sync = await call(base, route, { body, headers });
    assert.equal(sync.status, 200, sync.text);
    const submitted = await call(base, `${route}?async=true`, { body, headers });
    assert.equal(submitted.status, 202, submitted.text);
    assert.equal(submitted.headers.get('x-request-id'), headers['x-request-id']);
    assert.equal(submitted.json.model, 'tiny-lm');
    await finished(main.server.jobs.store, submitted.json.job_id);
    const done = await call(base, submitted.json.location);
    assert.equal(done.json.status, 'succeeded', done.text);
    assert.equal(done.json.version, '1');
    // Everything but `created` (the second each answer was made in) is the same: id, text, usage, seed.
    const { created: syncCreated, ...expected } = sync.json;
    const { created: jobCreated, ...got } = done.json.result;
    assert.deepEqual(got, expected);
    assert.equal(typeof jobCreated, typeof syncCreated);
    const execution = accessLines(main).find((l) => l.method === `job POST ${route}` && l.request_id === headers['x-request-id']);
    assert.ok(execution);
    assert.equal(execution.completion_tokens, expected.usage.completion_tokens);
  }
  // A job keeps the whole answer: streaming it is refused, in the API's error shape.
  const streamed = await call(base, '/v1/completions?async=true', { body: { model: 'tiny-lm', prompt: 'Hi', stream: true } });
  assert.equal(streamed.status, 400);
  assert.equal(streamed.json.error.param, 'stream');
  assert.match(streamed.json.error.message, /stream cannot be true with async=true/);
});

test('a bad request is refused at submission, before any job exists', async () => {
  const store = main.server.jobs.store;
  const held = store.size;
  let events = 0;
  const count = () => events++;
  store.on('finished', count);
  try {
    const input = (shape: number[], extra: object = {}) => ({ inputs: [{ name: 'input', datatype: 'FP32', shape, data: new Array(shape[0]! * shape[1]!).fill(0) }], ...extra });
    const cases: [string, unknown, number, RegExp][] = [
      ['/v2/models/mlp/infer?async=true', '{"inputs": [', 400, /JSON/],
      ['/v2/models/nope/infer?async=true', input([1, 64]), 404, /nope/],
      ['/v2/models/mlp/infer?async=true', input([2, 63]), 400, /input/],
      ['/v2/models/mlp/infer?async=true', input([1, 64], { parameters: { wat: 1 } }), 400, /'wat'.*not understood/],
      ['/v2/models/mlp/infer?async=true', input([1, 64], { parameters: { binary_data_output: true } }), 400, /binary outputs .* cannot be returned by an async job/],
      ['/v2/models/mlp/infer?async=yes', input([1, 64]), 400, /async is 'yes'; expected async=true/],
    ];
    for (const [route, body, status, pattern] of cases) {
      const r = await call(base, route, { body });
      assert.equal(r.status, status, `${route}: ${r.text}`);
      assert.match(r.json.error, pattern);
    }
    const generation: [unknown, number, string | null][] = [
      [{ model: 'nope', prompt: 'Hi' }, 404, null],
      [{ model: 'tiny-lm', prompt: 'Hi', temperature: 500 }, 400, 'temperature'],
      [{ model: 'tiny-lm' }, 400, 'prompt'],
    ];
    for (const [body, status, param] of generation) {
      const r = await call(base, '/v1/completions?async=true', { body });
      assert.equal(r.status, status, r.text);
      assert.equal(r.json.error.param, param, r.text);
    }
    assert.equal(store.size, held, 'no job was created');
    assert.equal(events, 0);
  } finally {
    store.off('finished', count);
  }
});

test('DELETE cancels a queued job: its work leaves the queue without running; DELETE again forgets it', async () => {
  const { server } = main;
  const submitted = await call(base, '/v2/models/held/infer?async=true', { body: slowRow });
  assert.equal(submitted.status, 202, submitted.text);
  assert.equal(server.scheduler.queueDepthOf('held@1'), 1);
  assert.equal((await call(base, submitted.json.location)).json.status, 'queued');

  const dropped = once(server.scheduler, 'dropped');
  const deleted = await call(base, submitted.json.location, { method: 'DELETE' });
  assert.equal(deleted.status, 200, deleted.text);
  assert.equal(deleted.json.status, 'cancelled');
  assert.equal(deleted.json.error.code, 'CANCELLED');
  await dropped;
  assert.equal(server.scheduler.queueDepthOf('held@1'), 0);
  const seen = await call(base, submitted.json.location);
  assert.equal(seen.json.status, 'cancelled');
  assert.match(seen.json.error.message, /cancelled by DELETE/);

  assert.equal((await call(base, submitted.json.location, { method: 'DELETE' })).status, 200);
  const gone = await call(base, submitted.json.location);
  assert.equal(gone.status, 404);
  assert.match(gone.json.error, /does not exist or has expired.*kept 600 s after it finishes/);
  const execution = accessLines(main).find((l) => l.method === 'job POST /v2/models/{name}/infer' && l.code === 'CANCELLED');
  assert.ok(execution, 'the cancelled job is logged with its outcome');
});

test('a finished job is forgotten after the TTL (the store clock moved forward, not waited for)', async () => {
  const store = main.server.jobs.store;
  const submitted = await call(base, '/v2/models/mlp/infer?async=true', { body: { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Array(64).fill(0.5) }] } });
  assert.equal(submitted.status, 202);
  await finished(store, submitted.json.job_id);
  const done = await call(base, submitted.json.location);
  assert.equal(done.json.status, 'succeeded');
  const ended = Date.parse(done.json.finished);
  const real = store.clock;
  try {
    store.clock = () => ended + TTL_SECS * 1000;
    assert.equal((await call(base, submitted.json.location)).status, 200, 'kept for the whole TTL');
    store.clock = () => ended + TTL_SECS * 1000 + 1;
    const expired = await call(base, submitted.json.location);
    assert.equal(expired.status, 404);
    assert.match(expired.json.error, /kept 600 s after it finishes \(--job-ttl-secs\)/);
    assert.equal(store.counts().succeeded, 0, 'every result of this server is past its TTL at that time');
  } finally {
    store.clock = real;
  }
});

test('bounds: results past the byte bound evict the oldest finished; a store full of unfinished jobs refuses with 429; a drain cancels unfinished jobs', async () => {
  // The size of one result: the synchronous answer of the same request.
  const sync = await call(base, '/v2/models/slow/infer', { body: slowRow });
  const resultBytes = Buffer.byteLength(sync.text);
  const bounded = await startLoggedServer({ modelRepository: path.join(repo.dir, 'models'), modelControlMode: 'explicit', loadModels: ['slow', 'held'], maxJobs: 3, maxJobResultBytes: Math.floor(resultBytes * 2.5) });
  servers.push(bounded);
  const at = `http://127.0.0.1:${bounded.server.httpPort}`;
  const store = bounded.server.jobs.store;

  // Bytes: three results of R bytes under a bound of 2.5 R: the oldest is evicted.
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await call(at, '/v2/models/slow/infer?async=true', { body: slowRow });
    assert.equal(r.status, 202, r.text);
    await finished(store, r.json.job_id);
    ids.push(r.json.job_id);
  }
  assert.equal((await call(at, `/v2/jobs/${ids[0]}`)).status, 404);
  for (const id of ids.slice(1)) assert.equal((await call(at, `/v2/jobs/${id}`)).json.status, 'succeeded');
  assert.equal(store.resultBytes, 2 * resultBytes);

  // Count: three queued jobs fill the store (evicting the finished ones); a fourth is 429.
  const queued: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await call(at, '/v2/models/held/infer?async=true', { body: slowRow });
    assert.equal(r.status, 202, r.text);
    queued.push(r.json.location);
  }
  for (const id of ids) assert.equal((await call(at, `/v2/jobs/${id}`)).status, 404);
  const full = await call(at, '/v2/models/held/infer?async=true', { body: slowRow });
  assert.equal(full.status, 429, full.text);
  assert.equal(full.headers.get('retry-after'), '1');
  assert.match(full.json.error, /3 unfinished async jobs, its limit \(--max-jobs 3\)/);
  // A cancelled job is finished: the next submission takes its place.
  assert.equal((await call(at, queued[0]!, { method: 'DELETE' })).json.status, 'cancelled');
  const next = await call(at, '/v2/models/held/infer?async=true', { body: slowRow });
  assert.equal(next.status, 202, next.text);
  assert.equal((await call(at, queued[0]!)).status, 404);

  // Drain: the unfinished jobs are cancelled (UNAVAILABLE) and no new one is accepted.
  const open = [...queued.slice(1), next.json.location].map((l: string) => l.split('/').pop()!);
  const allCancelled = Promise.all(open.map((id) => finished(store, id)));
  const closing = bounded.server.shutdown(5000);
  await allCancelled;
  for (const id of open) {
    const job = store.get(id, undefined)!;
    assert.equal(job.status, 'cancelled');
    assert.equal(job.error?.code, 'UNAVAILABLE');
    assert.match(job.error!.message, /shutting down; async jobs do not survive it/);
  }
  assert.throws(() => store.create('infer', undefined, 'held'), /shutting down/);
  assert.equal(bounded.server.scheduler.queueDepthOf('held@1'), 0, 'their queued work was dropped');
  await closing;
  assert.ok(bounded.lines.some((l) => l.msg === 'cancelled 3 unfinished async jobs'));
});

test('with an access policy a job is visible only to its creator: another principal gets the same 404 as an unknown id', async () => {
  const keys = { alice: newKey(), bob: newKey(), gen: newKey() };
  const policy = {
    api_keys: Object.entries(keys).map(([name, key]) => ({ name, sha256: sha256(key) })),
    permissions: [
      { principals: ['key:alice', 'key:bob'], models: ['mlp'], actions: ['infer'] },
      { principals: ['key:gen'], models: ['tiny-lm'], actions: ['generate'] },
    ],
  };
  fs.writeFileSync(path.join(repo.dir, 'policy.yaml'), JSON.stringify(policy));
  const guarded = await startLoggedServer({ modelRepository: path.join(repo.dir, 'models'), modelControlMode: 'explicit', loadModels: ['mlp', 'tiny-lm'], authConfig: path.join(repo.dir, 'policy.yaml') });
  servers.push(guarded);
  const at = `http://127.0.0.1:${guarded.server.httpPort}`;

  const request = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Array(64).fill(0.25) }] };
  const submitted = await call(at, '/v2/models/mlp/infer?async=true', { body: request, token: keys.alice });
  assert.equal(submitted.status, 202, submitted.text);
  const id: string = submitted.json.job_id;
  assert.equal((await pollUntilFinal(at, submitted.json.location, keys.alice)).json.status, 'succeeded');

  const other = await call(at, submitted.json.location, { token: keys.bob });
  const unknownId = '00000000-0000-4000-8000-000000000000';
  const unknown = await call(at, `/v2/jobs/${unknownId}`, { token: keys.bob });
  assert.equal(other.status, 404);
  assert.equal(other.json.error.replace(id, 'ID'), unknown.json.error.replace(unknownId, 'ID'), 'nothing tells an existing job from none');
  assert.equal((await call(at, submitted.json.location, { method: 'DELETE', token: keys.bob })).status, 404);
  assert.equal((await call(at, submitted.json.location, { token: keys.alice })).json.status, 'succeeded', "bob's DELETE did nothing");
  assert.equal((await call(at, submitted.json.location)).status, 401);

  // A generation job is polled with the generate permission its creator has.
  const generation = await call(at, '/v1/completions?async=true', { body: { model: 'tiny-lm', prompt: 'And God said', max_tokens: 4 }, token: keys.gen });
  assert.equal(generation.status, 202, generation.text);
  assert.equal((await pollUntilFinal(at, generation.json.location, keys.gen)).json.status, 'succeeded');
  assert.equal((await call(at, generation.json.location, { token: keys.alice })).status, 404);
  // Submission is authorised like the synchronous call: gen may not infer on mlp, and no job is made.
  const held = guarded.server.jobs.store.size;
  const refused = await call(at, '/v2/models/mlp/infer?async=true', { body: request, token: keys.gen });
  assert.equal(refused.status, 403, refused.text);
  assert.equal(guarded.server.jobs.store.size, held);

  const lines = accessLines(guarded);
  assert.ok(lines.some((l) => l.method === 'job POST /v2/models/{name}/infer' && l.principal === 'key:alice' && l.code === 'OK'));
  assert.ok(lines.some((l) => l.method === 'GET /v2/jobs/{id} (generate)' && l.principal === 'key:gen' && l.code === 'OK'));
  assert.ok(lines.some((l) => l.method === 'GET /v2/jobs/{id}' && l.principal === 'key:bob' && l.code === 'NOT_FOUND'));
});
