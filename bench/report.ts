/**
 * Turns measured points into the tables and the target verdicts, as markdown (printed and written to
 * bench/results/) plus the raw JSON. Every ratio is against a ceiling measured in the same run on the
 * same machine, never against a number from somewhere else. The naive server (bench/naive-server-entry.ts)
 * is the floor rather than a ceiling: what tensorgate has to beat to be worth deploying.
 */
import type { OrtCeiling } from './ceiling-ort';
import type { LoadPoint } from './load-generator';
import type { BenchModel } from './workload';

export type ServerKind = 'no-op grpc' | 'naive' | 'batching on' | 'batching off';

export interface BenchRow {
  model: BenchModel;
  server: ServerKind;
  point: LoadPoint;
}

export interface ModelFacts {
  maxBatchSize: number;
  maxQueueDelayMs: number;
}

export interface BenchData {
  models: BenchModel[];
  /** Cores of the machine (the raw ORT ceiling used all of them). */
  cores: number;
  facts: Record<string, ModelFacts>;
  ort: OrtCeiling[];
  rows: BenchRow[];
}

export interface Verdict {
  target: string;
  pass: boolean | undefined;
  detail: string;
}

export const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
export const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
export const pct = (n: number) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : '-');
export const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : '-');

export function bestOrt(data: BenchData, model: BenchModel, threads: number): { rowsPerS: number; batch: number } {
  const c = data.ort.find((o) => o.model === model && o.threads === threads);
  const best = c?.points.reduce((a, b) => (b.rowsPerS > a.rowsPerS ? b : a));
  return { rowsPerS: best?.rowsPerS ?? NaN, batch: best?.batch ?? NaN };
}

/** ms per session.run at `rows`, interpolated between measured batch sizes (linear in rows beyond them). */
export function runMsAt(data: BenchData, model: BenchModel, threads: number, rows: number): number {
  const pts = data.ort.find((o) => o.model === model && o.threads === threads)?.points ?? [];
  if (pts.length === 0 || !Number.isFinite(rows)) return NaN;
  if (rows <= pts[0]!.batch) return pts[0]!.msPerRun;
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!;
    const b = pts[i]!;
    if (rows <= b.batch) return a.msPerRun + ((rows - a.batch) / (b.batch - a.batch)) * (b.msPerRun - a.msPerRun);
  }
  const last = pts[pts.length - 1]!;
  return (last.msPerRun * rows) / last.batch;
}

export function find(data: BenchData, model: BenchModel, server: ServerKind, c: number): LoadPoint | undefined {
  return data.rows.find((r) => r.model === model && r.server === server && r.point.concurrency === c)?.point;
}

function noopBest(data: BenchData, model: BenchModel): LoadPoint | undefined {
  return data.rows.filter((r) => r.model === model && r.server === 'no-op grpc').map((r) => r.point).reduce<LoadPoint | undefined>((a, b) => (!a || b.reqPerS > a.reqPerS ? b : a), undefined);
}

/** Share of the workers' time spent in session.run: low values with a saturated load mean dispatch stalls. */
const workersBusy = (p: LoadPoint) => (p.server.workers > 0 && p.server.computeMs > 0 ? p.server.computeMs / (p.server.windowMs * p.server.workers) : NaN);
const batchRows = (p: LoadPoint) => (p.server.batches > 0 ? p.server.rows / p.server.batches : NaN);
const batchReqs = (p: LoadPoint) => (p.server.batches > 0 ? p.server.requests / p.server.batches : NaN);
export const mainUsPerReq = (p: LoadPoint) => (p.server.requests > 0 ? p.server.mainCpuUs / p.server.requests : NaN);
export const procUsPerReq = (p: LoadPoint) => (p.server.requests > 0 ? p.server.processCpuUs / p.server.requests : NaN);
export const errorText = (e: Record<string, number>) => Object.entries(e).map(([k, v]) => `${k}:${v}`).join(' ') || '0';

