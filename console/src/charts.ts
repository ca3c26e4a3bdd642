/**
 * One live chart on uPlot (a small, dependency-free time-series chart, served by this server from the uplot
 * package): a figure whose `data-points` attribute says how many samples it holds and `data-latest` its first
 * series' latest value ('' for none), and the latest values beside its title.
 */
import uPlot from './uPlot.esm.js';
import { h, num } from './dom.js';

export interface ModelPoint {
  requests_per_s: number;
  errors_per_s: number;
  p50_ms: number | null;
  p99_ms: number | null;
  batch_rows: number | null;
  queue_depth: number;
  ttft_p50_ms: number | null;
  tokens_per_s: number;
}

export interface SummarySample {
  seq: number;
  time_ms: number;
  interval_s: number;
  cache_hit_ratio: number | null;
  models: Record<string, ModelPoint>;
}

export interface SeriesSpec {
  label: string;
  color: string;
  value: (sample: SummarySample, point: ModelPoint | undefined) => number | null;
}

export interface ChartSpec {
  id: string;
  title: string;
  unit: string;
  series: SeriesSpec[];
}

const HEIGHT = 160;
/** Seconds between time ticks: samples come once a second, so never finer than that. */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600];
const clockTime = (seconds: number) => new Date(seconds * 1000).toLocaleTimeString('en-GB', { hour12: false });

export class LiveChart {
  readonly figure: HTMLElement;
  private readonly plotArea: HTMLElement;
  private readonly readout: HTMLElement;
  private plot: uPlot | undefined;
  private readonly resize = new ResizeObserver(() => this.plot?.setSize({ width: this.width(), height: HEIGHT }));

  constructor(private readonly spec: ChartSpec) {
    this.readout = h('span', { class: 'readout' });
    this.plotArea = h('div', { class: 'plot' });
    this.figure = h('figure', { class: 'chart', 'data-chart': spec.id, 'data-points': 0, 'data-latest': '', 'aria-label': spec.title }, h('figcaption', {}, h('span', {}, spec.title), this.readout), this.plotArea);
    this.resize.observe(this.plotArea);
  }

  /** Shows `samples` (oldest first) for `model`. */
  update(samples: SummarySample[], model: string): void {
    const times = samples.map((s) => s.time_ms / 1000);
    const columns = this.spec.series.map((series) => samples.map((s) => series.value(s, s.models[model])));
    const data = [times, ...columns] as uPlot.AlignedData;
    if (!this.plot) this.plot = this.create(data);
    else this.plot.setData(data);
    this.figure.dataset.points = String(samples.length);
    const last = samples.at(-1);
    this.figure.dataset.latest = String(columns[0]?.at(-1) ?? '');
    this.readout.textContent = last
      ? this.spec.series.map((s) => `${s.label} ${num(s.value(last, last.models[model]), 1)}${this.spec.unit === '%' ? '%' : this.spec.unit ? ` ${this.spec.unit}` : ''}`).join(' · ')
      : '';
  }

  private width(): number {
    return Math.max(240, this.plotArea.clientWidth);
  }

  private create(data: uPlot.AlignedData): uPlot {
    const options: uPlot.Options = {
      width: this.width(),
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      // From 0 to a little above the largest value (at least 1, so an idle series lies on the floor).
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(max ?? 0, 1) * 1.1] } },
      axes: [
        { stroke: '#64748b', grid: { stroke: '#e2e8f0' }, incrs: TIME_STEPS, values: (_u, ticks) => ticks.map(clockTime) },
        { stroke: '#64748b', grid: { stroke: '#e2e8f0' }, size: 56 },
      ],
      series: [{}, ...this.spec.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: false, points: { show: false } }))],
    };
    return new uPlot(options, data, this.plotArea);
  }
}
