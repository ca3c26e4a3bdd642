/**
 * `npm run bench`: tensorgate against ceilings and a naive baseline measured in the same run, one load at a
 * time (on a small machine two concurrent loads would measure each other):
 *
 *   1. raw ONNX Runtime rows/s per model and batch size (child process, nothing else running);
 *   2. a no-op grpc-js server answering the same request with a same-size response, at each concurrency;
 *   3. the naive baseline: a bare grpc-js server running ONNX Runtime on its main thread, no batching
 *      (bench/naive-server-entry.ts), at each model and concurrency: what tensorgate must beat;
 *   4. tensorgate with the bundled configs (dynamic batching on) and with `dynamic_batching` removed;
 *      2-4 are measured in turn at each point (all four servers up, idle but for the one measured), so that
 *      the VM's drift over the run hits the figures they are compared by alike;
 *   5. the cache-hit path: mlp with the result cache on, every request a hit (bench/cache-hit.ts);
 *   6. tracing export: mlp as in 4, without and with OTLP span export to a local sink (bench/tracing-overhead.ts).
 *
 * Then tables, PASS/MISS targets, and bench/results/<date>-<time>.{json,md} plus latest.md (not for
 * BENCH_QUICK smoke runs, whose files end in -quick).
 * Knobs: BENCH_SECONDS (measured window, default 5), BENCH_WARMUP_SECONDS (1.5), BENCH_MODELS
 * (mlp,convnet,sentiment), BENCH_CONCURRENCY (1,4,16,64), BENCH_QUICK=1 (1 s windows, c=1,16: a smoke run).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../src/paths';
import type { OrtCeiling, OrtCeilingArgs } from './ceiling-ort';
import { CACHE_BENCH_BYTES, CACHE_MODEL, cacheHitSection, cacheHitVerdicts, measureCacheHit, type CacheHitResult } from './cache-hit';
import { captureResponses, runOnce, ServerChild } from './child';
import { runLoad, type LoadPoint } from './load-generator';
import { machine, revision } from './machine-facts';
import { waitForQuiet } from './machine-load';
import { evaluateTargets, mainUsPerReq, modelTable, ortTable, targetsText, type BenchData, type BenchRow, type ServerKind } from './report';
import { measureTracing, TRACING_MODEL, tracingSection, tracingVerdicts, type TracingResult } from './tracing-overhead';
import { modelConfig, parseConcurrency, parseModels, writeRepository, type BenchModel } from './workload';

const LOAD_THREADS = 2;
/** A point during which other processes used more than this (% of one core) is measured again... */
const MAX_OTHER_CPU_PCT = Number(process.env.BENCH_MAX_OTHER_CPU ?? 20);
/** ...at most this many more times; the least disturbed attempt is kept (and flagged if still disturbed). */
const RETRIES = 2;
const ORT_BATCH_SIZES = [1, 8, 32, 64, 128];

function settingsFromEnv() {
  const quick = process.env.BENCH_QUICK === '1';
  const concurrency = parseConcurrency(process.env.BENCH_CONCURRENCY, quick ? [1, 16] : [1, 4, 16, 64]);
  return {
    quick,
    models: parseModels(process.env.BENCH_MODELS),
    concurrency,
    seconds: Number(process.env.BENCH_SECONDS ?? (quick ? 1 : 5)),
    warmupSeconds: Number(process.env.BENCH_WARMUP_SECONDS ?? (quick ? 0.5 : 1.5)),
    ortSecondsPerPoint: quick ? 0.5 : 2,
    loadThreads: LOAD_THREADS,
    serverWorkers: 'default (one per core, at most 4)',
    resultCache: 'off (cacheMaxBytes 0: the fixed payloads would otherwise all be cache hits) except in "Cache-hit path"',
  };
}
type Settings = ReturnType<typeof settingsFromEnv>;

