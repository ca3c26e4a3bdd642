/**
 * Per model version request statistics in the shape of the v2 protocol's statistics extension (Triton's
 * ModelStatistics: counts and cumulative nanoseconds). Fed by ServerMetrics from the same observations as
 * the Prometheus metrics (each finished request's record, each execution's 'batch-done'), so the two views
 * always agree.
 *
 * What tensorgate measures maps onto the protocol's fields as:
 *   success / fail   whole requests, as the front door timed them (envelope), by outcome
 *   queue            time waiting in the scheduler's queue
 *   compute_infer    the execution that served the request (the whole run in the worker or inline)
 *   compute_input,   counted with compute_infer; their ns stay 0: tensorgate hands tensors to ONNX Runtime
 *   compute_output   without a separate copy step to time (the run's time includes it)
 *   cache_hit        requests answered from the result cache, with their whole time
 *   cache_miss       requests that looked in the cache and ran the model; ns 0 (a lookup is a hash probe)
 * Like the Prometheus counters they mirror, a version's figures continue across reloads of it (Triton starts
 * them from zero): a reload without downtime serves from two loads at once for a while.
 */
import type { RequestRecord } from '../api/request-record';

interface Duration {
  count: number;
  ns: number;
}

const duration = (): Duration => ({ count: 0, ns: 0 });

class VersionStatistics {
  lastInference = 0;
  inferenceCount = 0;
  executionCount = 0;
  readonly success = duration();
  readonly fail = duration();
  readonly queue = duration();
  readonly computeInfer = duration();
  readonly cacheHit = duration();
  readonly cacheMiss = duration();
  /** By batch size (rows of the execution): executions and their run time. */
  readonly batches = new Map<number, Duration>();
}

export interface StatisticsSources {
  /**
   * The READY version a request counts against: `version` when it is READY, the version a request without
   * one gets when it is '' (refused before resolution), undefined otherwise (unknown model or version).
   */
  servedVersion(model: string, version: string): string | undefined;
  /** Whether the model's results go through the result cache (so a computed answer was a miss). */
  cached(model: string): boolean;
}

const ns = (seconds: number) => Math.round(seconds * 1e9);
const add = (d: Duration, nanos: number) => {
  d.count++;
  d.ns += nanos;
};
const out = (d: Duration) => ({ count: d.count, ns: Math.round(d.ns) });

export class ModelStatistics {
  private readonly byVersion = new Map<string, VersionStatistics>();
  private sources: StatisticsSources | undefined;

  bind(sources: StatisticsSources | undefined): void {
    this.sources = sources;
  }

  /** A finished request of an inference method (record.inference). */
  observeRequest(r: RequestRecord): void {
    if (!r.inference || !this.sources) return;
    // A request refused before its version was resolved counts against the version it would have reached.
    const version = this.sources.servedVersion(r.model, r.version);
    if (version === undefined) return;
    const s = this.of(r.model, version);
    s.lastInference = Date.now();
    if (r.code !== 'OK') {
      add(s.fail, ns(r.seconds));
      return;
    }
    add(s.success, ns(r.seconds));
    if (r.cached) {
      add(s.cacheHit, ns(r.seconds));
      return;
    }
    if (this.sources.cached(r.model)) add(s.cacheMiss, 0);
    if (r.queueSeconds !== undefined) add(s.queue, ns(r.queueSeconds));
    if (r.computeSeconds !== undefined) add(s.computeInfer, ns(r.computeSeconds));
  }

  /** One execution of a version (a merged batch counts once). */
  observeExecution(model: string, version: string, rows: number, computeMs: number, ok: boolean): void {
    if (!ok) return;
    const s = this.of(model, version);
    s.executionCount++;
    s.inferenceCount += rows;
    let b = s.batches.get(rows);
    if (!b) s.batches.set(rows, (b = duration()));
    add(b, ns(computeMs / 1000));
  }

  /** The protocol's ModelStatistics entries for the given READY versions (field names as in the .proto). */
  snapshot(versions: { model: string; version: string }[]) {
    return versions.map(({ model, version }) => {
      const s = this.byVersion.get(`${model}/${version}`) ?? new VersionStatistics();
      const computeCount = s.computeInfer.count;
      return {
        name: model,
        version,
        last_inference: s.lastInference,
        inference_count: s.inferenceCount,
        execution_count: s.executionCount,
        inference_stats: {
          success: out(s.success),
          fail: out(s.fail),
          queue: out(s.queue),
          compute_input: { count: computeCount, ns: 0 },
          compute_infer: out(s.computeInfer),
          compute_output: { count: computeCount, ns: 0 },
          cache_hit: out(s.cacheHit),
          cache_miss: out(s.cacheMiss),
        },
        batch_stats: [...s.batches.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([size, d]) => ({ batch_size: size, compute_input: { count: d.count, ns: 0 }, compute_infer: out(d), compute_output: { count: d.count, ns: 0 } })),
      };
    });
  }

  private of(model: string, version: string): VersionStatistics {
    const key = `${model}/${version}`;
    let s = this.byVersion.get(key);
    if (!s) this.byVersion.set(key, (s = new VersionStatistics()));
    return s;
  }
}
