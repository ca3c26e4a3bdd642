/**
 * Counters, gauges and histograms for the request path, exported through a prom-client Registry like any
 * other metric.
 *
 * Why not prom-client's own there: every inc()/observe() of its metrics turns the label object into a string
 * before it adds anything (a histogram also makes a closure and a labels/value pair), and its bound children
 * do the same on each call. A Predict made nine such calls: about 7 µs of main-thread time and 0.9 KB of
 * garbage per request on mlp at c=64 (CPU and allocation profiles of the bench server). Here a label set is
 * resolved once to a cell that the caller keeps; an observation is a bucket search and a few additions, and
 * allocates nothing.
 *
 * The exposition is prom-client's own: get() and getForPromString() return what its Counter, Gauge and
 * Histogram return (names, labels, `le` buckets with +Inf, _sum and _count, aggregator 'sum' for the
 * --processes aggregation), so /metrics, the cluster view and the console's live summary read these unchanged.
 */
import type { Metric, Registry } from 'prom-client';

export type Labels = Readonly<Record<string, string>>;

/** What prom-client's metrics give their registry from get(). */
export interface ExportedMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** One series of a counter or gauge. */
export class ValueCell {
  value = 0;
  constructor(readonly labels: Labels) {}

  /** Adds `by` (default 1); a counter's cell ignores anything but a finite non-negative amount. */
  inc(by = 1): void {
    this.value += by;
  }
}

class CounterCell extends ValueCell {
  override inc(by = 1): void {
    if (by >= 0 && by !== Infinity) this.value += by;
  }
}

/** One series of a histogram: per-bucket counts (not cumulative; the exposition sums them), sum and count. */
export class HistogramCell {
  sum = 0;
  count = 0;
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; above the last bound only `count` sees them (+Inf). */
  readonly counts: Float64Array;

  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    // A NaN or infinite observation would poison the sum for good; prom-client throws on one, which here
    // would fail a request that already succeeded.
    if (!Number.isFinite(value)) return;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

abstract class CellMetric<C extends { labels: Labels }> {
  readonly aggregator = 'sum' as const;
  protected readonly cells = new Map<string, C>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    // Duck-typed: the registry only reads name, help, type, aggregator and get()/getForPromString().
    registry.registerMetric(this as unknown as Metric);
  }

  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected abstract create(labels: Labels): C;

  /** The cell of a label set, at zero the first time. Callers keep it: this lookup builds a key string. */
  cell(labels: Labels): C {
    for (const name of Object.keys(labels)) {
      if (!this.labelNames.includes(name)) throw new Error(`metric ${this.name} has no label '${name}' (labels: ${this.labelNames.join(', ')})`);
    }
    const key = this.labelNames.map((n) => labels[n] ?? '\u0001').join('\u0000');
    let cell = this.cells.get(key);
    if (!cell) {
      cell = this.create({ ...labels });
      this.cells.set(key, cell);
    }
    return cell;
  }

  /** Forgets every series (cells handed out before keep counting, unexported). */
  reset(): void {
    this.cells.clear();
  }
}

/** A counter's or a gauge's series: one number each. */
abstract class ValueMetric extends CellMetric<ValueCell> {
  async get(): Promise<ExportedMetric> {
    const values = [...this.cells.values()].map((c) => ({ value: c.value, labels: { ...c.labels } }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class CellCounter extends ValueMetric {
  readonly type = 'counter' as const;

  protected create(labels: Labels): ValueCell {
    return new CounterCell(labels);
  }
}

export class CellGauge extends ValueMetric {
  readonly type = 'gauge' as const;

  protected create(labels: Labels): ValueCell {
    return new ValueCell(labels);
  }
}

export class CellHistogram extends CellMetric<HistogramCell> {
  readonly type = 'histogram' as const;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[], readonly buckets: readonly number[]) {
    super(registry, name, help, labelNames);
  }

  protected create(labels: Labels): HistogramCell {
    return new HistogramCell(labels, this.buckets);
  }

  /** As prom-client's Histogram.get(): every series' labels merged into each of its values. */
  async get(): Promise<ExportedMetric> {
    const values = this.exposition().map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** As prom-client's Histogram.getForPromString(), which the registry's text exposition prefers (`le` first). */
  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.exposition() };
  }

  /** prom-client's value objects, down to the exemplar field (null on buckets, absent-but-present on sum and count). */
  private exposition(): HistogramValue[] {
    const bucket = `${this.name}_bucket`;
    const out: HistogramValue[] = [];
    for (const cell of this.cells.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += cell.counts[i]!;
        out.push({ labels: { le }, sharedLabels: cell.labels, value: cumulative, metricName: bucket, exemplar: null });
      });
      out.push({ labels: { le: '+Inf' }, sharedLabels: cell.labels, value: cell.count, metricName: bucket, exemplar: null });
      out.push({ labels: {}, sharedLabels: cell.labels, value: cell.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      out.push({ labels: {}, sharedLabels: cell.labels, value: cell.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return out;
  }
}

interface HistogramValue {
  labels: Record<string, string | number>;
  sharedLabels: Labels;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}


/**
 * Values under five string keys (label values), found by nested Map lookups: the request path finds its cells
 * without building a key string or a closure.
 */
export class CellIndex<T> {
  private readonly root = new Map<string, Map<string, Map<string, Map<string, Map<string, T>>>>>();

  get(k0: string, k1: string, k2: string, k3: string, k4: string): T | undefined {
    return this.root.get(k0)?.get(k1)?.get(k2)?.get(k3)?.get(k4);
  }

  set(value: T, k0: string, k1: string, k2: string, k3: string, k4: string): T {
    const level = <V>(map: Map<string, V>, key: string, make: () => V): V => {
      let next = map.get(key);
      if (next === undefined) map.set(key, (next = make()));
      return next;
    };
    const m1 = level(this.root, k0, () => new Map());
    const m2 = level(m1, k1, () => new Map());
    const m3 = level(m2, k2, () => new Map());
    level(m3, k3, () => new Map()).set(k4, value);
    return value;
  }
}
