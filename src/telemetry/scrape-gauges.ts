/**
 * The metrics read at scrape time rather than counted as things happen: state (model, version and breaker
 * states, placement, queue depths, cache size, generation sequences, jobs, feedback accuracy) and counts the
 * components already keep (cache hits and misses, worker restarts), so a scrape is never out of date and no
 * event can be missed. ServerMetrics (metrics.ts) registers them on its registry and says where to read.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { parseVersionKey } from '../core/model-key';
import type { VersionState } from '../repository/model-repository';
import type { BreakerState } from '../resilience/circuit-breaker';
import type { AccuracyReading, MetricsParts } from './metrics';

const VERSION_STATES: readonly VersionState[] = ['READY', 'UNAVAILABLE', 'LOADING', 'UNLOADING'];
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];

/** A version key ("model@version", src/core/model-key.ts) as metric labels. */
export function splitKey(key: string): { model: string; version: string } {
  return parseVersionKey(key) ?? { model: key, version: '' };
}

/** Where the scrape-time metrics read: the bound components (none before bind()), job counts, accuracy windows. */
export interface ScrapeSources {
  parts: () => MetricsParts | undefined;
  jobCounts: () => Record<string, number> | undefined;
  accuracy: () => Iterable<AccuracyReading>;
}

export function registerScrapeGauges(registry: Registry, read: ScrapeSources): void {
  const parts = read.parts;
  monotonic(registry, 'tensorgate_cache_hits_total', 'Result cache hits (answered from a stored entry).', () => parts()?.cache?.stats().hits);
  monotonic(registry, 'tensorgate_cache_misses_total', 'Result cache misses (computations started).', () => parts()?.cache?.stats().misses);
  monotonic(registry, 'tensorgate_cache_coalesced_total', 'Requests that joined an identical computation already running.', () => parts()?.cache?.stats().coalesced);
  monotonic(registry, 'tensorgate_worker_restarts_total', 'Inference workers replaced after they exited or got stuck.', () => parts()?.pool.workerRestarts);
  gauge(registry, 'tensorgate_cache_bytes', 'Bytes held by the result cache.', [], function () {
    const c = parts()?.cache;
    if (c) this.set(c.stats().bytes);
  });
  gauge(registry, 'tensorgate_cache_max_bytes', 'Byte bound of the result cache.', [], function () {
    const c = parts()?.cache;
    if (c) this.set(c.stats().maxBytes);
  });
  gauge(registry, 'tensorgate_cache_entries', 'Entries in the result cache.', [], function () {
    const c = parts()?.cache;
    if (c) this.set(c.stats().entries);
  });
  gauge(registry, 'tensorgate_queue_depth', 'Requests waiting in the scheduler queue, per READY version.', ['model', 'version'], function () {
    const p = parts();
    this.reset(); // series of unloaded versions disappear
    for (const m of p?.repository.list() ?? []) {
      for (const v of m.versions) if (v.state === 'READY') this.set({ model: m.name, version: v.version }, p!.scheduler.queueDepthOf(v.key));
    }
  });
  gauge(registry, 'tensorgate_generate_sequences', 'Generate: sequences decoding (running) and waiting for a place (waiting), per version.', ['model', 'version', 'state'], function () {
    this.reset();
    for (const c of parts()?.sequences?.counts() ?? []) {
      const { model, version } = splitKey(c.key);
      this.set({ model, version, state: 'running' }, c.running);
      this.set({ model, version, state: 'waiting' }, c.waiting);
    }
  });
  gauge(registry, 'tensorgate_jobs', 'Async jobs held by status: queued, running, and finished ones kept for their TTL (succeeded, failed, cancelled).', ['status'], function () {
    const counts = read.jobCounts();
    if (counts) for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
  });
  gauge(registry, 'tensorgate_execution_placement', 'Where each READY version runs: 1 for the current one (worker: inference worker threads; main_thread: inline, for versions whose measured runs take microseconds).', ['model', 'version', 'placement'], function () {
    const p = parts();
    this.reset();
    for (const m of p?.repository.list() ?? []) {
      for (const v of m.versions) {
        const where = v.state === 'READY' ? p!.scheduler.placementOf(v.key)?.where : undefined;
        if (where) for (const w of ['worker', 'main_thread']) this.set({ model: m.name, version: v.version, placement: w }, where === w ? 1 : 0);
      }
    }
  });
  gauge(registry, 'tensorgate_model_state', 'Model version state: 1 for the current one. A model without versions (e.g. invalid config) is version="" UNAVAILABLE.', ['model', 'version', 'state'], function () {
    this.reset();
    for (const m of parts()?.repository.list() ?? []) {
      const versions = m.versions.length > 0 ? m.versions : [{ version: '', state: 'UNAVAILABLE' as const }];
      for (const v of versions) for (const s of VERSION_STATES) this.set({ model: m.name, version: v.version, state: s }, v.state === s ? 1 : 0);
    }
  });
  // With --processes N each process keeps its own windows: the cluster's value is their average, not a sum.
  new Gauge({
    name: 'tensorgate_feedback_accuracy',
    help: 'Accuracy over the sliding window of the last feedbacks, per version with feedback since it loaded.',
    labelNames: ['model', 'version'],
    registers: [registry],
    aggregator: 'average',
    collect() {
      this.reset();
      for (const r of read.accuracy()) if (r.feedback > 0) this.set({ model: r.model, version: r.version }, r.accuracy);
    },
  });
  gauge(registry, 'tensorgate_feedback_window', 'Feedbacks in the accuracy window of each version (it holds the last window_size, GET /v2/models/{name}/accuracy).', ['model', 'version'], function () {
    this.reset();
    for (const r of read.accuracy()) this.set({ model: r.model, version: r.version }, r.feedback);
  });
  gauge(registry, 'tensorgate_breaker_state', 'Circuit breaker state per version: 1 for the current one. A READY version whose breaker has not been used yet is closed.', ['model', 'version', 'state'], function () {
    const p = parts();
    this.reset();
    if (!p) return;
    const states = new Map<string, BreakerState>();
    for (const m of p.repository.list()) for (const v of m.versions) if (v.state === 'READY') states.set(v.key, 'closed');
    for (const b of p.breakers.states()) states.set(b.key, b.state);
    for (const [key, state] of states) for (const s of BREAKER_STATES) this.set({ ...splitKey(key), state: s }, state === s ? 1 : 0);
  });
}

/**
 * A counter mirroring a count a component already keeps (prom-client counters have no set()). Each scrape
 * adds the growth since the previous scrape, so the exported value equals the source's count and only ever
 * rises. A smaller count means a fresh source (re-bound to a new cache/pool) whose whole count is new.
 */
function monotonic(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now === undefined) return;
      const growth = now >= last ? now - last : now;
      if (growth > 0) this.inc(growth);
      last = now;
    },
  });
}

function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: L[], collect: (this: Gauge<L>) => void): Gauge<L> {
  return new Gauge({ name, help, labelNames, registers: [registry], collect });
}
