/**
 * LiveSummary: what the web console's Watch page charts, computed in-process from the server's own Prometheus
 * registry (src/telemetry/metrics.ts), so no Prometheus is needed to watch a server.
 *
 * Every interval (1 s by default) it reads the few series it needs, subtracts the previous reading and turns
 * the differences into one sample per model: request and error rates, p50/p99 latency, mean batch size,
 * queue depth, time to first token, generated tokens per second; and the result cache's hit ratio (the cache
 * is shared by every model, so that one is server-wide). Percentiles come from the histograms' bucket counts
 * over the interval, interpolated within a bucket as Prometheus' histogram_quantile() does.
 *
 * It only works while someone watches: watch() starts the timer, which stops by itself after `idleStopMs`
 * without a watch() (an idle server does no sampling). Memory is bounded: the last `historySize` samples
 * (300 by default, five minutes at 1 s), each with one point per model the metrics name (models the
 * repository knows: ServerMetrics keeps client-supplied names out of its labels).
 */
import type { Registry } from 'prom-client';
import { actionOf } from '../security/call-actions';

/** The series read (names as metrics.ts registers them). */
export const SUMMARY_METRICS = {
  requests: 'tensorgate_requests_total',
  latency: 'tensorgate_request_duration_seconds',
  batchRows: 'tensorgate_batch_size_rows',
  queueDepth: 'tensorgate_queue_depth',
  ttft: 'tensorgate_generate_time_to_first_token_seconds',
  tokens: 'tensorgate_generate_tokens_total',
  cacheHits: 'tensorgate_cache_hits_total',
  cacheMisses: 'tensorgate_cache_misses_total',
  cacheCoalesced: 'tensorgate_cache_coalesced_total',
} as const;

/** One model over one interval. Figures that need observations in the interval are null without any. */
export interface ModelPoint {
  /** Calls that ran the model (actions infer and generate) per second, whatever their outcome. */
  requests_per_s: number;
  /** Of those, answers other than OK per second. */
  errors_per_s: number;
  /** End-to-end latency of those calls, in milliseconds. */
  p50_ms: number | null;
  p99_ms: number | null;
  /** Mean rows per execution (dynamic batching merges requests). */
  batch_rows: number | null;
  /** Requests waiting in the scheduler queue at the end of the interval, all versions. */
  queue_depth: number;
  /** Generation: median time to first token, in milliseconds. */
  ttft_p50_ms: number | null;
  /** Generation: tokens generated per second. */
  tokens_per_s: number;
}

export interface SummarySample {
  /** Increases by one per sample; GET /console/api/summary?after=SEQ answers the samples after SEQ. */
  seq: number;
  /** End of the interval, ms since the epoch. */
  time_ms: number;
  interval_s: number;
  /** Lookups answered without computing (hits and coalesced) / all lookups; null without lookups. */
  cache_hit_ratio: number | null;
  models: Record<string, ModelPoint>;
}

export interface LiveSummaryOptions {
  intervalMs?: number;
  historySize?: number;
  /** The timer stops this long after the last watch(). */
  idleStopMs?: number;
  /** Milliseconds since the epoch (tests give their own clock). */
  now?: () => number;
}

/** One reading of the series: metric name -> series key -> value (histograms: per `le` in the key). */
type Reading = Map<string, Map<string, { labels: Record<string, string | number>; value: number }>>;

interface Bucket {
  le: number;
  /** Cumulative count, as Prometheus buckets are. */
  count: number;
}

/** Methods that run a model: what the request rate and latency of a model count (not its metadata calls). */
const runsModel = (method: string) => {
  const action = actionOf(method);
  return action === 'infer' || action === 'generate';
};