export function ortTable(data: BenchData): string {
  const lines = ['| model | intra-op threads | batch | ms/run | rows/s | other CPU |', '|---|---:|---:|---:|---:|---:|'];
  for (const c of data.ort) {
    for (const p of c.points) lines.push(`| ${c.model} | ${c.threads} | ${p.batch} | ${f2(p.msPerRun)} | ${f0(p.rowsPerS)} | ${f0(p.otherCpuPct)}% |`);
  }
  return lines.join('\n');
}

export function modelTable(data: BenchData, model: BenchModel): string {
  const ort = bestOrt(data, model, 2).rowsPerS;
  const lines = [
    `### ${model}`,
    '',
    `Raw ORT ceiling (2 threads, best batch ${bestOrt(data, model, 2).batch}): ${f0(ort)} rows/s. Single-row requests, so rows/s = req/s.`,
    '',
    '| server | c | req/s | rows/s | p50 ms | p90 ms | p99 ms | errors | batch rows | batch reqs | main µs/req | process µs/req | workers busy | loadgen CPU | other CPU | vs no-op | vs naive | vs ORT |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of data.rows.filter((x) => x.model === model)) {
    const p = r.point;
    const noop = find(data, model, 'no-op grpc', p.concurrency);
    // The naive server counts one run per request, so its batch columns read 1.00.
    const runs = r.server !== 'no-op grpc';
    const naive = r.server === 'batching on' || r.server === 'batching off' ? find(data, model, 'naive', p.concurrency) : undefined;
    lines.push(
      `| ${r.server} | ${p.concurrency} | ${f0(p.reqPerS)} | ${f0(p.reqPerS)} | ${f2(p.p50Ms)} | ${f2(p.p90Ms)} | ${f2(p.p99Ms)} | ${errorText(p.errors)} | ` +
        `${runs ? f2(batchRows(p)) : '-'} | ${runs ? f2(batchReqs(p)) : '-'} | ${f0(mainUsPerReq(p))} | ${f0(procUsPerReq(p))} | ${pct(workersBusy(p))} | ${f0(p.loadgenCpuPct)}% | ${f0(p.otherCpuPct)}% | ` +
        `${noop ? pct(p.reqPerS / noop.reqPerS) : '-'} | ${naive ? times(p.reqPerS / naive.reqPerS) : '-'} | ${pct(p.reqPerS / ort)} |`,
    );
  }
  return lines.join('\n');
}

export function verdict(target: string, value: number, limit: number, atMost: boolean, detail: string): Verdict {
  if (!Number.isFinite(value) || !Number.isFinite(limit)) return { target, pass: undefined, detail: `not measured (${detail})` };
  const pass = atMost ? value <= limit : value >= limit;
  return { target, pass, detail };
}

