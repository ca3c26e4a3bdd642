/**
 * ServerMetrics + HttpFrontDoor against a real server: known gRPC traffic, a real scrape over HTTP, exact
 * values from the exposition, promtool's lint, the HTTP routes, and the Grafana dashboard / Prometheus
 * config in deploy/ checked against the metrics that are actually registered.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { HttpFrontDoor } from '../src/api/http/http-server';
import { ServerMetrics, splitKey } from '../src/telemetry/metrics';
import { once } from 'node:events';
import { BUNDLED_MODELS_DIR, f32Tensor, PACKAGE_ROOT, seededFloats, startTestServer, tempDir, unary, withTestServer, type TestServer } from './common';

let ts: TestServer;
let metrics: ServerMetrics;
let base: string;

before(async () => {
  ts = await startTestServer();
  metrics = ts.server.metrics;
  base = `http://127.0.0.1:${ts.server.httpPort}`;
});
after(async () => {
  await ts?.close();
});

/**
 * Tests that assert exact counts run on a server of their own (`own`), so no test depends on which tests
 * ran before it; the shared server `ts` serves the read-only checks.
 */
async function own<T>(body: (server: TestServer, scrapeIt: () => Promise<{ text: string; samples: Sample[] }>) => Promise<T>): Promise<T> {
  return withTestServer({}, (server) => body(server, () => scrapeFrom(`http://127.0.0.1:${server.server.httpPort}`)));
}
const mlp = (seed: number) => ({ model: 'mlp', inputs: [f32Tensor('input', [1, 64], seededFloats(64, seed))] });

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The text exposition format, enough of it for prom-client's output (no timestamps, no exemplars). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const raw = m[3]!;
    samples.push({ name: m[1]!, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return samples;
}

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  return scrapeFrom(base);
}

async function scrapeFrom(origin: string): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${origin}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return { text, samples: parseExposition(text) };
}

/** The value of the one sample of `name` whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `expected one ${name}${JSON.stringify(labels)}, found ${found.length}: ${JSON.stringify(found)}`);
  return found[0]!.value;
}

function promtool(args: string[], input?: string) {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8' });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail('promtool is missing: run `apt-get update && apt-get install -y prometheus` (Debian package prometheus provides /usr/bin/promtool)');
  }
  return r;
}

/** Three distinct mlp requests, then two repeats of the first (cache hits). */
async function knownTraffic(server: TestServer): Promise<void> {
  for (const seed of [1, 2, 3]) assert.equal((await unary(server.client, 'Predict', mlp(seed))).cached, false);
  for (let i = 0; i < 2; i++) assert.equal((await unary(server.client, 'Predict', mlp(1))).cached, true);
}

test('known traffic gives exact request, batch, row, cache, queue, model and breaker values', () => own(async (server, scrapeIt) => {
  await knownTraffic(server);
  const { samples } = await scrapeIt();
  const v1 = { model: 'mlp', version: '1' };
  assert.equal(value(samples, 'tensorgate_requests_total', { protocol: 'grpc', method: 'Predict', ...v1, code: 'OK' }), 5);
  assert.equal(value(samples, 'tensorgate_request_duration_seconds_count', { protocol: 'grpc', method: 'Predict', model: 'mlp', code: 'OK' }), 5);
  assert.equal(value(samples, 'tensorgate_request_rows_count', { protocol: 'grpc', model: 'mlp' }), 5);
  // Sequential requests: three executions of one row each; the two hits never reached the scheduler.
  assert.equal(value(samples, 'tensorgate_batch_size_rows_count', v1), 3);
  assert.equal(value(samples, 'tensorgate_batch_size_rows_sum', v1), 3);
  assert.equal(value(samples, 'tensorgate_batch_size_rows_bucket', { ...v1, le: '1' }), 3);
  assert.equal(value(samples, 'tensorgate_batch_requests_count', v1), 3);
  assert.equal(value(samples, 'tensorgate_batch_compute_seconds_count', v1), 3);
  assert.equal(value(samples, 'tensorgate_rows_total', v1), 3);
  assert.equal(samples.some((s) => s.name === 'tensorgate_batch_failures_total'), false);
  assert.equal(value(samples, 'tensorgate_cache_hits_total'), 2);
  assert.equal(value(samples, 'tensorgate_cache_misses_total'), 3);
  assert.equal(value(samples, 'tensorgate_cache_coalesced_total'), 0);
  assert.equal(value(samples, 'tensorgate_cache_entries'), 3);
  assert.ok(value(samples, 'tensorgate_cache_bytes') > 3 * 40, 'three 10-float results are held');
  assert.equal(value(samples, 'tensorgate_inflight_requests', { protocol: 'grpc' }), 0);
  const bundled = fs.readdirSync(BUNDLED_MODELS_DIR).filter((n) => !n.startsWith('.')).sort();
  assert.deepEqual(bundled, ['convnet', 'mlp', 'sentiment', 'tiny-lm']);
  for (const model of bundled) {
    const labels = { model, version: '1' };
    assert.equal(value(samples, 'tensorgate_queue_depth', labels), 0);
    assert.equal(value(samples, 'tensorgate_model_state', { ...labels, state: 'READY' }), 1);
    for (const state of ['UNAVAILABLE', 'LOADING', 'UNLOADING']) assert.equal(value(samples, 'tensorgate_model_state', { ...labels, state }), 0);
  }
  assert.equal(value(samples, 'tensorgate_breaker_state', { ...v1, state: 'closed' }), 1);
  assert.equal(value(samples, 'tensorgate_breaker_state', { ...v1, state: 'open' }), 0);
  assert.equal(value(samples, 'tensorgate_breaker_state', { ...v1, state: 'half_open' }), 0);
  assert.equal(value(samples, 'tensorgate_worker_restarts_total'), 0);
  // Process metrics from prom-client's defaults, under the tensorgate_ prefix.
  assert.ok(value(samples, 'tensorgate_process_resident_memory_bytes') > 0);
  assert.ok(samples.some((s) => s.name === 'tensorgate_nodejs_eventloop_lag_p99_seconds'));
}));

