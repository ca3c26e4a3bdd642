/**
 * The "cache-hit path" section: tensorgate with its result cache on, sent one fixed payload, so every
 * request after the first is answered from the cache and no model runs. That path is gRPC decode, request
 * hashing, a cache lookup and encode: the closest tensorgate gets to the no-op grpc-js server, which is
 * its ceiling (target: >= 0.9 x the no-op req/s at c=64). The server's own cache stats over the window
 * confirm the hits (the hit ratio must be ~100%, or the section measures something else).
 */
import type { ServerChild } from './child';
import type { LoadPoint } from './load-generator';
import { errorText, f0, f2, find, pct, verdict, type BenchData, type Verdict } from './report';
import type { BenchModel } from './workload';

/** A load point measured the way run.ts measures every point (re-measured when disturbed). */
export type MeasuredPoint = LoadPoint & { attempts: number };
export type Measure = (server: ServerChild, model: BenchModel, concurrency: number, companions?: ServerChild[]) => Promise<MeasuredPoint>;

/** 64 MiB: ample for one entry, and smaller than the server's default so the figure is not the default's. */
export const CACHE_BENCH_BYTES = 64 * 1024 * 1024;
export const CACHE_MODEL: BenchModel = 'mlp';
const CACHE_CONCURRENCY = [1, 16, 64];
const TARGET_C = 64;

/** The wanted concurrencies that BENCH_CONCURRENCY includes; all of BENCH_CONCURRENCY when it has none of them. */
export function pickConcurrency(wanted: number[], configured: number[]): number[] {
  const both = configured.filter((c) => wanted.includes(c));
  return both.length > 0 ? both : configured;
}

export interface CacheHitResult {
  model: BenchModel;
  cacheMaxBytes: number;
  points: MeasuredPoint[];
}

/** Lookups the server's cache saw in the window (its own count of requests on this path). */
const lookups = (p: LoadPoint) => (p.server.cache ? p.server.cache.hits + p.server.cache.misses + p.server.cache.coalesced : NaN);
export const hitRatio = (p: LoadPoint) => (p.server.cache ? p.server.cache.hits / lookups(p) : NaN);
const mainUsPerLookup = (p: LoadPoint) => p.server.mainCpuUs / lookups(p);
const procUsPerLookup = (p: LoadPoint) => p.server.processCpuUs / lookups(p);

export async function measureCacheHit(server: ServerChild, configured: number[], measure: Measure, log: (l: string) => void): Promise<CacheHitResult> {
  const points: MeasuredPoint[] = [];
  for (const c of pickConcurrency(CACHE_CONCURRENCY, configured)) {
    const p = await measure(server, CACHE_MODEL, c);
    points.push(p);
    const errors = Object.values(p.errors).reduce((a, b) => a + b, 0);
    log(
      `  ${'cache hit'.padEnd(12)} ${CACHE_MODEL.padEnd(9)} c=${String(c).padEnd(3)} ${p.reqPerS.toFixed(0).padStart(6)} req/s  p99 ${p.p99Ms.toFixed(2)} ms` +
        `  main ${mainUsPerLookup(p).toFixed(0)} µs/req  hits ${pct(hitRatio(p))} of ${lookups(p)}${errors ? `  ERRORS ${JSON.stringify(p.errors)}` : ''}`,
    );
  }
  return { model: CACHE_MODEL, cacheMaxBytes: CACHE_BENCH_BYTES, points };
}

export function cacheHitSection(r: CacheHitResult | undefined, data: BenchData): string {
  if (!r) return [`## Cache-hit path`, '', `Not measured: BENCH_MODELS leaves out ${CACHE_MODEL} (the no-op ceiling of the same model is needed).`].join('\n');
  const lines = [
    '## Cache-hit path',
    '',
    `${r.model} with the result cache on (${(r.cacheMaxBytes / 2 ** 20).toFixed(0)} MiB, bundled config) and the same fixed payload on every request, so after the first every request is a cache hit and no model runs. ` +
      'Hits: the server\'s cache stats over the window (hits / (hits + misses + coalesced)). main/process µs/req: per cache lookup. ' +
      'vs no-op: against the no-op grpc-js server of the same run at the same concurrency (the Load results table).',
    '',
    '| c | req/s | p50 ms | p90 ms | p99 ms | errors | cache hits | lookups | main µs/req | process µs/req | loadgen CPU | other CPU | no-op req/s | vs no-op | no-op main µs/req |',
    '|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of r.points) {
    const noop = find(data, r.model, 'no-op grpc', p.concurrency);
    const noopMain = noop && noop.server.requests > 0 ? noop.server.mainCpuUs / noop.server.requests : NaN;
    lines.push(
      `| ${p.concurrency} | ${f0(p.reqPerS)} | ${f2(p.p50Ms)} | ${f2(p.p90Ms)} | ${f2(p.p99Ms)} | ${errorText(p.errors)} | ${hitRatio(p) >= 0.9995 ? '100%' : `${(hitRatio(p) * 100).toFixed(1)}%`} | ${f0(lookups(p))} | ` +
        `${f0(mainUsPerLookup(p))} | ${f0(procUsPerLookup(p))} | ${f0(p.loadgenCpuPct)}% | ${f0(p.otherCpuPct)}% | ${noop ? f0(noop.reqPerS) : '-'} | ${noop ? pct(p.reqPerS / noop.reqPerS) : '-'} | ${f0(noopMain)} |`,
    );
  }
  return lines.join('\n');
}

export function cacheHitVerdicts(r: CacheHitResult | undefined, data: BenchData): Verdict[] {
  const target = `${CACHE_MODEL} c=${TARGET_C} cache hits: req/s >= 0.9 x no-op gRPC ceiling at c=${TARGET_C}`;
  const p = r?.points.find((x) => x.concurrency === TARGET_C);
  const noop = find(data, CACHE_MODEL, 'no-op grpc', TARGET_C);
  const v = p?.reqPerS ?? NaN;
  const ceil = noop?.reqPerS ?? NaN;
  if (!r || !p) {
    const why = !r ? `${CACHE_MODEL} not in BENCH_MODELS` : `c=${TARGET_C} not in BENCH_CONCURRENCY`;
    return [{ target, pass: undefined, detail: `not measured (${why})` }];
  }
  const hits = hitRatio(p);
  const out = verdict(target, v, 0.9 * ceil, false,
    `${f0(v)} req/s vs no-op ${f0(ceil)} (need ${f0(0.9 * ceil)}): ${pct(v / ceil)} of the ceiling; ` +
      `main thread ${f0(mainUsPerLookup(p))} µs/req (no-op ${noop && noop.server.requests > 0 ? f0(noop.server.mainCpuUs / noop.server.requests) : '-'}); cache hits ${(hits * 100).toFixed(1)}% of ${f0(lookups(p))} lookups`);
  // Anything but (nearly) all hits means the path measured was not the cache-hit path.
  if (!(hits >= 0.99)) return [{ target, pass: undefined, detail: `not the cache-hit path: ${out.detail}` }];
  return [out];
}
