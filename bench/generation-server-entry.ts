/**
 * Child-process entry of the generation benchmark: a real TensorgateServer (as bench/server-entry.ts
 * starts one: 127.0.0.1, ephemeral ports, result cache off, TENSORGATE_* tuning from the environment)
 * that also counts its decode steps. Its own entry because server-entry counts the request scheduler's
 * batches, and generation never goes through that scheduler: it wraps the pool's generateStep instead
 * (an instance property over the prototype's method, so nothing in src/ changes) and reports, per window:
 *
 *   steps, tokens, the workers' session.run time (computeMs), each step's round trip as the main thread
 *   sees it (stepWallMs: compute + message hops + the worker's feeds, cache copies and sampling), and
 *   the main thread's idle gap between a lane's reply and its next step (gapMs: delivering the step's
 *   tokens to the streams and writing them to gRPC happens there, before the next step is sent).
 *
 * It also reads every thread's CPU from /proc: the busiest threads other than the main one are the
 * inference workers (the rest, V8's helpers, use a few % each), so a worker's CPU per step against the
 * step's round trip tells working from waiting. (With more than one intra-op thread per worker, ONNX
 * Runtime's pool threads compete for those places and the figure means less.)
 *
 * argv[2]: the model repository.
 */
// Must stay the first import, as in server-entry.ts (starts OpenTelemetry before @grpc/grpc-js loads, if asked).
import { telemetry } from '../src/telemetry/bootstrap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { SERVER_SETTINGS, serverConfigSchema } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';
import { serveIpc, type EntryExtras } from './entry-ipc';

/** Decode-step counters for a window (see the file comment). */
export interface StepWindow {
  steps: number;
  tokens: number;
  computeMs: number;
  stepWallMs: number;
  gapMs: number;
  gaps: number;
  /** Steps per worker index. */
  perWorker: number[];
  /** CPU µs of the `workers` busiest threads other than the main thread (the inference workers), busiest first. */
  workerCpuUs: number[];
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU µs of every thread of this process but the main one, by thread id. */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    if (tid === String(process.pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, ((Number(f[11]) + Number(f[12])) / CLOCK_TICKS) * 1e6);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const FIXED = new Set(['host', 'port', 'httpPort', 'modelRepository', 'logLevel', 'cacheMaxBytes']);

function emptyWindow(workers: number): StepWindow {
  return { steps: 0, tokens: 0, computeMs: 0, stepWallMs: 0, gapMs: 0, gaps: 0, perWorker: Array.from({ length: workers }, () => 0), workerCpuUs: [] };
}

async function main(): Promise<void> {
  const modelRepository = process.argv[2];
  if (!modelRepository) throw new Error('usage: generation-server-entry <model repository>');
  const tuning = SERVER_SETTINGS.filter((s) => s.key in serverConfigSchema.shape && !FIXED.has(s.key) && process.env[s.env]);
  const config = serverConfigSchema.parse({
    host: '127.0.0.1',
    port: 0,
    httpPort: 0,
    modelRepository,
    logLevel: 'warn',
    cacheMaxBytes: 0,
    ...Object.fromEntries(tuning.map((s) => [s.key, process.env[s.env]!])),
  });
  const server = new TensorgateServer(config, createLogger(config.logLevel));
  const workers = server.pool.workerCount;
  let w = emptyWindow(workers);
  let threadBase = threadCpu();
  // Workers step their sequences on their own and report every step ('gen-tokens'): the interval between two
  // reports of one worker is its step as the main thread sees it; what is not session.run in it is the gap
  // (engine work, sampling, the hop back to the main thread).
  const lastAt: (number | undefined)[] = Array.from({ length: workers }, () => undefined);
  server.pool.on('gen-tokens', (index, tokens) => {
    const now = performance.now();
    w.steps++;
    w.perWorker[index]!++;
    w.tokens += tokens.tokens.length;
    w.computeMs += tokens.computeMs;
    const last = lastAt[index];
    if (last !== undefined) {
      w.stepWallMs += now - last;
      w.gapMs += Math.max(0, now - last - tokens.computeMs);
      w.gaps++;
    }
    // A worker with rows left steps again at once; one that emptied waits for new work (not a step).
    lastAt[index] = tokens.active > 0 ? now : undefined;
  });
  const ipc = serveIpc(() => server.shutdown(1000).finally(() => telemetry?.shutdown().catch(() => undefined)), workers, {
    reset: () => {
      w = emptyWindow(workers);
      threadBase = threadCpu();
    },
    // Carried beside the common extras (the IPC channel clones whatever is sent).
    read: () => {
      const used = [...threadCpu()].map(([tid, us]) => us - (threadBase.get(tid) ?? 0)).sort((a, b) => b - a);
      return { steps: { ...w, perWorker: [...w.perWorker], workerCpuUs: used.slice(0, workers) } } as EntryExtras;
    },
  });
  const port = await server.start();
  const broken = server.repository.list().filter((m) => m.versions.every((v) => v.state !== 'READY'));
  if (broken.length > 0) throw new Error(`models not READY: ${broken.map((m) => `${m.name} (${m.reason || m.versions.map((v) => v.reason).join('; ')})`).join(', ')}`);
  ipc.ready(port);
}

main().catch((err: unknown) => {
  console.error('bench generation-server-entry failed:', err);
  process.exit(1);
});