test('requests for unknown models are counted under model="" so clients cannot mint label values', () => own(async (server, scrapeIt) => {
  await assert.rejects(unary(server.client, 'Predict', { model: 'no-such-model', inputs: [] }), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
  const { samples } = await scrapeIt();
  assert.equal(value(samples, 'tensorgate_requests_total', { model: '', version: '', code: 'NOT_FOUND' }), 1);
  assert.equal(samples.some((s) => s.labels.model === 'no-such-model'), false);
  assert.deepEqual(splitKey('team@mlp@12'), { model: 'team@mlp', version: '12' });
}));

test('the scrape passes promtool check metrics', async () => {
  const { text } = await scrape();
  const r = promtool(['check', 'metrics'], text);
  assert.equal(r.status, 0, `promtool check metrics failed:\n${r.stdout}${r.stderr}`);
});

test('cache counters stay monotonic across a reload; evictions are counted by reason', () => own(async (server, scrapeIt) => {
  await knownTraffic(server);
  await server.server.repository.loadModel('mlp'); // unload + load: the cache drops mlp's entries
  await unary(server.client, 'Predict', mlp(1)); // a miss again: the reloaded version recomputes
  const { samples } = await scrapeIt();
  assert.equal(value(samples, 'tensorgate_cache_evictions_total', { reason: 'invalidate' }), 3);
  assert.equal(value(samples, 'tensorgate_cache_hits_total'), 2);
  assert.equal(value(samples, 'tensorgate_cache_misses_total'), 4);
  assert.equal(value(samples, 'tensorgate_cache_entries'), 1);
  assert.equal(value(samples, 'tensorgate_model_state', { model: 'mlp', version: '1', state: 'READY' }), 1);
}));

test('worker restarts are read from the pool at scrape time', () => own(async (server, scrapeIt) => {
  assert.equal(value((await scrapeIt()).samples, 'tensorgate_worker_restarts_total'), 0);
  await server.server.pool.exitOnNextRunForTest('mlp@1');
  const replaced = once(server.server.pool, 'worker-restarted');
  await assert.rejects(unary(server.client, 'Predict', mlp(9)), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
  await replaced;
  assert.equal(value((await scrapeIt()).samples, 'tensorgate_worker_restarts_total'), 1);
  assert.equal(value((await scrapeIt()).samples, 'tensorgate_worker_restarts_total'), 1, 'a second scrape adds nothing');
}));

test('HTTP routes: metrics content type, liveness, readiness, 404 and 405', async () => {
  const m = await fetch(`${base}/metrics`);
  assert.equal(m.headers.get('content-type'), metrics.contentType);
  assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
  await m.arrayBuffer();
  assert.equal((await fetch(`${base}/metrics`, { method: 'HEAD' })).status, 200);
  const live = await fetch(`${base}/healthz`);
  assert.deepEqual([live.status, await live.text()], [200, 'ok\n']);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  ts.server.setHealth('NOT_SERVING');
  try {
    const notReady = await fetch(`${base}/readyz`);
    assert.deepEqual([notReady.status, await notReady.text()], [503, 'not ready: draining: the server is shutting down\n']);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'liveness does not follow readiness');
  } finally {
    ts.server.setHealth('SERVING');
  }
  const missing = await fetch(`${base}/v2/models`);
  assert.equal(missing.status, 404);
  assert.match(((await missing.json()) as { error: string }).error, /no route for \/v2\/models/);
  const wrong = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'GET, HEAD');
  assert.match(((await wrong.json()) as { error: string }).error, /method POST is not allowed on \/metrics/);
});

