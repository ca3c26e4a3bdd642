/**
 * The soak: does memory stay flat and does the server stay responsive under long, mixed, cache-filling load?
 *
 *   npm run soak [-- --minutes 5 --concurrency 32 --warmup-minutes 1 --cache-max-bytes N]
 *
 * Starts the real server (`tensorgate serve`, the bundled models, its default settings: result cache on at
 * its default size) as a child process, and a load child (bench/soak-load.ts: mlp, convnet, sentiment token
 * tensors and input_text, every request with fresh random input, so nearly every answer is a new cache
 * entry). This process only samples, once a second: the server's RSS (/proc/<pid>/status, all its threads,
 * ORT included); every 5 s its Prometheus metrics (V8 heap, external memory, event-loop delay p99, GC pauses,
 * cache bytes); and continuously grpc.health.v1 Check latency on its own channel (one check every 100 ms).
 *
 * Targets: after the first minute (warm-up) RSS grows < 5% over the rest of the run, and health-check p99
 * stays < 50 ms at full load. Writes bench/results/soak-<date>-<time>.{md,json}.
 */
import * as grpc from '@grpc/grpc-js';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/paths';
import { entryPath } from './child';
import { percentile } from './load-generator';
import { machineFacts, SOAK_MIX, soakReport, type Sample, type SoakLoadCounts, type SoakResult } from './soak-report';
import { freePort } from './child';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    'warmup-minutes': { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '32' },
    'cache-max-bytes': { type: 'string' },
    out: { type: 'string', default: path.join(PACKAGE_ROOT, 'bench', 'results') },
  },
});
const minutes = Number(args.minutes);
const warmupMinutes = Number(args['warmup-minutes']);
const concurrency = Number(args.concurrency);
if (!(minutes > warmupMinutes) || !(warmupMinutes >= 0) || !(concurrency >= 1)) {
  throw new Error('soak: need --minutes > --warmup-minutes >= 0 and --concurrency >= 1');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
process.once('SIGINT', () => process.exit(130));


function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** The metrics this soak reads, from the server's Prometheus text (default metrics carry the tensorgate_ prefix). */
async function scrape(httpPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^tensorgate_(nodejs_heap_size_used_bytes|nodejs_heap_size_total_bytes|nodejs_external_memory_bytes|nodejs_eventloop_lag_p99_seconds|nodejs_eventloop_lag_max_seconds|cache_bytes|cache_max_bytes|cache_entries|nodejs_gc_duration_seconds_(?:count|sum|bucket)(?:\{[^}]*\})?) ([0-9.eE+-]+)$/.exec(line);
    if (!m) continue;
    // GC series summed over kinds: count, sum, and pauses of 100 ms or less (the le="0.1" bucket).
    const key = m[1]!.replace(/\{.*le="0\.1".*\}$/, '_le_0_1').replace(/\{.*\}$/, '');
    if (key === 'nodejs_gc_duration_seconds_bucket') continue;
    out[key] = (out[key] ?? 0) + Number(m[2]);
  }
  return out;
}

async function waitReady(httpPort: number, server: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (server.exitCode !== null) throw new Error(`server exited (code ${server.exitCode}) before it was ready`);
    const ok = await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await sleep(200);
  }
  throw new Error('server not ready within 120 s');
}

/** grpc.health.v1.Health/Check with an empty request (service ""), on a channel of its own. */
function healthChecker(address: string): { check: () => Promise<number>; close: () => void } {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const check = () =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now();
      client.makeUnaryRequest('/grpc.health.v1.Health/Check', () => Buffer.alloc(0), (b: Buffer) => b, {}, { deadline: Date.now() + 10_000 }, (err) =>
        err ? reject(err) : resolve(performance.now() - started),
      );
    });
  return { check, close: () => client.close() };
}

function loadStats(load: ChildProcess): Promise<SoakLoadCounts> {
  return new Promise((resolve) => {
    load.once('message', (m: { counts: SoakLoadCounts }) => resolve(m.counts));
    load.send({ type: 'stats' });
  });
}

