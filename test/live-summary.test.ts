/**
 * The console's live figures (src/telemetry/live-summary.ts) from known observations: rates, errors and
 * percentiles over an interval from the server's own metrics (ServerMetrics), batch sizes, queue depth and the
 * cache's hit ratio from series of the same names, counter resets, the bounded history, and the timer that
 * samples only while watched.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BATCH_BUCKETS, ServerMetrics } from '../src/telemetry/metrics';
import { histogramQuantile, LiveSummary, SUMMARY_METRICS } from '../src/telemetry/live-summary';
import type { RequestRecord } from '../src/api/request-record';

const close = (actual: number | null | undefined, expected: number) => {
  assert.ok(actual !== null && actual !== undefined && Math.abs(actual - expected) < 1e-9, `${actual} is not ${expected}`);
};

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const request = (r: Partial<RequestRecord>): RequestRecord => ({ protocol: 'grpc', method: 'Predict', model: 'mlp', version: '1', code: 'OK', seconds: 0.001, ...r });

test('histogramQuantile interpolates within the bucket holding the rank, as histogram_quantile() does', () => {
  const buckets = [
    { le: 1, count: 0 },
    { le: 2, count: 5 },
    { le: 4, count: 10 },
    { le: Infinity, count: 10 },
  ];
  assert.equal(histogramQuantile(0.5, buckets), 2); // rank 5: the top of (1, 2]
  assert.equal(histogramQuantile(0.75, buckets), 3); // rank 7.5: halfway through (2, 4]
  assert.equal(histogramQuantile(0.1, buckets), 1.2); // rank 1: a fifth of (1, 2]
  assert.equal(histogramQuantile(0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 4 }]), 1, 'a rank in +Inf gives the largest finite bound');
  assert.equal(histogramQuantile(0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }]), null, 'no observations, no quantile');
});

test('requests, errors, latency percentiles, time to first token and tokens/s of an interval, from ServerMetrics', async () => {
  const metrics = new ServerMetrics();
  const time = clock();
  const summary = new LiveSummary(metrics.registry, { now: time.now });
  assert.equal(await summary.sample(), undefined, 'the first reading is the baseline');

  // 10 calls that ran mlp: 5 at 0.3 ms (2 of them refused) and 5 at 3 ms; buckets ... 0.25, 0.5 ... 2.5, 5 ms.
  for (let i = 0; i < 5; i++) metrics.observeRequest(request({ seconds: 0.0003, code: i < 2 ? 'INVALID_ARGUMENT' : 'OK' }));
  for (let i = 0; i < 5; i++) metrics.observeRequest(request({ seconds: 0.003, protocol: 'http', method: 'POST /v2/models/{name}/infer' }));
  // Not calls that run a model: metadata about mlp, and a listing naming none.
  metrics.observeRequest(request({ method: 'GetModel', seconds: 0.5 }));
  metrics.observeRequest(request({ method: 'ListModels', model: '', version: '', seconds: 0.5 }));
  // Generation: 3 first tokens at 20 ms (bucket 10..25 ms), 30 tokens out, 100 in.
  metrics.observeRequest(request({ method: 'Generate', model: 'tiny-lm', seconds: 0.2 }));
  for (let i = 0; i < 3; i++) metrics.observeTimeToFirstToken('tiny-lm', 0.02);
  metrics.countTokens('tiny-lm', 'out', 30);
  metrics.countTokens('tiny-lm', 'in', 100);
  time.advance(2000);

  const s = await summary.sample();
  assert.ok(s);
  assert.equal(s.seq, 1);
  assert.equal(s.interval_s, 2);
  assert.deepEqual(Object.keys(s.models), ['mlp', 'tiny-lm']);
  const mlp = s.models.mlp!;
  close(mlp.requests_per_s, 5);
  close(mlp.errors_per_s, 1);
  close(mlp.p50_ms, 0.5); // rank 5 of 10: the top of (0.25, 0.5] ms
  close(mlp.p99_ms, 2.5 + 2.5 * (4.9 / 5)); // rank 9.9: 4.9 of the 5 in (2.5, 5] ms
  assert.equal(mlp.ttft_p50_ms, null);
  assert.equal(mlp.tokens_per_s, 0);
  const lm = s.models['tiny-lm']!;
  close(lm.requests_per_s, 0.5);
  close(lm.ttft_p50_ms, 10 + 15 * (1.5 / 3)); // rank 1.5 of 3 in (10, 25] ms
  close(lm.tokens_per_s, 15);
  assert.equal(s.cache_hit_ratio, null, 'no cache lookups');

  time.advance(1000);
  const quiet = await summary.sample();
  assert.ok(quiet);
  assert.equal(quiet.models.mlp!.requests_per_s, 0);
  assert.equal(quiet.models.mlp!.p50_ms, null, 'no calls in the interval: no percentile');
  assert.equal(quiet.models['tiny-lm']!.tokens_per_s, 0);
  assert.deepEqual(summary.since(1).map((x) => x.seq), [2]);
});

test('batch size, queue depth and the cache hit ratio from their series; a counter that was reset counts whole', async () => {
  const registry = new Registry();
  const batch = new Histogram({ name: SUMMARY_METRICS.batchRows, help: 'h', labelNames: ['model', 'version'], buckets: BATCH_BUCKETS, registers: [registry] });
  const queue = new Gauge({ name: SUMMARY_METRICS.queueDepth, help: 'h', labelNames: ['model', 'version'], registers: [registry] });
  const hits = new Counter({ name: SUMMARY_METRICS.cacheHits, help: 'h', registers: [registry] });
  const misses = new Counter({ name: SUMMARY_METRICS.cacheMisses, help: 'h', registers: [registry] });
  const coalesced = new Counter({ name: SUMMARY_METRICS.cacheCoalesced, help: 'h', registers: [registry] });
  const time = clock();
  const summary = new LiveSummary(registry, { now: time.now });
  hits.inc(100);
  await summary.sample();

  batch.observe({ model: 'mlp', version: '1' }, 4);
  batch.observe({ model: 'mlp', version: '2' }, 8);
  queue.set({ model: 'mlp', version: '1' }, 3);
  queue.set({ model: 'mlp', version: '2' }, 2);
  hits.inc(6);
  coalesced.inc(2);
  misses.inc(2);
  time.advance(1000);
  const s = await summary.sample();
  assert.ok(s);
  close(s.models.mlp!.batch_rows, 6);
  assert.equal(s.models.mlp!.queue_depth, 5);
  close(s.cache_hit_ratio, 0.8); // (6 hits + 2 coalesced) / 10 lookups

  hits.reset(); // 106 -> 0: a fresh source, whose whole count is new
  hits.inc(3);
  misses.inc(1);
  time.advance(1000);
  const after = await summary.sample();
  close(after!.cache_hit_ratio, 0.75);
  assert.equal(after!.models.mlp!.batch_rows, null, 'no executions in the interval');
});

test('the history keeps the last historySize samples; watch() samples on a timer until stopped', async () => {
  const metrics = new ServerMetrics();
  const time = clock();
  const bounded = new LiveSummary(metrics.registry, { now: time.now, historySize: 3 });
  for (let i = 0; i < 6; i++) {
    await bounded.sample();
    time.advance(1000);
  }
  assert.deepEqual(bounded.since(-1).map((s) => s.seq), [3, 4, 5]);

  const live = new LiveSummary(metrics.registry, { intervalMs: 10 });
  live.watch();
  try {
    const deadline = Date.now() + 10_000;
    while (live.since(-1).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.ok(live.since(-1).length >= 2, 'the timer took samples while watched');
  } finally {
    live.stop();
  }
});