export function evaluateTargets(data: BenchData): Verdict[] {
  const out: Verdict[] = [];
  const has = (m: BenchModel) => data.models.includes(m);
  if (has('convnet')) {
    // The raw ceiling had every core; under load the generator shares them, which bounds what any server could
    // reach: the target (issue 10) is 0.85 of what the generator leaves of it, at c=4 and c=64.
    const ort = bestOrt(data, 'convnet', 2).rowsPerS;
    const cores = data.cores;
    for (const c of [4, 64]) {
      const p = find(data, 'convnet', 'batching on', c);
      if (!p) continue;
      const v = p.reqPerS;
      const left = Math.max(0, 1 - p.loadgenCpuPct / 100 / cores);
      out.push(verdict(`convnet c=${c} batching on: rows/s >= 0.85 x what the load generator leaves of the raw ORT ceiling`, v, 0.85 * ort * left, false,
        `${f0(v)} rows/s; the load generator took ${f0(p.loadgenCpuPct)}% of a core, leaving ${pct(left)} of the ${cores} cores to the server: ` +
          `${f0(ort * left)} rows/s of the raw ceiling's ${f0(ort)} (need ${f0(0.85 * ort * left)}), so tensorgate reached ${pct(v / (ort * left))} of what was left ` +
          `(${pct(v / ort)} of the whole ceiling)`));
    }
  }
  for (const m of (['mlp', 'sentiment'] as const).filter(has)) {
    const p = find(data, m, 'batching on', 64);
    const noop = noopBest(data, m);
    const v = p?.reqPerS ?? NaN;
    const ceil = noop?.reqPerS ?? NaN;
    out.push(verdict(`${m} c=64 batching on: req/s >= 0.9 x no-op gRPC ceiling`, v, 0.9 * ceil, false,
      `${f0(v)} req/s vs no-op ${f0(ceil)} (best, at c=${noop?.concurrency ?? '-'}; need ${f0(0.9 * ceil)}): ${pct(v / ceil)} of the ceiling`));
  }
  for (const m of data.models) {
    const p = find(data, m, 'batching on', 64);
    const us = p ? mainUsPerReq(p) : NaN;
    const noop = find(data, m, 'no-op grpc', 64);
    out.push(verdict(`${m} c=64 batching on: server main-thread CPU <= 50 µs/req`, us, 50, true,
      `${f0(us)} µs/req (no-op gRPC server at c=64: ${noop ? f0(mainUsPerReq(noop)) : '-'} µs/req)`));
  }
  for (const m of data.models) {
    const p = find(data, m, 'batching on', 16);
    const facts = data.facts[m]!;
    const rows = p ? batchRows(p) : NaN;
    const run2 = runMsAt(data, m, 2, rows);
    const run1 = runMsAt(data, m, 1, rows);
    const bound = facts.maxQueueDelayMs + 3 * run2;
    const noop = find(data, m, 'no-op grpc', 16);
    out.push(verdict(`${m} c=16 batching on: p99 <= max_queue_delay + 3 x batch run time`, p?.p99Ms ?? NaN, bound, true,
      `p99 ${f2(p?.p99Ms ?? NaN)} ms vs bound ${f2(bound)} ms = ${f2(facts.maxQueueDelayMs)} + 3 x ${f2(run2)} ms ` +
        `(raw ORT, 2 threads, at the observed ${f2(rows)} rows/batch; with the server's 1 thread per worker a run takes ${f2(run1)} ms, bound ${f2(facts.maxQueueDelayMs + 3 * run1)} ms). ` +
        `For scale: the no-op gRPC server's p99 at c=16 is ${f2(noop?.p99Ms ?? NaN)} ms`));
  }
  return [...out, ...naiveVerdicts(data)];
}

/** Batching on must beat the naive server everywhere, and the inference-bound convnet by a margin. */
function naiveVerdicts(data: BenchData): Verdict[] {
  const ratio = (m: BenchModel, c: number) => {
    const on = find(data, m, 'batching on', c);
    const naive = find(data, m, 'naive', c);
    return on && naive ? on.reqPerS / naive.reqPerS : NaN;
  };
  const out: Verdict[] = [];
  for (const m of data.models) {
    const points = [...new Set(data.rows.filter((r) => r.model === m).map((r) => r.point.concurrency))].sort((a, b) => a - b).map((c) => ({ c, x: ratio(m, c) }));
    const measured = points.filter((p) => Number.isFinite(p.x));
    const misses = measured.filter((p) => !(p.x > 1));
    const target = `${m} batching on: req/s > naive server at every concurrency`;
    const detail = `${points.map((p) => `c=${p.c} ${times(p.x)}`).join(', ')}${misses.length ? `; slower or equal at c=${misses.map((p) => p.c).join(', ')}` : ''}`;
    out.push(measured.length === 0 ? { target, pass: undefined, detail: `not measured (${detail || 'no points'})` } : { target, pass: misses.length === 0, detail });
  }
  if (data.models.includes('convnet')) {
    for (const c of [4, 64]) {
      const x = ratio('convnet', c);
      const on = find(data, 'convnet', 'batching on', c);
      const naive = find(data, 'convnet', 'naive', c);
      out.push(verdict(`convnet c=${c} batching on: req/s >= 1.5 x naive server`, x, 1.5, false, `${f0(on?.reqPerS ?? NaN)} vs naive ${f0(naive?.reqPerS ?? NaN)} req/s: ${times(x)}`));
    }
  }
  return out;
}

export function targetsText(verdicts: Verdict[]): string {
  return verdicts.map((v) => `- **${v.pass === undefined ? 'N/A' : v.pass ? 'PASS' : 'MISS'}** ${v.target}: ${v.detail}`).join('\n');
}