async function main(): Promise<void> {
  const [port, httpPort] = [await freePort(), await freePort()];
  const address = `127.0.0.1:${port}`;
  const serverArgs = ['serve', '--port', String(port), '--http-port', String(httpPort), '--log-level', 'warn'];
  if (args['cache-max-bytes'] !== undefined) serverArgs.push('--cache-max-bytes', args['cache-max-bytes']);
  const server = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js'), ...serverArgs], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(server);
  await waitReady(httpPort, server);
  const pid = server.pid!;
  console.error(`soak: server pid ${pid} on ${address} (metrics :${httpPort}); ${minutes} min, warm-up ${warmupMinutes} min, c=${concurrency}`);

  const load = fork(entryPath('soak-load'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(load);
  const health = healthChecker(address);
  const idleRss = rssBytes(pid);
  const healthLatencies: { t: number; ms: number }[] = [];
  let healthErrors = 0;
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const endAt = minutes * 60;
  let running = true;
  const healthLoop = (async () => {
    while (running) {
      try {
        healthLatencies.push({ t: elapsed(), ms: await health.check() });
      } catch {
        healthErrors++;
      }
      await sleep(100);
    }
  })();
  load.send({ type: 'start', address, concurrency });

  const samples: Sample[] = [];
  let metrics: Record<string, number> = {};
  let lastLoad = performance.now();
  let requests: SoakLoadCounts | undefined;
  const errors: Record<string, number> = {};
  for (let tick = 1; elapsed() < endAt; tick++) {
    await sleep(Math.max(0, tick * 1000 - (performance.now() - t0)));
    const sample: Sample = { t: elapsed(), rss: rssBytes(pid) };
    if (tick % 5 === 0) {
      metrics = await scrape(httpPort).catch(() => metrics);
      const counts = await loadStats(load);
      const now = performance.now();
      const ok = Object.values(counts.ok).reduce((a, b) => a + b, 0);
      sample.reqPerS = ok / ((now - lastLoad) / 1000);
      lastLoad = now;
      for (const [k, v] of Object.entries(counts.errors)) errors[k] = (errors[k] ?? 0) + v;
      requests = accumulate(requests, counts);
      Object.assign(sample, {
        heapUsed: metrics.nodejs_heap_size_used_bytes,
        heapTotal: metrics.nodejs_heap_size_total_bytes,
        external: metrics.nodejs_external_memory_bytes,
        loopP99Ms: (metrics.nodejs_eventloop_lag_p99_seconds ?? NaN) * 1000,
        loopMaxMs: (metrics.nodejs_eventloop_lag_max_seconds ?? NaN) * 1000,
        cacheBytes: metrics.cache_bytes,
        cacheEntries: metrics.cache_entries,
        gcCount: metrics.nodejs_gc_duration_seconds_count,
        gcSeconds: metrics.nodejs_gc_duration_seconds_sum,
        gcOver100ms: metrics.nodejs_gc_duration_seconds_count - metrics.nodejs_gc_duration_seconds_bucket_le_0_1,
      });
      console.error(
        `soak: ${sample.t.toFixed(0)} s  rss ${mb(sample.rss)} MB  heap ${mb(sample.heapUsed)}/${mb(sample.heapTotal)} MB  cache ${mb(sample.cacheBytes)} MB ` +
          `(${sample.cacheEntries} entries)  ${sample.reqPerS.toFixed(0)} req/s  loop p99 ${sample.loopP99Ms?.toFixed(1)} ms`,
      );
    }
    samples.push(sample);
  }
  running = false;
  await healthLoop;
  health.close();
  load.send({ type: 'stop' });
  await new Promise((r) => load.once('exit', r));
  const finalMetrics = await scrape(httpPort).catch(() => metrics);
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));

  const warm = warmupMinutes * 60;
  const after = healthLatencies.filter((h) => h.t >= warm).map((h) => h.ms);
  const sorted = (xs: number[]) => Float64Array.from(xs).sort();
  const result: SoakResult = {
    ...machineFacts(),
    command: `npm run soak -- ${process.argv.slice(2).join(' ')}`.trim(),
    minutes,
    warmupMinutes,
    concurrency,
    mix: SOAK_MIX,
    serverArgs,
    idleRss,
    samples,
    requests: requests!,
    errors,
    health: {
      checks: healthLatencies.length,
      errors: healthErrors,
      p50Ms: percentile(sorted(after), 50),
      p99Ms: percentile(sorted(after), 99),
      maxMs: Math.max(...after),
      p99AllMs: percentile(sorted(healthLatencies.map((h) => h.ms)), 99),
    },
    final: finalMetrics,
  };
  const stamp = result.date.replace(/:\d\d\.\d+Z$/, '').replace('T', '-').replace(':', '');
  fs.mkdirSync(args.out!, { recursive: true });
  const { md, verdicts } = soakReport(result);
  fs.writeFileSync(path.join(args.out!, `soak-${stamp}.json`), `${JSON.stringify({ ...result, verdicts }, null, 2)}\n`);
  fs.writeFileSync(path.join(args.out!, `soak-${stamp}.md`), md);
  console.log(md);
  console.error(`soak: wrote ${path.join(args.out!, `soak-${stamp}.{md,json}`)}`);
}

function accumulate(a: SoakLoadCounts | undefined, b: SoakLoadCounts): SoakLoadCounts {
  if (!a) return structuredClone(b);
  for (const k of Object.keys(b.ok) as (keyof SoakLoadCounts['ok'])[]) {
    a.ok[k] += b.ok[k];
    a.latencyMsSum[k] += b.latencyMsSum[k];
  }
  return a;
}

const mb = (b: number | undefined) => (b === undefined || !Number.isFinite(b) ? '-' : (b / 1e6).toFixed(0));

main().catch((err: unknown) => {
  console.error('soak failed:', err);
  process.exit(1);
});
