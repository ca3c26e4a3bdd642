/**
 * The request path's cell metrics (src/telemetry/cell-metrics.ts) must export exactly what prom-client's own
 * Counter, Gauge and Histogram export for the same observations: the /metrics text, the JSON get() that the
 * --processes aggregation and the console's live summary read, and the aggregated view of two processes.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CellCounter, CellGauge, CellHistogram, CellIndex } from '../src/telemetry/cell-metrics';
import { LATENCY_BUCKETS } from '../src/telemetry/metrics';

/** The same metrics twice: prom-client's and ours, fed the same observations by `feed`. */
function twin(feed: (m: { count(labels: Record<string, string>, n: number): void; gauge(labels: Record<string, string>, n: number): void; observe(labels: Record<string, string>, v: number): void }) => void) {
  const theirs = new Registry();
  const ours = new Registry();
  const names = ['model', 'code'];
  const c1 = new Counter({ name: 't_requests_total', help: 'Requests.', labelNames: names, registers: [theirs] });
  const g1 = new Gauge({ name: 't_inflight', help: 'In flight.', labelNames: names, registers: [theirs] });
  const h1 = new Histogram({ name: 't_seconds', help: 'Latency.', labelNames: names, buckets: LATENCY_BUCKETS, registers: [theirs] });
  const c2 = new CellCounter(ours, 't_requests_total', 'Requests.', names);
  const g2 = new CellGauge(ours, 't_inflight', 'In flight.', names);
  const h2 = new CellHistogram(ours, 't_seconds', 'Latency.', names, LATENCY_BUCKETS);
  feed({
    count: (labels, n) => (c1.inc(labels, n), c2.cell(labels).inc(n)),
    gauge: (labels, n) => (g1.inc(labels, n), g2.cell(labels).inc(n)),
    observe: (labels, v) => (h1.observe(labels, v), h2.cell(labels).observe(v)),
  });
  return { theirs, ours };
}

const sample = (m: Parameters<Parameters<typeof twin>[0]>[0]) => {
  const values = [0.00005, 0.0001, 0.0003, 0.002, 0.002, 0.7, 3, 11, 42, 0];
  values.forEach((v, i) => m.observe({ model: i % 3 ? 'mlp' : 'convnet', code: i % 4 ? 'OK' : 'INVALID_ARGUMENT' }, v));
  m.count({ model: 'mlp', code: 'OK' }, 1);
  m.count({ model: 'mlp', code: 'OK' }, 5);
  m.count({ model: '', code: 'NOT_FOUND' }, 1);
  m.gauge({ model: 'mlp', code: 'OK' }, 1);
  m.gauge({ model: 'mlp', code: 'OK' }, -1);
  m.gauge({ model: 'convnet', code: 'OK' }, 2);
};

test('cell metrics give the same /metrics text and JSON as prom-client for the same observations', async () => {
  const { theirs, ours } = twin(sample);
  assert.equal(await ours.metrics(), await theirs.metrics());
  assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
});

test('two processes of cell metrics aggregate as prom-client metrics do (--processes)', async () => {
  const a = twin(sample);
  const b = twin((m) => {
    m.observe({ model: 'mlp', code: 'OK' }, 0.004);
    m.count({ model: 'mlp', code: 'OK' }, 2);
  });
  const theirs = AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()] as never);
  const ours = AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()] as never);
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test('a cell is resolved once and keeps counting; bad values and labels are refused without harm', async () => {
  const registry = new Registry();
  const h = new CellHistogram(registry, 'x_seconds', 'X.', ['model'], [1, 2]);
  const cell = h.cell({ model: 'm' });
  assert.equal(h.cell({ model: 'm' }), cell);
  cell.observe(1.5);
  cell.observe(Number.NaN);
  cell.observe(Infinity);
  cell.observe(5);
  assert.deepEqual([...cell.counts], [0, 1]);
  assert.equal(cell.count, 2);
  assert.equal(cell.sum, 6.5);
  const counter = new CellCounter(registry, 'x_total', 'X.', ['model']);
  const c = counter.cell({ model: 'm' });
  c.inc(-1);
  c.inc(Number.NaN);
  c.inc(2);
  assert.equal(c.value, 2);
  assert.throws(() => counter.cell({ modle: 'm' }), /metric x_total has no label 'modle' \(labels: model\)/);
  assert.throws(() => new CellCounter(registry, 'x_total', 'again', []), /already been registered/);
});

test('CellIndex finds a value under five keys and keeps distinct paths apart', () => {
  const index = new CellIndex<number>();
  assert.equal(index.get('a', 'b', 'c', 'd', 'e'), undefined);
  index.set(1, 'a', 'b', 'c', 'd', 'e');
  index.set(2, 'a', 'b', 'c', 'd', 'f');
  index.set(3, 'a', 'bc', '', 'd', 'e');
  assert.equal(index.get('a', 'b', 'c', 'd', 'e'), 1);
  assert.equal(index.get('a', 'b', 'c', 'd', 'f'), 2);
  assert.equal(index.get('a', 'bc', '', 'd', 'e'), 3);
  assert.equal(index.get('a', 'b', 'cd', '', 'e'), undefined);
});
