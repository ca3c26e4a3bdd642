/**
 * The soak's shared types (load mix, counts, samples) and its report: targets judged, a timeline, and the
 * facts needed to read it (machine, commit, command).
 */
import { machine, revision } from './machine-facts';

export type SoakKind = 'mlp' | 'convnet' | 'sentiment-tokens' | 'sentiment-text';
/** Callers per kind, as shares of the concurrency: cheap requests dominate, convnet keeps the workers busy. */
export const SOAK_MIX: Record<SoakKind, number> = { mlp: 0.35, convnet: 0.2, 'sentiment-tokens': 0.15, 'sentiment-text': 0.3 };

export interface SoakLoadCounts {
  ok: Record<SoakKind, number>;
  /** gRPC status name -> count. */
  errors: Record<string, number>;
  /** Sum of OK latencies in ms per kind (mean = sum / ok). */
  latencyMsSum: Record<SoakKind, number>;
}

/** One sample: RSS every second; the rest every 5 s (from /metrics and the load child). */
export interface Sample {
  t: number;
  rss: number;
  reqPerS?: number;
  heapUsed?: number;
  heapTotal?: number;
  external?: number;
  loopP99Ms?: number;
  loopMaxMs?: number;
  cacheBytes?: number;
  cacheEntries?: number;
  /** Cumulative since the server started. */
  gcCount?: number;
  gcSeconds?: number;
  gcOver100ms?: number;
}

export interface SoakResult extends ReturnType<typeof machineFacts> {
  command: string;
  minutes: number;
  warmupMinutes: number;
  concurrency: number;
  mix: Record<SoakKind, number>;
  serverArgs: string[];
  idleRss: number;
  samples: Sample[];
  requests: SoakLoadCounts;
  errors: Record<string, number>;
  health: { checks: number; errors: number; p50Ms: number; p99Ms: number; maxMs: number; p99AllMs: number };
  final: Record<string, number>;
}

export function machineFacts() {
  return { date: new Date().toISOString(), machine: machine(), commit: revision() };
}

export const RSS_GROWTH_LIMIT = 0.05;
export const HEALTH_P99_LIMIT_MS = 50;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const mb = (b: number | undefined) => (b === undefined || !Number.isFinite(b) ? '-' : (b / 1e6).toFixed(0));
const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(1));

/**
 * RSS growth after warm-up: the median RSS of the last 15 s against the median of the 10 s around the end of
 * warm-up (medians, so one GC's momentary peak does not decide it); plus the least-squares slope in MB/min.
 */
export function rssGrowth(r: SoakResult, from = r.warmupMinutes * 60): { atWarm: number; atEnd: number; growth: number; slopeMbPerMin: number; peak: number } {
  const warm = from;
  const end = r.samples[r.samples.length - 1]?.t ?? 0;
  const atWarm = median(r.samples.filter((s) => Math.abs(s.t - warm) <= 5).map((s) => s.rss));
  const atEnd = median(r.samples.filter((s) => s.t >= end - 15).map((s) => s.rss));
  const after = r.samples.filter((s) => s.t >= warm);
  const mt = after.reduce((a, s) => a + s.t, 0) / after.length;
  const mr = after.reduce((a, s) => a + s.rss, 0) / after.length;
  const cov = after.reduce((a, s) => a + (s.t - mt) * (s.rss - mr), 0);
  const vt = after.reduce((a, s) => a + (s.t - mt) ** 2, 0);
  return { atWarm, atEnd, growth: atEnd / atWarm - 1, slopeMbPerMin: ((cov / vt) * 60) / 1e6, peak: Math.max(...r.samples.map((s) => s.rss)) };
}

/**
 * The leak check proper: growth from a minute after the cache filled (V8 grows its heap for a while after
 * the entries stop growing) to the end. Empty when the run ended too soon after the fill to say.
 */
function afterFull(r: SoakResult, filledAt: number): string {
  const from = filledAt + 60;
  const end = r.samples[r.samples.length - 1]?.t ?? 0;
  if (end - from < 60) return '';
  const g = rssGrowth(r, from);
  return `; from ${from.toFixed(0)} s (a minute after it filled) to the end RSS went ${mb(g.atWarm)} -> ${mb(g.atEnd)} MB: ${(g.growth * 100).toFixed(1)}%`;
}

