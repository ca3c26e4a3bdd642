/**
 * Garbage collection under the bench load: the no-op, naive and tensorgate servers, each started with V8's
 * `--trace-gc-nvp`, at each model and concurrency. For each server's main thread over the measured window:
 * scavenges, the bytes each one promoted into the old generation, scavenge pause time per 1000 requests, and
 * mark-compacts.
 *
 * Promotion is the figure to watch: a young object that survives two scavenges is copied into the old
 * generation, and everything it references follows, until a mark-compact. A server that answers within the
 * event-loop turn (the no-op one) promotes almost nothing; one that holds requests across turns must not let
 * a finished request's graph survive. Two patterns once did (a Set of per-call closures, a closure stored on
 * the request it closes over: see src/api/inflight-calls.ts and RequestScheduler.watch), promoting ~2 MB per
 * scavenge at mlp c=64 against the no-op server's ~20 KB. Unlike req/s on a shared VM, these counts barely
 * depend on how fast the machine is that minute.
 *
 * They hold only until a server's first mark-compacts. After them, every Node HTTP/2 server measured here
 * (a bare `http2.createServer`, the no-op, the naive server and tensorgate; Node 20.20 and 22.23) promotes
 * ~1.3-2 MB per scavenge for as long as the load lasts, at any concurrency from 8 to 256,
 * on the same connections, while new connections start clean (bench/results/gc-after-mark-compact-2026-12-03.md).
 * The window runs on the warm-up's connections: the default short warm-up usually measures the state before;
 * BENCH_GC_WARMUP_SECONDS=20 the steady state a long-running server reaches. The "mark-compacts in warm-up"
 * column helps tell which state a row is in.
 *
 * `npm run bench:gc` (BENCH_MODELS: mlp,sentiment; BENCH_CONCURRENCY: 4,64; BENCH_SECONDS: 5;
 * BENCH_GC_WARMUP_SECONDS: 1.5). Prints a markdown table; with BENCH_GC_OUT=<file> also writes it there with
 * the machine, date and commit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { captureResponses, ServerChild } from './child';
import { runLoad } from './load-generator';
import { machine, revision } from './machine-facts';
import { parseConcurrency, parseModels, writeRepository, type BenchModel } from './workload';

interface GcWindow {
  requests: number;
  scavenges: number;
  promotedBytes: number;
  scavengePauseMs: number;
  markCompacts: number;
}

/** The fields of one `--trace-gc-nvp` line: "[pid:isolate] 1234 ms: pause=0.7 ... gc=s ... promoted=2048 ...". */
function parseNvp(line: string): { isolate: string; fields: Map<string, string> } | undefined {
  const head = /^\[\d+:(0x[0-9a-f]+)\]/.exec(line);
  if (!head || !line.includes(' gc=')) return undefined;
  const fields = new Map<string, string>();
  for (const part of line.split(/\s+/)) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return { isolate: head[1]!, fields };
}

/** Sums one isolate's collections; the main thread's is the one whose first line came first (workers start later). */
class GcTrace {
  private mainIsolate: string | undefined;
  private window: GcWindow = GcTrace.empty();

  static empty(): GcWindow {
    return { requests: 0, scavenges: 0, promotedBytes: 0, scavengePauseMs: 0, markCompacts: 0 };
  }

  readonly onLine = (line: string): void => {
    const parsed = parseNvp(line);
    if (!parsed) return;
    this.mainIsolate ??= parsed.isolate;
    if (parsed.isolate !== this.mainIsolate) return;
    const kind = parsed.fields.get('gc');
    const w = this.window;
    if (kind === 's') {
      w.scavenges++;
      w.promotedBytes += Number(parsed.fields.get('promoted') ?? 0);
      w.scavengePauseMs += Number(parsed.fields.get('pause') ?? 0);
    } else if (kind === 'mc' || kind === 'ms') {
      w.markCompacts++;
    }
  };

  /** Starts a new window; returns the one that ended. */
  next(): GcWindow {
    const ended = this.window;
    this.window = GcTrace.empty();
    return ended;
  }
}

