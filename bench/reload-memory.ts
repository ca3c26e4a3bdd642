/**
 * Memory across model reloads (issue: "50 load/unload cycles of a model leave RSS flat"). Starts the real CLI,
 * `tensorgate serve --model-control-mode explicit --load-model '*'`, in a child process on a temporary
 * repository holding copies of the bundled `mlp` and `convnet`, then runs N cycles of:
 *
 *   (a) reload `convnet` (v2 RepositoryModelLoad on a loaded model: the new load is built beside the serving
 *       one, switched to, and the old one released),
 *   (b) unload then load `mlp` (RepositoryModelUnload, RepositoryModelLoad),
 *
 * with a few Predict calls to each model between the steps, so every new load's session really runs. After
 * each cycle it samples the server process's VmRSS from /proc/<pid>/status (the whole process: the main
 * thread, the inference worker threads and ONNX Runtime's native threads and allocations all live in it)
 * and the server's own /metrics (prom-client default metrics: the main thread's V8 heap used/total and
 * external memory; the worker threads' heaps are not in those figures, only in RSS).
 *
 *   npm run bench:reload-memory     BENCH_CYCLES (50), BENCH_PREDICTS (3 per model per step),
 *                                   BENCH_CACHE_BYTES (0: result cache off, so every Predict runs the model)
 *
 * Prints the curve and a verdict, and writes bench/results/reload-memory-<date>.md (machine, command, date,
 * commit). Linux only (/proc).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { createInferenceClient, v2Call } from '../src/client/inference-client';
import { createModelClient, unary } from '../src/client/model-client';
import { PACKAGE_ROOT } from '../src/paths';
import { machine, revision } from './machine-facts';
import { predictRequest, writeRepository } from './workload';

const CYCLES = Number(process.env.BENCH_CYCLES ?? 50);
const PREDICTS = Number(process.env.BENCH_PREDICTS ?? 3);
const CACHE_BYTES = Number(process.env.BENCH_CACHE_BYTES ?? 0);
/** Samples before this cycle are warm-up (allocator arenas, V8 heap growth, ORT thread pools, JIT). */
const WARMUP_CYCLES = 10;
/**
 * "Flat" thresholds. Per cycle < 0.5 MiB: a reload that leaked its previous load would keep at least that
 * load's weights (convnet's model.onnx is 0.8 MiB, and a session holds the initializers plus its arena and
 * optimized graph, so several MiB), so a leak of one session per cycle shows as >= ~1 MiB/cycle; below
 * 0.5 MiB is under any whole-session leak yet above the noise of the least-squares slope over 40 samples
 * (allocator and GC timing move single samples by a few MiB, not a trend). Overall < 10% from cycle 10 to the
 * last: with a base RSS around 150-250 MiB that is ~15-25 MiB, what 0.5 MiB x 40 cycles would add; it also
 * catches a slow creep hidden in the slope's noise.
 */
const MAX_MIB_PER_CYCLE = 0.5;
const MAX_OVERALL_GROWTH = 0.1;
const SETTLE_MS = 300;

const MiB = 2 ** 20;

interface Sample {
  cycle: number;
  rssMiB: number;
  rssAnonMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  ms: number;
}

interface Serve {
  child: ChildProcess;
  grpcPort: number;
  httpPort: number;
}