/**
 * The q-quantile of observations in cumulative buckets, as Prometheus' histogram_quantile(): linear within the
 * bucket holding the rank, from the previous bound (0 for the first); a rank in the +Inf bucket gives the
 * largest finite bound. Null without observations. Written here because it runs on differences of two
 * readings, which no library of ours computes.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | null {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return lowerBound;
      const inBucket = b.count - lowerCount;
      return inBucket > 0 ? lowerBound + ((b.le - lowerBound) * (rank - lowerCount)) / inBucket : b.le;
    }
    lowerBound = b.le;
    lowerCount = b.count;
  }
  return lowerBound;
}

export class LiveSummary {
  private readonly intervalMs: number;
  private readonly historySize: number;
  private readonly idleStopMs: number;
  private readonly now: () => number;
  private readonly samples: SummarySample[] = [];
  private previous: { reading: Reading; time: number } | undefined;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastWatch = 0;
  private sampling: Promise<SummarySample | undefined> | undefined;

  constructor(
    private readonly registry: Registry,
    options: LiveSummaryOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.historySize = options.historySize ?? 300;
    this.idleStopMs = options.idleStopMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  get interval(): number {
    return this.intervalMs;
  }

  /** Keeps sampling for another `idleStopMs`; starts the timer (with a first reading) when it was stopped. */
  watch(): void {
    this.lastWatch = this.now();
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => {
      if (this.now() - this.lastWatch > this.idleStopMs) return this.stop();
      void this.sample();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer; the next watch() starts from a fresh reading (no interval spans the pause). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.previous = undefined;
  }

  /** The kept samples after `seq` (all of them for -1), oldest first. */
  since(seq: number): SummarySample[] {
    return this.samples.filter((s) => s.seq > seq);
  }

  /**
   * Reads the series and, when a previous reading exists, appends and returns the sample of the interval
   * between them; the first reading only sets the baseline. Readings never overlap.
   */
  sample(): Promise<SummarySample | undefined> {
    this.sampling ??= this.read().finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  private async read(): Promise<SummarySample | undefined> {
    const reading = await this.readSeries();
    const time = this.now();
    const previous = this.previous;
    this.previous = { reading, time };
    if (!previous || time <= previous.time) return undefined;
    const sample = summarize(previous.reading, reading, (time - previous.time) / 1000);
    const full: SummarySample = { seq: ++this.seq, time_ms: time, ...sample };
    this.samples.push(full);
    if (this.samples.length > this.historySize) this.samples.splice(0, this.samples.length - this.historySize);
    return full;
  }

  private async readSeries(): Promise<Reading> {
    const reading: Reading = new Map();
    for (const name of Object.values(SUMMARY_METRICS)) {
      const metric = this.registry.getSingleMetric(name);
      if (!metric) continue;
      const data = await metric.get();
      for (const v of data.values) {
        const series = (v as { metricName?: string }).metricName ?? name;
        let entries = reading.get(series);
        if (!entries) reading.set(series, (entries = new Map()));
        entries.set(JSON.stringify(v.labels), { labels: v.labels as Record<string, string | number>, value: v.value });
      }
    }
    return reading;
  }
}

/** The figures of one interval from two readings `seconds` apart. */
export function summarize(before: Reading, after: Reading, seconds: number): Omit<SummarySample, 'seq' | 'time_ms'> {
  const models = new Map<string, ModelPoint>();
  const point = (model: string): ModelPoint => {
    let p = models.get(model);
    if (!p) {
      p = { requests_per_s: 0, errors_per_s: 0, p50_ms: null, p99_ms: null, batch_rows: null, queue_depth: 0, ttft_p50_ms: null, tokens_per_s: 0 };
      models.set(model, p);
    }
    return p;
  };
  const rate = (n: number) => n / seconds;
  const { requests, latency, batchRows, queueDepth, ttft, tokens, cacheHits, cacheMisses, cacheCoalesced } = SUMMARY_METRICS;

  for (const { labels, delta } of deltas(before, after, requests)) {
    if (!labels.model || !runsModel(String(labels.method))) continue;
    const p = point(String(labels.model));
    p.requests_per_s += rate(delta);
    if (labels.code !== 'OK') p.errors_per_s += rate(delta);
  }
  for (const [model, buckets] of bucketsByModel(before, after, latency, (l) => runsModel(String(l.method)))) {
    const p = point(model);
    p.p50_ms = toMs(histogramQuantile(0.5, buckets));
    p.p99_ms = toMs(histogramQuantile(0.99, buckets));
  }
  const rowSums = sumByModel(deltas(before, after, `${batchRows}_sum`));
  for (const [model, executions] of sumByModel(deltas(before, after, `${batchRows}_count`))) {
    if (executions > 0) point(model).batch_rows = (rowSums.get(model) ?? 0) / executions;
  }
  for (const { labels, value } of after.get(queueDepth)?.values() ?? []) {
    if (labels.model) point(String(labels.model)).queue_depth += value;
  }
  for (const [model, buckets] of bucketsByModel(before, after, ttft)) point(model).ttft_p50_ms = toMs(histogramQuantile(0.5, buckets));
  for (const { labels, delta } of deltas(before, after, tokens)) {
    if (labels.model && labels.direction === 'out') point(String(labels.model)).tokens_per_s += rate(delta);
  }

  const total = (name: string) => deltas(before, after, name).reduce((n, d) => n + d.delta, 0);
  const answered = total(cacheHits) + total(cacheCoalesced);
  const lookups = answered + total(cacheMisses);
  return { interval_s: seconds, cache_hit_ratio: lookups > 0 ? answered / lookups : null, models: Object.fromEntries([...models].sort(([a], [b]) => a.localeCompare(b))) };
}

const toMs = (seconds: number | null) => (seconds === null ? null : seconds * 1000);

/** Growth of each series of `name` between two readings; a series that shrank was reset, so all of it is new. */
function deltas(before: Reading, after: Reading, name: string): { labels: Record<string, string | number>; delta: number }[] {
  const old = before.get(name);
  return [...(after.get(name) ?? new Map()).entries()].map(([key, { labels, value }]) => {
    const was = old?.get(key)?.value ?? 0;
    return { labels, delta: value >= was ? value - was : value };
  });
}

function sumByModel(items: { labels: Record<string, string | number>; delta: number }[]): Map<string, number> {
  const sums = new Map<string, number>();
  for (const { labels, delta } of items) if (labels.model) sums.set(String(labels.model), (sums.get(String(labels.model)) ?? 0) + delta);
  return sums;
}

/** A histogram's bucket growth per model, its other labels (protocol, method, code, version) added together. */
function bucketsByModel(before: Reading, after: Reading, name: string, keep: (labels: Record<string, string | number>) => boolean = () => true): Map<string, Bucket[]> {
  const byModel = new Map<string, Map<number, number>>();
  for (const { labels, delta } of deltas(before, after, `${name}_bucket`)) {
    if (!labels.model || !keep(labels)) continue;
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    let counts = byModel.get(String(labels.model));
    if (!counts) byModel.set(String(labels.model), (counts = new Map()));
    counts.set(le, (counts.get(le) ?? 0) + delta);
  }
  return new Map([...byModel].map(([model, counts]) => [model, [...counts].map(([le, count]) => ({ le, count }))]));
}
