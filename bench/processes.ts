/**
 * `--processes N` against one process, on the same machine and the same load: does a second main thread pay?
 *
 *   npm run build && node dist/bench/processes.js [--processes 1,2] [--model mlp] [--concurrency 64]
 *     [--seconds 5] [--warmup-seconds 2] [--threads 2]
 *
 * For each N, starts the real CLI (`tensorgate serve --processes N`, result cache off: the load sends one fixed
 * payload, which the cache would answer after the first request; access log off, as in npm run bench), waits
 * for /readyz, and drives closed-loop load from this process's worker threads (bench/load-generator.ts, one
 * channel per thread: with N=2 and 2 threads each process gets one connection). Reports req/s, p50/p99, the
 * CPU of the server's main threads per request, and the resident memory of every process of the server (the
 * primary and its children, VmRSS from /proc) idle after loading and at the end of the window, under load.
 * A window in which other processes took more than 20% of a core is measured again (up to 3 times; the
 * quietest is kept, and flagged if still disturbed). Writes bench/results/processes-<date>.{md,json}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/paths';
import type { EntryStats } from './entry-ipc';
import { runLoad, type LoadPoint, type LoadTarget } from './load-generator';
import { machine, revision } from './machine-facts';
import { waitForQuiet } from './machine-load';
import { parseModels, type BenchModel } from './workload';
import { freePort } from './child';

const { values: args } = parseArgs({
  options: {
    processes: { type: 'string', default: '1,2' },
    model: { type: 'string', default: 'mlp' },
    concurrency: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '5' },
    'warmup-seconds': { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    out: { type: 'string', default: path.join(PACKAGE_ROOT, 'bench', 'results') },
  },
});
const counts = args.processes.split(',').map(Number);
const [model] = parseModels(args.model) as [BenchModel];
const concurrency = Number(args.concurrency);
const threads = Number(args.threads);
if (counts.some((n) => !Number.isInteger(n) || n < 1) || !(concurrency >= 1) || !(threads >= 1)) {
  throw new Error('bench processes: --processes takes counts like 1,2; --concurrency and --threads >= 1');
}

/** A window in which processes outside the benchmark used more than this (% of a core) is flagged. */
const MAX_OTHER_CPU_PCT = 20;
const CLOCK_TICKS = 100; // /proc's clock ticks per second on Linux (getconf CLK_TCK)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const live = new Set<ChildProcess>();
process.on('exit', () => live.forEach((c) => c.kill('SIGKILL')));
process.once('SIGINT', () => process.exit(130));


