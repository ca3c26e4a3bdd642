/**
 * A real Prometheus (Debian's /usr/bin/prometheus) scrapes the HTTP front door on loopback every second;
 * the counts it stores match the traffic sent, and every Grafana dashboard expression evaluates in it.
 * Prometheus is given nothing but the one 127.0.0.1 target: no remote write, no alerting, no discovery.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { f32Tensor, PACKAGE_ROOT, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';

const PROMETHEUS = '/usr/bin/prometheus';

let ts: TestServer;
let work: ReturnType<typeof tempDir>;
let prometheus: ChildProcess | undefined;
let promUrl: string;
let promLog = '';
let exited: string | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Retries `probe` until it returns a value (not undefined) or `timeoutMs` passes; fails with `what`. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (exited !== undefined) assert.fail(`prometheus exited (${exited}) while waiting for ${what}:\n${promLog.slice(-4000)}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what} ${last}\n${promLog.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface QueryResult { status: string; error?: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } }

async function query(expr: string): Promise<QueryResult> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await res.json()) as QueryResult;
}

before(async () => {
  assert.ok(fs.existsSync(PROMETHEUS), `${PROMETHEUS} is missing: run \`apt-get update && apt-get install -y prometheus\``);
  ts = await startTestServer();
  const target = `127.0.0.1:${ts.server.httpPort}`;
  work = tempDir('prometheus');
  const config = path.join(work.dir, 'prometheus.yml');
  fs.writeFileSync(
    config,
    [
      'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: tensorgate',
      '    metrics_path: /metrics',
      '    scrape_interval: 1s',
      `    static_configs: [{ targets: ['${target}'] }]`,
      '',
    ].join('\n'),
  );
  const listen = `127.0.0.1:${await freePort()}`;
  promUrl = `http://${listen}`;
  prometheus = spawn(PROMETHEUS, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${path.join(work.dir, 'data')}`,
    `--web.listen-address=${listen}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [prometheus.stdout!, prometheus.stderr!]) stream.on('data', (d: Buffer) => (promLog = (promLog + d.toString()).slice(-20000)));
  prometheus.once('exit', (code, signal) => (exited = `code ${code}, signal ${signal}`));
  prometheus.once('error', (err) => (exited = err.message));
  await until('Prometheus /-/ready', 30_000, async () => ((await fetch(`${promUrl}/-/ready`)).status === 200 ? true : undefined));
});

after(async () => {
  if (prometheus && exited === undefined) {
    const gone = new Promise<void>((resolve) => prometheus!.once('exit', () => resolve()));
    prometheus.kill('SIGTERM');
    const timer = setTimeout(() => prometheus!.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
  await ts?.close();
  work?.cleanup();
});

test('Prometheus scrapes the front door and stores the request count that was sent', async () => {
  const sent = 4;
  for (let i = 0; i < sent; i++) {
    await unary(ts.client, 'Predict', { model: 'mlp', inputs: [f32Tensor('input', [1, 64], seededFloats(64, 10 + (i % 2)))] });
  }
  const total = await until(`sum(tensorgate_requests_total{model="mlp"}) = ${sent}`, 30_000, async () => {
    const r = await query('sum(tensorgate_requests_total{model="mlp"})');
    const v = r.data?.result[0]?.value[1];
    return v === String(sent) ? Number(v) : undefined;
  });
  assert.equal(total, sent);
  // The same scrape has the rest of the picture: two distinct inputs ran, the repeats were cache hits.
  const one = async (expr: string) => Number((await query(expr)).data.result[0]?.value[1]);
  assert.equal(await one('tensorgate_rows_total{model="mlp",version="1"}'), 2);
  assert.equal(await one('tensorgate_cache_hits_total'), 2);
  assert.equal(await one('tensorgate_model_state{model="mlp",version="1",state="READY"}'), 1);
  assert.equal(await one('up{job="tensorgate"}'), 1);
});

test('every Grafana dashboard expression evaluates in Prometheus', async () => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'deploy/grafana/tensorgate-dashboard.json'), 'utf8'));
  const exprs: string[] = JSON.stringify(dashboard.panels).match(/"expr":"(?:[^"\\]|\\.)*"/g)!.map((m) => JSON.parse(m.slice(7)));
  assert.ok(exprs.length >= 20);
  const problems: string[] = [];
  for (const e of exprs) {
    const r = await query(e.replaceAll('$__rate_interval', '1m').replace(/\$(instance|model)\b/g, '.*'));
    if (r.status !== 'success') problems.push(`${e}: ${r.error}`);
  }
  assert.deepEqual(problems, []);
  // The request-rate panel has data for what was sent (rate() needs a second scrape of the series).
  await until('a request rate for mlp', 15_000, async () => {
    const rate = await query('sum by (model, code) (rate(tensorgate_requests_total{model=~".*"}[1m]))');
    return rate.data.result.some((s) => s.metric.model === 'mlp' && s.metric.code === 'OK') ? true : undefined;
  });
});