function command(): string {
  const knobs = Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v} `).join('');
  const base = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : `node ${path.relative(PACKAGE_ROOT, process.argv[1] ?? 'dist/bench/run.js')}`;
  return knobs + base;
}

const log = (line: string) => console.error(line);

/** One load point, re-measured when something outside the benchmark took CPU during its window. */
async function measurePoint(server: ServerChild, model: BenchModel, concurrency: number, s: Settings, companions?: ServerChild[]): Promise<LoadPoint & { attempts: number }> {
  let best: LoadPoint | undefined;
  let attempts = 0;
  while (attempts <= RETRIES) {
    attempts++;
    await waitForQuiet(MAX_OTHER_CPU_PCT / 2, 60_000, log);
    const p = await runLoad({ server, model, concurrency, warmupMs: s.warmupSeconds * 1000, measureMs: s.seconds * 1000, threads: s.loadThreads, companions });
    if (!best || p.otherCpuPct < best.otherCpuPct) best = p;
    if (p.otherCpuPct <= MAX_OTHER_CPU_PCT) break;
    log(`  (${model} c=${concurrency}: other processes used ${p.otherCpuPct.toFixed(0)}% of a core during the window; measuring again)`);
  }
  return { ...best!, attempts };
}

/**
 * Every server at one point, then the next point: the no-op, naive and tensorgate servers are measured in turn at
 * each model and concurrency, so a drift of the VM's speed over the run (on the 2-core VM the no-op server's
 * req/s at one point moved by 2x within minutes) shifts all of a point's figures alike, and the ratios between
 * them ("vs naive", "vs no-op") hold. Measuring one server's whole sweep after another's did not.
 */
async function interleavedSweep(servers: { kind: ServerKind; server: ServerChild }[], s: Settings, rows: BenchRow[]): Promise<void> {
  for (const model of s.models) {
    for (const concurrency of s.concurrency) {
      for (const { kind, server } of servers) {
        const point = await measurePoint(server, model, concurrency, s);
        rows.push({ model, server: kind, point });
        const errors = Object.values(point.errors).reduce((a, b) => a + b, 0);
        console.error(
          `  ${kind.padEnd(12)} ${model.padEnd(9)} c=${String(concurrency).padEnd(3)} ${point.reqPerS.toFixed(0).padStart(6)} req/s  p99 ${point.p99Ms.toFixed(2)} ms` +
            `  main ${mainUsPerReq(point).toFixed(0)} µs/req  loadgen ${point.loadgenCpuPct.toFixed(0)}%${errors ? `  ERRORS ${JSON.stringify(point.errors)}` : ''}`,
        );
      }
    }
  }
}

/** Flags points disturbed by other processes, and windows where the server ran clearly fewer requests than the clients got answers (a cache, a bug). */
function consistencyNotes(rows: BenchRow[], ort: OrtCeiling[], sectionPoints: { where: string; point: LoadPoint }[]): string[] {
  const where = (r: BenchRow) => `${r.server} ${r.model} c=${r.point.concurrency}`;
  return [
    ...[...rows.map((r) => ({ where: where(r), point: r.point })), ...sectionPoints]
      .filter((r) => r.point.otherCpuPct > MAX_OTHER_CPU_PCT)
      .map((r) => `${r.where}: other processes used ${r.point.otherCpuPct.toFixed(0)}% of a core even in the least disturbed of ${RETRIES + 1} attempts; treat it with suspicion`),
    ...ort.flatMap((c) => c.points.filter((p) => p.otherCpuPct > MAX_OTHER_CPU_PCT).map((p) => `raw ORT ${c.model} ${c.threads} threads batch ${p.batch}: other processes used ${p.otherCpuPct.toFixed(0)}% of a core`)),
    ...rows
      .filter((r) => r.point.ok > 0 && Math.abs(r.point.server.requests - r.point.ok) / r.point.ok > 0.1)
      .map((r) => `${where(r)}: clients got ${r.point.ok} answers, the server counted ${r.point.server.requests} requests`),
  ];
}

async function withServer(entry: string, args: string[], fn: (s: ServerChild) => Promise<void>): Promise<void> {
  const server = await ServerChild.start(entry, args);
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

function markdown(data: BenchData, s: Settings, meta: { machine: ReturnType<typeof machine>; revision: string; command: string; date: string; durationS: number }, targets: string, notes: string[], sections: string[]): string {
  const m = meta.machine;
  return [
    `# tensorgate benchmark, ${meta.date}`,
    '',
    `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}`,
    `- Node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, @grpc/grpc-js ${m.grpcJs}; tensorgate at ${meta.revision}`,
    `- command: \`${meta.command}\` (took ${meta.durationS.toFixed(0)} s)`,
    `- settings: ${s.seconds} s measured after ${s.warmupSeconds} s warm-up per point; concurrency ${s.concurrency.join(', ')}; ` +
      `${s.loadThreads} load-generator threads (one channel each) in the parent process; server workers ${s.serverWorkers}; result cache ${s.resultCache}`,
    '- the load generator shares the machine with the server (same for the no-op and naive servers); "loadgen CPU" is its share, in % of one core',
    '- naive: a bare grpc-js server calling session.run on its main thread (ONNX Runtime\'s default session options), one request per run; "vs naive" is req/s against it at the same model and concurrency',
    '- main µs/req: CPU of the server\'s main thread (from /proc) per request it executed; process µs/req: all its threads, inference included',
    '- workers busy: the inference workers\' session.run time over the window, as a share of (window x workers)',
    `- other CPU: CPU used during the window by processes other than the load generator and the server (% of one core); points above ${MAX_OTHER_CPU_PCT}% were measured again, up to ${RETRIES} more times, keeping the least disturbed`,
    '',
    '## Targets',
    '',
    targets,
    '',
    '## Raw ONNX Runtime ceiling',
    '',
    ortTable(data),
    '',
    '## Load results',
    '',
    ...data.models.flatMap((model) => [modelTable(data, model), '']),
    ...sections.flatMap((section) => [section, '']),
    ...(notes.length ? ['## Notes', '', ...notes.map((n) => `- ${n}`), ''] : []),
  ].join('\n');
}