test('close() ends idle keep-alive connections and calls still in progress instead of waiting for them', async () => {
  const other = new HttpFrontDoor({ host: '127.0.0.1', port: 0, metrics, health: () => 'SERVING' });
  // A route that never answers (the table is how /v2 will mount too): its connection is busy, not idle,
  // so Node's own close() (which since v19 drops only idle ones) would wait for it forever.
  let entered!: () => void;
  const handlerEntered = new Promise<void>((resolve) => (entered = resolve));
  other.addRoute('GET', '/hang/*', () => entered());
  const port = await other.listen();
  const agent = new http.Agent({ keepAlive: true });
  // A full exchange first: afterwards the agent keeps the socket open, idle, for reuse.
  const idle = await new Promise<import('node:net').Socket>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent }, (res) => {
      res.resume();
      res.once('end', () => setImmediate(() => resolve(req.socket!)));
    });
    req.once('error', reject);
  });
  assert.equal(idle.destroyed, false);
  const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
  const hanging = new Promise<string>((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/hang/forever' }, () => resolve('answered')).once('error', (e) => resolve(e.message));
  });
  await handlerEntered;
  let timer: NodeJS.Timeout | undefined;
  const tooSlow = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('close() waited for open connections')), 3000)));
  try {
    await Promise.race([Promise.all([idleClosed, other.close()]), tooSlow]);
    assert.equal(await hanging, 'socket hang up');
  } finally {
    clearTimeout(timer);
    agent.destroy();
  }
});

test('deploy/: the Grafana dashboard uses only registered metrics and valid PromQL; prometheus.yml is valid', () => {
  const file = path.join(PACKAGE_ROOT, 'deploy/grafana/tensorgate-dashboard.json');
  const dashboard = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(dashboard.schemaVersion >= 36);
  assert.ok(dashboard.templating.list.some((v: { name: string; type: string }) => v.name === 'DS_PROMETHEUS' && v.type === 'datasource'));
  const exprs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) (k === 'expr' && typeof v === 'string' ? exprs.push(v) : walk(v));
    }
  };
  walk(dashboard.panels);
  assert.ok(exprs.length >= 20, `only ${exprs.length} expressions`);
  // Digits too: tensorgate_nodejs_eventloop_lag_p99_seconds.
  const names = new Set(exprs.flatMap((e) => [...e.matchAll(/tensorgate_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
  const unknown = [...names].filter((n) => metrics.registry.getSingleMetric(n) === undefined);
  assert.deepEqual(unknown, [], 'dashboard metrics that ServerMetrics does not define');
  for (const needed of ['tensorgate_requests_total', 'tensorgate_request_duration_seconds', 'tensorgate_queue_depth', 'tensorgate_batch_size_rows', 'tensorgate_cache_hits_total', 'tensorgate_breaker_state', 'tensorgate_worker_restarts_total', 'tensorgate_generate_time_to_first_token_seconds', 'tensorgate_generate_tokens_total']) {
    assert.ok(names.has(needed), `the dashboard has no panel on ${needed}`);
  }
  // promtool parses every expression (Grafana's variables replaced by what they expand to).
  const tmp = tempDir('dashboard-rules');
  try {
    const rules = exprs.map((e, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(e.replaceAll('$__rate_interval', '1m').replace(/\$(instance|model)\b/g, '.*'))}`);
    const rulesFile = path.join(tmp.dir, 'rules.yml');
    fs.writeFileSync(rulesFile, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    const r = promtool(['check', 'rules', rulesFile]);
    assert.equal(r.status, 0, `promtool check rules failed:\n${r.stdout}${r.stderr}`);
  } finally {
    tmp.cleanup();
  }
  const cfg = promtool(['check', 'config', '--syntax-only', path.join(PACKAGE_ROOT, 'deploy/prometheus/prometheus.yml')]);
  assert.equal(cfg.status, 0, `promtool check config failed:\n${cfg.stdout}${cfg.stderr}`);
});