export function soakReport(r: SoakResult): { md: string; verdicts: { target: string; pass: boolean; detail: string }[] } {
  const g = rssGrowth(r);
  const cacheOn = (r.final.cache_max_bytes ?? 0) > 0;
  const full = cacheOn ? r.samples.find((s) => s.cacheBytes !== undefined && s.cacheBytes >= 0.98 * r.final.cache_max_bytes!) : undefined;
  const verdicts = [
    {
      target: `RSS grows < ${RSS_GROWTH_LIMIT * 100}% after the first ${r.warmupMinutes} min`,
      pass: g.growth < RSS_GROWTH_LIMIT,
      detail:
        `${mb(g.atWarm)} MB at ${r.warmupMinutes * 60} s -> ${mb(g.atEnd)} MB at the end: ${(g.growth * 100).toFixed(1)}% ` +
        `(slope ${f1(g.slopeMbPerMin)} MB/min after warm-up; peak ${mb(g.peak)} MB; idle before load ${mb(r.idleRss)} MB). ` +
        (!cacheOn ? 'The result cache is off.' : full ? `The result cache reached its bound at ${full.t.toFixed(0)} s${afterFull(r, full.t)}.` : 'The result cache never reached its bound.'),
    },
    {
      target: `health-check p99 < ${HEALTH_P99_LIMIT_MS} ms at full load`,
      pass: r.health.p99Ms < HEALTH_P99_LIMIT_MS,
      detail: `p99 ${f1(r.health.p99Ms)} ms, p50 ${f1(r.health.p50Ms)} ms, max ${f1(r.health.maxMs)} ms over ${r.health.checks} checks (after warm-up; p99 over the whole run ${f1(r.health.p99AllMs)} ms); ${r.health.errors} failed`,
    },
  ];
  const ok = Object.values(r.requests.ok).reduce((a, b) => a + b, 0);
  const seconds = r.samples[r.samples.length - 1]?.t ?? 1;
  const last = [...r.samples].reverse().find((s) => s.gcCount !== undefined);
  const m = r.machine;
  const lines = [
    `# tensorgate soak, ${r.date}`,
    '',
    `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, @grpc/grpc-js ${m.grpcJs}`,
    `- tensorgate at ${r.commit}`,
    `- command: \`${r.command}\` (server: \`tensorgate ${r.serverArgs.join(' ')}\`, its defaults otherwise: result cache ${mb(r.final.cache_max_bytes)} MB)`,
    `- ${r.minutes} min, the first ${r.warmupMinutes} min counted as warm-up; closed-loop load from a separate process, c=${r.concurrency} on one channel, ` +
      `callers split ${Object.entries(r.mix).map(([k, v]) => `${k} ${(v * 100).toFixed(0)}%`).join(', ')}; every request has fresh random input ` +
      '(nearly every answer is a new cache entry); health checks every 100 ms on their own channel; RSS from /proc every second, ' +
      'heap, event-loop delay and GC from /metrics every 5 s',
    `- answered: ${ok} requests (${(ok / seconds).toFixed(0)}/s: ${Object.entries(r.requests.ok).map(([k, v]) => `${k} ${v}`).join(', ')}); ` +
      `errors: ${Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    `- GC: ${last?.gcCount ?? '-'} collections, ${f1(last?.gcSeconds)} s in total, ${last?.gcOver100ms ?? '-'} longer than 100 ms`,
    '',
    '## Targets',
    '',
    ...verdicts.map((v) => `- **${v.pass ? 'PASS' : 'MISS'}** ${v.target}: ${v.detail}`),
    '',
    '## Timeline (every 30 s)',
    '',
    '| t s | RSS MB | heap used MB | heap total MB | external MB | cache MB | cache entries | req/s | loop p99 ms | loop max ms | GCs > 100 ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of r.samples) {
    if (s.gcCount === undefined || Math.round(s.t) % 30 !== 0) continue;
    lines.push(
      `| ${s.t.toFixed(0)} | ${mb(s.rss)} | ${mb(s.heapUsed)} | ${mb(s.heapTotal)} | ${mb(s.external)} | ${mb(s.cacheBytes)} | ${s.cacheEntries ?? '-'} | ` +
        `${s.reqPerS?.toFixed(0) ?? '-'} | ${f1(s.loopP99Ms)} | ${f1(s.loopMaxMs)} | ${s.gcOver100ms ?? '-'} |`,
    );
  }
  return { md: `${lines.join('\n')}\n`, verdicts };
}
