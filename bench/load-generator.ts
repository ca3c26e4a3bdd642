/**
 * Closed-loop load from worker threads of this (the parent) process: concurrency C means C requests
 * outstanding at all times, spread over up to `threads` threads each with its own channel. A point is
 * warm-up (connections, JIT, the server's first batches), then a measured window during which the
 * server's counters and this process's CPU are read at the window's edges.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { EntryStats } from './entry-ipc';
import type { ServerChild } from './child';
import type { LoadWorkerData, LoadWorkerReport } from './load-worker';
import { foreignCpuPct, machineCpu, stealPct } from './machine-load';
import type { BenchModel } from './workload';

/** What the load is aimed at: a bench child, or anything else that can mark a window and report on it. */
export type LoadTarget = Pick<ServerChild, 'address' | 'reset' | 'stats'>;

export interface LoadOptions {
  server: LoadTarget;
  model: BenchModel;
  concurrency: number;
  warmupMs: number;
  measureMs: number;
  threads: number;
  /**
   * Other children serving this load (the OTLP sink): reset and read at the same window edges as the
   * server; their CPU counts as the benchmark's own, not as interference.
   */
  companions?: LoadTarget[];
  /** The RPC the load threads call (default Predict). */
  rpc?: LoadWorkerData['rpc'];
}

export interface LoadPoint {
  concurrency: number;
  windowMs: number;
  ok: number;
  errors: Record<string, number>;
  reqPerS: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Parent process CPU over the window as % of one core (load threads + idle main thread). */
  loadgenCpuPct: number;
  /** CPU used by processes other than the load generator and the server, % of one core: interference. */
  otherCpuPct: number;
  /** vCPU time stolen by the hypervisor, % of one core. */
  stealPct: number;
  server: EntryStats;
  /** The companions' stats over the window, in LoadOptions.companions order (absent without companions). */
  companions?: EntryStats[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Splits C callers over the threads as evenly as possible (no idle threads). */
export function spread(concurrency: number, threads: number): number[] {
  const n = Math.max(1, Math.min(threads, concurrency));
  return Array.from({ length: n }, (_, i) => Math.floor(concurrency / n) + (i < concurrency % n ? 1 : 0));
}

export async function runLoad(o: LoadOptions): Promise<LoadPoint> {
  const phase = new SharedArrayBuffer(4);
  const flag = new Int32Array(phase);
  const workers = spread(o.concurrency, o.threads).map((c) => {
    const data: LoadWorkerData = { address: o.server.address, model: o.model, concurrency: c, phase, ...(o.rpc ? { rpc: o.rpc } : {}) };
    return new Worker(path.join(__dirname, 'load-worker.js'), { workerData: data });
  });
  const failed = new Promise<never>((_, reject) => {
    for (const w of workers) w.once('error', (err) => reject(new Error(`load thread failed: ${err.message}`)));
  });
  try {
    return await Promise.race([failed, measure(o, workers, flag)]);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

async function measure(o: LoadOptions, workers: Worker[], flag: Int32Array): Promise<LoadPoint> {
  for (const w of workers) w.postMessage({ type: 'start' });
  await sleep(o.warmupMs);

  const companions = o.companions ?? [];
  await Promise.all([o.server.reset(), ...companions.map((c) => c.reset())]);
  const cpu0 = process.cpuUsage();
  const machine0 = machineCpu();
  const t0 = performance.now();
  Atomics.store(flag, 0, 1);
  await sleep(o.measureMs);
  Atomics.store(flag, 0, 2);
  const windowMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const machine1 = machineCpu();
  const [server, ...companionStats] = await Promise.all([o.server.stats(), ...companions.map((c) => c.stats())]);
  const ownCpuUs = cpu.user + cpu.system + server!.processCpuUs + companionStats.reduce((n, c) => n + c.processCpuUs, 0);

  const reports = await Promise.all(
    workers.map(
      (w) =>
        new Promise<LoadWorkerReport>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`load thread did not drain within 60 s (${o.model} c=${o.concurrency})`)), 60_000);
          w.once('message', (r: LoadWorkerReport) => (clearTimeout(timer), resolve(r)));
          w.postMessage({ type: 'collect' });
        }),
    ),
  );
  const ok = reports.reduce((n, r) => n + r.ok, 0);
  const all = new Float64Array(ok);
  let at = 0;
  for (const r of reports) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  const errors: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    concurrency: o.concurrency,
    windowMs,
    ok,
    errors,
    reqPerS: ok / (windowMs / 1000),
    p50Ms: percentile(all, 50),
    p90Ms: percentile(all, 90),
    p99Ms: percentile(all, 99),
    loadgenCpuPct: ((cpu.user + cpu.system) / 1000 / windowMs) * 100,
    otherCpuPct: foreignCpuPct(machine0, machine1, ownCpuUs, windowMs),
    stealPct: stealPct(machine0, machine1, windowMs),
    server: server!,
    ...(companions.length ? { companions: companionStats } : {}),
  };
}