/** The real CLI with JSON logs; resolves once it logged "tensorgate serving on" (ports from the "listening" line). */
function startServe(repo: string): Promise<Serve> {
  const args = [
    path.join(PACKAGE_ROOT, 'dist/src/cli/main.js'),
    'serve',
    '--log-format', 'json',
    '--log-level', 'info',
    '--models', repo,
    '--host', '127.0.0.1',
    '--port', '0',
    '--http-port', '0',
    '--model-control-mode', 'explicit',
    '--load-model', '*',
    '--cache-max-bytes', String(CACHE_BYTES),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  process.on('exit', () => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let grpcPort = 0;
    let httpPort = 0;
    const timer = setTimeout(() => reject(new Error(`serve did not become ready in 60 s; stderr: ${stderr.slice(-2000)}`)), 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (code ${code}, signal ${signal}) before it was ready; stderr: ${stderr.slice(-2000)}`));
    });
    readline.createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: { msg?: string; address?: string; httpPort?: number; level?: number; model?: string; reason?: string };
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      // Warnings and errors while the bench runs (a failed load, a worker exit) must not pass unseen.
      if ((line.level ?? 0) >= 40) console.error(`serve: ${line.msg}`);
      if (line.msg?.startsWith('listening:')) {
        grpcPort = Number(line.address!.split(':').pop());
        httpPort = line.httpPort!;
      }
      if (line.msg?.startsWith('tensorgate serving on')) {
        clearTimeout(timer);
        resolve({ child, grpcPort, httpPort });
      }
    });
  });
}

function procStatusMiB(pid: number, field: 'VmRSS' | 'RssAnon' | 'Threads'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
  return field === 'Threads' ? Number(m[1]) : Number(m[1]) / 1024; // kB
}

/** Series in the server's /metrics: label sets that grew per load (a session key in a label) would show here. */
let seriesCount = 0;

async function metrics(httpPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  seriesCount = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(tensorgate_(?:nodejs_heap_size_used_bytes|nodejs_heap_size_total_bytes|nodejs_external_memory_bytes|process_resident_memory_bytes)) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function sample(serve: Serve, cycle: number, t0: number): Promise<Sample> {
  await new Promise((r) => setTimeout(r, SETTLE_MS)); // a replaced load is released once its runs in flight finish
  const pid = serve.child.pid!;
  const m = await metrics(serve.httpPort);
  return {
    cycle,
    rssMiB: procStatusMiB(pid, 'VmRSS'),
    rssAnonMiB: procStatusMiB(pid, 'RssAnon'),
    heapUsedMiB: (m.get('tensorgate_nodejs_heap_size_used_bytes') ?? NaN) / MiB,
    heapTotalMiB: (m.get('tensorgate_nodejs_heap_size_total_bytes') ?? NaN) / MiB,
    externalMiB: (m.get('tensorgate_nodejs_external_memory_bytes') ?? NaN) / MiB,
    ms: performance.now() - t0,
  };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

interface Trend {
  from: number;
  to: number;
  endpointPerCycle: number;
  slopePerCycle: number;
  overall: number;
}

function trend(samples: Sample[], pick: (s: Sample) => number): Trend {
  const window = samples.filter((s) => s.cycle >= WARMUP_CYCLES);
  const first = window[0]!;
  const last = window[window.length - 1]!;
  const cycles = Math.max(1, last.cycle - first.cycle);
  return {
    from: pick(first),
    to: pick(last),
    endpointPerCycle: (pick(last) - pick(first)) / cycles,
    slopePerCycle: slope(window.map((s) => s.cycle), window.map(pick)),
    overall: (pick(last) - pick(first)) / pick(first),
  };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

async function main(): Promise<void> {
  if (process.platform !== 'linux') throw new Error('bench:reload-memory reads /proc/<pid>/status: Linux only');
  if (!Number.isSafeInteger(CYCLES) || CYCLES <= WARMUP_CYCLES) throw new Error(`BENCH_CYCLES must be an integer > ${WARMUP_CYCLES}`);
  const started = new Date();
  const repo = writeRepository(fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-reload-memory-')), ['mlp', 'convnet'], true);
  const serve = await startServe(repo);
  const address = `127.0.0.1:${serve.grpcPort}`;
  const v2 = createInferenceClient(address);
  const client = createModelClient(address);
  const requests = { mlp: predictRequest('mlp'), convnet: predictRequest('convnet') };
  let predicts = 0;
  const predict = async (model: 'mlp' | 'convnet') => {
    for (let i = 0; i < PREDICTS; i++) {
      await unary(client, 'Predict', requests[model], { deadlineMs: 30_000 });
      predicts++;
    }
  };
  const load = (model: string) => v2Call(v2, 'RepositoryModelLoad', { model_name: model }, 60_000);
  const unload = (model: string) => v2Call(v2, 'RepositoryModelUnload', { model_name: model }, 60_000);

  const samples: Sample[] = [];
  const t0 = performance.now();
  try {
    // Cycle 0: after one round of Predicts, before any reload (the baseline).
    await predict('mlp');
    await predict('convnet');
    samples.push(await sample(serve, 0, t0));
    const threads0 = procStatusMiB(serve.child.pid!, 'Threads');
    let seriesWarm = seriesCount; // taken again at the end of the warm-up: the first reload adds its own series once
    console.log(`reload-memory: server pid ${serve.child.pid} (${threads0} threads), ${CYCLES} cycles, ${PREDICTS} Predicts per model per step, result cache ${CACHE_BYTES > 0 ? `${CACHE_BYTES} bytes` : 'off'}`);
    console.log('cycle  RSS MiB  RssAnon MiB  heap used MiB  heap total MiB  external MiB');
    const printRow = (s: Sample) =>
      console.log(`${String(s.cycle).padStart(5)}  ${f1(s.rssMiB).padStart(7)}  ${f1(s.rssAnonMiB).padStart(11)}  ${f1(s.heapUsedMiB).padStart(13)}  ${f1(s.heapTotalMiB).padStart(14)}  ${f1(s.externalMiB).padStart(12)}`);
    printRow(samples[0]!);
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      await load('convnet'); // a reload: new load beside the serving one, switch, release the old one
      await predict('convnet');
      await predict('mlp');
      await unload('mlp');
      await predict('convnet');
      await load('mlp');
      await predict('mlp');
      const s = await sample(serve, cycle, t0);
      samples.push(s);
      if (cycle === WARMUP_CYCLES) seriesWarm = seriesCount;
      printRow(s);
    }
    const threadsEnd = procStatusMiB(serve.child.pid!, 'Threads');
    const rss = trend(samples, (s) => s.rssMiB);
    const anon = trend(samples, (s) => s.rssAnonMiB);
    const heap = trend(samples, (s) => s.heapUsedMiB);
    const external = trend(samples, (s) => s.externalMiB);
    // The verdict uses the least-squares slope for "per cycle" (one noisy endpoint cannot decide it) and the
    // endpoints for "overall"; the endpoint rate is printed beside it.
    const flat = rss.slopePerCycle < MAX_MIB_PER_CYCLE && rss.overall < MAX_OVERALL_GROWTH;
    const verdict =
      `${flat ? 'FLAT' : 'NOT FLAT'}: RSS cycle ${WARMUP_CYCLES} -> ${CYCLES}: ${f1(rss.from)} -> ${f1(rss.to)} MiB, ` +
      `${f2(rss.slopePerCycle)} MiB/cycle (least squares; endpoints ${f2(rss.endpointPerCycle)}), ${pct(rss.overall)} overall ` +
      `(target < ${MAX_MIB_PER_CYCLE} MiB/cycle and < ${MAX_OVERALL_GROWTH * 100}% overall)`;
    const detail = [
      `RssAnon ${f1(anon.from)} -> ${f1(anon.to)} MiB (${f2(anon.slopePerCycle)} MiB/cycle)`,
      `main-thread V8 heap used ${f1(heap.from)} -> ${f1(heap.to)} MiB (${f2(heap.slopePerCycle)} MiB/cycle)`,
      `external (ArrayBuffers, main thread) ${f1(external.from)} -> ${f1(external.to)} MiB (${f2(external.slopePerCycle)} MiB/cycle)`,
      `threads ${threads0} -> ${threadsEnd}; /metrics series cycle ${WARMUP_CYCLES} -> ${CYCLES}: ${seriesWarm} -> ${seriesCount}`,
      `${predicts} Predicts, ${CYCLES} convnet reloads, ${CYCLES} mlp unload+load, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    ];
    console.log(`\n${verdict}`);
    for (const d of detail) console.log(`  ${d}`);

    const m = machine();
    const stamp = started.toISOString().slice(0, 16).replace('T', '-').replace(':', '');
    const file = path.join(PACKAGE_ROOT, 'bench', 'results', `reload-memory-${stamp}.md`);
    const report = [
      `# Memory across model reloads: ${CYCLES} cycles`,
      '',
      `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, @grpc/grpc-js ${m.grpcJs}`,
      `- command: \`npm run bench:reload-memory\` (BENCH_CYCLES=${CYCLES}, BENCH_PREDICTS=${PREDICTS}, BENCH_CACHE_BYTES=${CACHE_BYTES})`,
      `- date: ${started.toISOString()}`,
      `- commit: tensorgate at ${revision()}`,
      `- server: \`tensorgate serve --model-control-mode explicit --load-model '*' --cache-max-bytes ${CACHE_BYTES}\` (bundled config otherwise: default workers and threads) on a temp repository with copies of \`mlp\` and \`convnet\``,
      `- one cycle: v2 RepositoryModelLoad \`convnet\` (a reload), ${PREDICTS} Predicts to convnet and to mlp, RepositoryModelUnload \`mlp\`, ${PREDICTS} Predicts to convnet, RepositoryModelLoad \`mlp\`, ${PREDICTS} Predicts to mlp; then ${SETTLE_MS} ms and a sample`,
      '- RSS: VmRSS (and RssAnon) of the server process from /proc/<pid>/status, worker threads included; heap and external: the server\'s /metrics (prom-client default metrics, main thread only)',
      '',
      `**${verdict}**`,
      '',
      ...detail.map((d) => `- ${d}`),
      '',
      '| cycle | RSS MiB | RssAnon MiB | heap used MiB | heap total MiB | external MiB |',
      '|---:|---:|---:|---:|---:|---:|',
      ...samples.map((s) => `| ${s.cycle} | ${f1(s.rssMiB)} | ${f1(s.rssAnonMiB)} | ${f1(s.heapUsedMiB)} | ${f1(s.heapTotalMiB)} | ${f1(s.externalMiB)} |`),
      '',
    ].join('\n');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, report);
    console.log(`\nwrote ${path.relative(PACKAGE_ROOT, file)}`);
  } finally {
    v2.close();
    client.close();
    serve.child.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => (serve.child.kill('SIGKILL'), resolve()), 10_000);
      serve.child.once('exit', () => (clearTimeout(timer), resolve()));
    });
    fs.rmSync(repo, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error('bench:reload-memory failed:', err);
  process.exit(1);
});