async function main(): Promise<void> {
  const started = performance.now();
  const s = settingsFromEnv();
  const date = new Date();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-bench-'));
  // Also on Ctrl-C, which exits from child.ts's signal handler without unwinding to the finally below.
  process.once('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  try {
    const facts: BenchData['facts'] = {};
    for (const m of s.models) {
      const c = await modelConfig(m);
      facts[m] = { maxBatchSize: c.max_batch_size, maxQueueDelayMs: (c.dynamic_batching?.max_queue_delay_us ?? 0) / 1000 };
    }
    const repoOn = writeRepository(path.join(tmp, 'batching-on'), s.models, true);
    const repoOff = writeRepository(path.join(tmp, 'batching-off'), s.models, false);
    const responses = path.join(tmp, 'responses.json');

    console.error(`bench: models ${s.models.join(', ')}; concurrency ${s.concurrency.join(', ')}; ${s.seconds} s windows`);
    console.error('1/7 raw ONNX Runtime ceiling');
    const ortArgs: OrtCeilingArgs = { models: s.models, threads: [2, 1], batchSizes: ORT_BATCH_SIZES, secondsPerPoint: s.ortSecondsPerPoint, maxOtherCpuPct: MAX_OTHER_CPU_PCT };
    const ort = await runOnce<OrtCeiling[]>('ceiling-ort', [JSON.stringify(ortArgs)], 10 * 60_000);

    const rows: BenchRow[] = [];
    console.error('2-5/7 the no-op grpc-js ceiling, the naive server (ONNX Runtime on the main thread, no batching), tensorgate with dynamic batching on (bundled configs) and off, in turn at each point');
    await withServer('server-entry', [repoOn], (server) => captureResponses(server, s.models, responses));
    const kinds: { kind: ServerKind; entry: string; args: string[] }[] = [
      { kind: 'no-op grpc', entry: 'noop-server-entry', args: [responses] },
      { kind: 'naive', entry: 'naive-server-entry', args: [repoOn] },
      { kind: 'batching on', entry: 'server-entry', args: [repoOn] },
      { kind: 'batching off', entry: 'server-entry', args: [repoOff] },
    ];
    const servers: { kind: ServerKind; server: ServerChild }[] = [];
    try {
      // One at a time: each loads its models without the others' start-up competing for the cores.
      for (const k of kinds) servers.push({ kind: k.kind, server: await ServerChild.start(k.entry, k.args) });
      await interleavedSweep(servers, s, rows);
    } finally {
      await Promise.all(servers.map(({ server }) => server.stop()));
    }
    const measure = (server: ServerChild, model: BenchModel, c: number, companions?: ServerChild[]) => measurePoint(server, model, c, s, companions);
    let cacheHit: CacheHitResult | undefined;
    let tracing: TracingResult | undefined;
    console.error(`6/7 tensorgate, result cache on (${CACHE_BENCH_BYTES / 2 ** 20} MiB): the cache-hit path`);
    if (s.models.includes(CACHE_MODEL)) {
      await withServer('server-entry', [repoOn, String(CACHE_BENCH_BYTES)], async (server) => void (cacheHit = await measureCacheHit(server, s.concurrency, measure, log)));
    } else console.error(`  skipped: BENCH_MODELS leaves out ${CACHE_MODEL}`);
    console.error('7/7 tensorgate, dynamic batching on, tracing export off vs on');
    if (s.models.includes(TRACING_MODEL)) tracing = await measureTracing(repoOn, s.concurrency, measure, log);
    else console.error(`  skipped: BENCH_MODELS leaves out ${TRACING_MODEL}`);

    // Group rows per model: no-op, naive, on, off, each by concurrency.
    const order: ServerKind[] = ['no-op grpc', 'naive', 'batching on', 'batching off'];
    rows.sort((a, b) => s.models.indexOf(a.model) - s.models.indexOf(b.model) || order.indexOf(a.server) - order.indexOf(b.server) || a.point.concurrency - b.point.concurrency);
    const data: BenchData = { models: s.models, cores: os.availableParallelism(), facts, ort, rows };
    const verdicts = [...evaluateTargets(data), ...cacheHitVerdicts(cacheHit, data), ...tracingVerdicts(tracing)];
    const meta = { machine: machine(), revision: revision(), command: command(), date: date.toISOString(), durationS: (performance.now() - started) / 1000 };
    const sectionPoints = [
      ...(cacheHit?.points.map((point) => ({ where: `cache hit ${cacheHit!.model} c=${point.concurrency}`, point })) ?? []),
      ...(tracing?.points.flatMap((t) => [{ where: `tracing off ${tracing!.model} c=${t.concurrency}`, point: t.off }, { where: `tracing on ${tracing!.model} c=${t.concurrency}`, point: t.on }]) ?? []),
    ];
    const md = markdown(data, s, meta, targetsText(verdicts), consistencyNotes(rows, ort, sectionPoints), [cacheHitSection(cacheHit, data), tracingSection(tracing)]);
    console.log(`\n${md}`);

    const dir = path.join(PACKAGE_ROOT, 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    const pad = (n: number) => String(n).padStart(2, '0');
    const stamp = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}-${pad(date.getHours())}${pad(date.getMinutes())}${s.quick ? '-quick' : ''}`;
    fs.writeFileSync(path.join(dir, `${stamp}.json`), `${JSON.stringify({ ...meta, settings: s, ...data, cacheHit, tracing, targets: verdicts }, null, 2)}\n`);
    fs.writeFileSync(path.join(dir, `${stamp}.md`), md);
    // A smoke run (BENCH_QUICK) never replaces the last real results.
    if (!s.quick) fs.writeFileSync(path.join(dir, 'latest.md'), md);
    console.error(`\nbench: wrote bench/results/${stamp}.json and ${stamp}.md${s.quick ? ' (quick: latest.md left alone)' : ' and latest.md'}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error('bench failed:', err);
  process.exitCode = 1;
});