/** The pid and its direct children (a cluster primary's serving processes), from /proc. */
function processTree(pid: number): number[] {
  const children = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // exited while we looked
      }
    })
    .map(Number);
  return [pid, ...children];
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** utime + stime in µs of a process (all its threads) or, with `tid`, of one thread. */
function cpuUs(pid: number, tid?: number): number {
  const stat = fs.readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

/** Sums of the series this bench reads from the server's (aggregated) /metrics. */
async function scrape(httpPort: number): Promise<{ requests: number; rows: number; batches: number; computeMs: number }> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const sum = (re: RegExp) => text.split('\n').reduce((n, line) => (re.test(line) ? n + Number(line.slice(line.lastIndexOf(' ') + 1)) : n), 0);
  return {
    requests: sum(/^tensorgate_requests_total\{/),
    rows: sum(/^tensorgate_batch_size_rows_sum\{/),
    batches: sum(/^tensorgate_batch_size_rows_count\{/),
    computeMs: sum(/^tensorgate_batch_compute_seconds_sum\{/) * 1000,
  };
}

/** The real CLI with --processes N, as a load target: window edges read /metrics and /proc. */
class CliServer implements LoadTarget {
  private base = { at: 0, main: 0, all: 0, counters: { requests: 0, rows: 0, batches: 0, computeMs: 0 } };
  rssUnderLoad: number[] = [];

  private constructor(
    readonly processes: number,
    private readonly child: ChildProcess,
    private readonly port: number,
    readonly httpPort: number,
  ) {}

  static async start(processes: number): Promise<CliServer> {
    const [port, httpPort] = [await freePort(), await freePort()];
    const cli = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
    const flags = ['--processes', String(processes), '--port', String(port), '--http-port', String(httpPort), '--cache-max-bytes', '0', '--access-log', 'false', '--log-level', 'warn'];
    const child = spawn(process.execPath, [cli, 'serve', ...flags], { stdio: ['ignore', 'inherit', 'inherit'] });
    live.add(child);
    const server = new CliServer(processes, child, port, httpPort);
    for (let i = 0; i < 600; i++) {
      if (child.exitCode !== null) throw new Error(`serve --processes ${processes} exited (code ${child.exitCode}) before it was ready`);
      if (await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.ok, () => false)) return server;
      await sleep(200);
    }
    throw new Error(`serve --processes ${processes} not ready within 120 s`);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  pids(): number[] {
    return processTree(this.child.pid!);
  }

  /** VmRSS of every process of the server, the primary first. */
  rss(): number[] {
    return this.pids().map(rssBytes);
  }

  private cpu(): { main: number; all: number } {
    const pids = this.pids();
    // Main threads of the processes that serve (with N > 1 the primary only supervises: counted in `all`).
    const serving = pids.length > 1 ? pids.slice(1) : pids;
    return { main: serving.reduce((n, p) => n + cpuUs(p, p), 0), all: pids.reduce((n, p) => n + cpuUs(p), 0) };
  }

  async reset(): Promise<void> {
    const counters = await scrape(this.httpPort);
    this.base = { at: performance.now(), ...this.cpu(), counters };
  }

  async stats(): Promise<EntryStats> {
    const windowMs = performance.now() - this.base.at;
    const cpu = this.cpu();
    this.rssUnderLoad = this.rss();
    const now = await scrape(this.httpPort);
    const b = this.base.counters;
    return {
      requests: now.requests - b.requests,
      rows: now.rows - b.rows,
      batches: now.batches - b.batches,
      computeMs: now.computeMs - b.computeMs,
      workers: 0,
      windowMs,
      mainCpuUs: cpu.main - this.base.main,
      processCpuUs: cpu.all - this.base.all,
    };
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
    live.delete(this.child);
  }
}

interface Row {
  processes: number;
  point: LoadPoint;
  rssIdle: number[];
  rssUnderLoad: number[];
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function report(rows: Row[], started: Date): string {
  const m = machine();
  const lines = [
    `# --processes: ${model}, c=${concurrency}, ${args.seconds} s per point`,
    '',
    `${started.toISOString()}; commit ${revision()}; ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; ${m.os}; Node ${m.node}; onnxruntime-node ${m.onnxruntimeNode}; grpc-js ${m.grpcJs}`,
    '',
    `Command: \`node dist/bench/processes.js --processes ${args.processes} --model ${model} --concurrency ${concurrency} --seconds ${args.seconds} --threads ${threads}\``,
    `Server: \`tensorgate serve --processes N --cache-max-bytes 0 --access-log false\` (default workers and threads: the cores divided among the processes); load: ${threads} load-generator threads (one connection each) in the bench process, closed loop, single-row requests.`,
    '',
    '| processes | req/s | p50 ms | p99 ms | errors | main threads µs/req | server CPU % of a core | load generator CPU % | other CPU % | RSS idle MB (per process) | RSS under load MB (per process) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const r of rows) {
    const p = r.point;
    const errors = Object.values(p.errors).reduce((a, b) => a + b, 0);
    const mainUs = p.server.requests > 0 ? p.server.mainCpuUs / p.server.requests : NaN;
    const serverPct = (p.server.processCpuUs / 1000 / p.windowMs) * 100;
    lines.push(
      `| ${r.processes} | ${p.reqPerS.toFixed(0)} | ${p.p50Ms.toFixed(1)} | ${p.p99Ms.toFixed(1)} | ${errors} | ${mainUs.toFixed(0)} | ${serverPct.toFixed(0)} | ${p.loadgenCpuPct.toFixed(0)} | ${p.otherCpuPct.toFixed(0)} | ${mb(total(r.rssIdle))} (${r.rssIdle.map(mb).join(' + ')}) | ${mb(total(r.rssUnderLoad))} (${r.rssUnderLoad.map(mb).join(' + ')}) |`,
    );
  }
  const [one, ...more] = rows;
  if (one) {
    lines.push('');
    for (const r of more) {
      const gain = r.point.reqPerS / one.point.reqPerS;
      const memory = total(r.rssUnderLoad) / total(one.rssUnderLoad);
      lines.push(`- N=${r.processes}: ${gain.toFixed(2)}x the req/s of N=1, p99 ${r.point.p99Ms.toFixed(1)} vs ${one.point.p99Ms.toFixed(1)} ms, ${memory.toFixed(2)}x the memory under load.`);
    }
  }
  for (const r of rows) {
    if (r.point.otherCpuPct > MAX_OTHER_CPU_PCT) lines.push(`- N=${r.processes}: other processes used ${r.point.otherCpuPct.toFixed(0)}% of a core during the window: not the server's speed alone; re-run on a quiet machine.`);
  }
  lines.push(
    '',
    'RSS: VmRSS summed over the server\'s processes (with N > 1 the first is the primary, which loads no model). "Other CPU" is',
    'CPU used by processes outside the benchmark during the window: where it is high, the figures are not the server\'s alone.',
  );
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const started = new Date();
  const rows: Row[] = [];
  for (const processes of counts) {
    console.error(`processes: N=${processes}, ${model} c=${concurrency}`);
    const server = await CliServer.start(processes);
    try {
      await sleep(1000); // let loading's garbage settle before the idle sample
      const rssIdle = server.rss();
      // A window disturbed by other processes (a build on a shared machine) is measured again, up to 3 times.
      let best: { point: LoadPoint; rss: number[] } | undefined;
      for (let attempt = 0; attempt < 3 && !(best && best.point.otherCpuPct <= MAX_OTHER_CPU_PCT); attempt++) {
        await waitForQuiet(MAX_OTHER_CPU_PCT / 2, 60_000, (s) => console.error(s));
        const point = await runLoad({ server, model, concurrency, warmupMs: Number(args['warmup-seconds']) * 1000, measureMs: Number(args.seconds) * 1000, threads });
        if (!best || point.otherCpuPct < best.point.otherCpuPct) best = { point, rss: server.rssUnderLoad };
        if (point.otherCpuPct > MAX_OTHER_CPU_PCT) console.error(`  other processes used ${point.otherCpuPct.toFixed(0)}% of a core: measuring again`);
      }
      const { point, rss } = best!;
      rows.push({ processes, point, rssIdle, rssUnderLoad: rss });
      console.error(`  ${point.reqPerS.toFixed(0)} req/s, p99 ${point.p99Ms.toFixed(1)} ms, RSS ${mb(total(rss))} MB`);
    } finally {
      await server.stop();
    }
  }
  const stamp = started.toISOString().slice(0, 16).replace('T', '-').replace(':', '');
  fs.mkdirSync(args.out, { recursive: true });
  const base = path.join(args.out, `processes-${stamp}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify({ started, machine: machine(), revision: revision(), model, concurrency, threads, cores: os.availableParallelism(), rows }, null, 2));
  const md = report(rows, started);
  fs.writeFileSync(`${base}.md`, md);
  process.stdout.write(md);
  console.error(`wrote ${base}.md and .json`);
}

main().catch((err: unknown) => {
  console.error('bench processes failed:', err);
  process.exit(1);
});