const SERVERS = ['no-op grpc', 'naive', 'tensorgate'] as const;
type ServerName = (typeof SERVERS)[number];

async function measure(server: ServerName, files: { repo: string; responses: string }, model: BenchModel, concurrency: number, seconds: number, warmupSeconds: number): Promise<GcWindow & { warmupMarkCompacts: number }> {
  const trace = new GcTrace();
  const [entry, args] = server === 'no-op grpc' ? ['noop-server-entry', [files.responses]] : server === 'naive' ? ['naive-server-entry', [files.repo]] : ['server-entry', [files.repo]];
  const child = await ServerChild.start(entry, args, { execArgv: ['--trace-gc-nvp'], stdout: trace.onLine });
  try {
    // Warm-up (start-up collections, JIT), then the measured window on the same connections: new ones would
    // start clean (see the header). The load generator marks the window's start by resetting its target.
    let warmup = GcTrace.empty();
    const target = {
      address: child.address,
      stats: () => child.stats(),
      reset: () => {
        warmup = trace.next();
        return child.reset();
      },
    };
    const p = await runLoad({ server: target, model, concurrency, warmupMs: warmupSeconds * 1000, measureMs: seconds * 1000, threads: 2, rpc: 'Predict' });
    // A collection at the window's very end may still be in the pipe and is left out: one of dozens.
    return { ...trace.next(), requests: p.ok, warmupMarkCompacts: warmup.markCompacts };
  } finally {
    await child.stop();
  }
}

async function main(): Promise<void> {
  const models = parseModels(process.env.BENCH_MODELS ?? 'mlp,sentiment');
  const concurrency = parseConcurrency(process.env.BENCH_CONCURRENCY, [4, 64]);
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const warmupSeconds = Number(process.env.BENCH_GC_WARMUP_SECONDS ?? 1.5);
  if (!(warmupSeconds > 0)) throw new Error(`BENCH_GC_WARMUP_SECONDS must be a positive number of seconds, got '${process.env.BENCH_GC_WARMUP_SECONDS}'`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-gc-'));
  try {
    const repo = writeRepository(path.join(tmp, 'models'), models, true);
    const responses = path.join(tmp, 'responses.json');
    const real = await ServerChild.start('server-entry', [repo]);
    await captureResponses(real, models, responses).finally(() => real.stop());
    const lines = [
      '| model | c | server | mark-compacts in warm-up | requests | scavenges | promoted per scavenge | scavenge pauses per 1000 requests | mark-compacts |',
      '|---|---:|---|---:|---:|---:|---:|---:|---:|',
    ];
    for (const model of models) {
      for (const c of concurrency) {
        for (const server of SERVERS) {
          const w = await measure(server, { repo, responses }, model, c, seconds, warmupSeconds);
          const perScavengeKiB = w.scavenges ? w.promotedBytes / w.scavenges / 1024 : 0;
          const line = `| ${model} | ${c} | ${server} | ${w.warmupMarkCompacts} | ${w.requests} | ${w.scavenges} | ${perScavengeKiB.toFixed(0)} KiB | ${((w.scavengePauseMs / Math.max(1, w.requests)) * 1000).toFixed(1)} ms | ${w.markCompacts} |`;
          console.error(line);
          lines.push(line);
        }
      }
    }
    const table = lines.join('\n');
    console.log(table);
    const out = process.env.BENCH_GC_OUT;
    if (out) {
      const m = machine();
      const head = [
        `# Garbage collection under load, ${new Date().toISOString()}`,
        '',
        `- machine: ${m.cpu}, ${m.cores} cores, Node ${m.node}; tensorgate at ${revision()}`,
        `- command: \`npm run bench:gc\` (models ${models.join(', ')}, concurrency ${concurrency.join(', ')}, ${seconds} s windows after ${warmupSeconds} s of warm-up); each server's main thread, from \`node --trace-gc-nvp\``,
        '',
      ];
      fs.writeFileSync(out, `${head.join('\n')}${table}\n`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
