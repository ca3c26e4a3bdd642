/**
 * The Watch page: live charts of one model, fed by GET /console/api/summary (the server's own metrics, one
 * sample a second), polled only while the page is shown. The page keeps the last MAX_SAMPLES samples.
 */
import { describeError, getJson } from './api.js';
import { LiveChart, type ChartSpec, type SummarySample } from './charts.js';
import { field, fill, h } from './dom.js';
import { accuracyPanel } from './extensions.js';
import { models, type ConsoleModels } from './models.js';

const MAX_SAMPLES = 300;
/** After a failed poll, wait this long before the next. */
const RETRY_MS = 5000;

const CHARTS: ChartSpec[] = [
  {
    id: 'requests',
    title: 'Requests per second',
    unit: '/s',
    series: [
      { label: 'requests', color: '#2563eb', value: (_s, p) => p?.requests_per_s ?? 0 },
      { label: 'errors', color: '#dc2626', value: (_s, p) => p?.errors_per_s ?? 0 },
    ],
  },
  {
    id: 'latency',
    title: 'Latency',
    unit: 'ms',
    series: [
      { label: 'p50', color: '#0891b2', value: (_s, p) => p?.p50_ms ?? null },
      { label: 'p99', color: '#7c3aed', value: (_s, p) => p?.p99_ms ?? null },
    ],
  },
  { id: 'batch', title: 'Batch size (rows per execution)', unit: '', series: [{ label: 'mean', color: '#ea580c', value: (_s, p) => p?.batch_rows ?? null }] },
  { id: 'queue', title: 'Queue depth', unit: '', series: [{ label: 'waiting', color: '#ca8a04', value: (_s, p) => p?.queue_depth ?? 0 }] },
  {
    id: 'cache',
    title: 'Result cache hits (all models)',
    unit: '%',
    series: [{ label: 'answered from cache', color: '#16a34a', value: (s) => (s.cache_hit_ratio === null ? null : s.cache_hit_ratio * 100) }],
  },
  { id: 'ttft', title: 'Time to first token (generation)', unit: 'ms', series: [{ label: 'p50', color: '#db2777', value: (_s, p) => p?.ttft_p50_ms ?? null }] },
  { id: 'tokens', title: 'Tokens per second (generation)', unit: '/s', series: [{ label: 'generated', color: '#4f46e5', value: (_s, p) => p?.tokens_per_s ?? 0 }] },
];

export function watchView(root: HTMLElement): { show(): Promise<void>; hide(): void } {
  const select = h('select', { name: 'model' });
  const error = h('p', { class: 'error', role: 'alert' });
  const status = h('p', { class: 'status', role: 'status' });
  const charts = CHARTS.map((spec) => new LiveChart(spec));
  const accuracy = h('section', { class: 'extension', 'data-slot': 'accuracy', hidden: true });
  fill(root, h('div', { class: 'toolbar' }, h('h2', {}, 'Watch'), field('Model', select), status), error, h('div', { class: 'charts' }, ...charts.map((c) => c.figure)), accuracy);

  let samples: SummarySample[] = [];
  let data: ConsoleModels | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let visible = false;
  let inFlight = false;
  let polls = 0;
  /** The server process whose samples are shown. */
  let process: number | undefined;

  const draw = () => {
    for (const c of charts) c.update(samples, select.value);
  };
  select.addEventListener('change', () => {
    draw();
    void refreshAccuracy();
  });

  async function refreshAccuracy(): Promise<void> {
    const m = data?.models.find((x) => x.name === select.value);
    if (m && data) await accuracyPanel(m, data.server, accuracy);
  }

  async function poll(): Promise<void> {
    timer = undefined;
    if (!visible || inFlight) return;
    inFlight = true;
    let wait = 1000;
    try {
      const after = samples.at(-1)?.seq ?? -1;
      const answer = await getJson<{ interval_ms: number; process: number; samples: SummarySample[] }>(`/console/api/summary?after=${after}`);
      wait = answer.interval_ms;
      if (answer.process !== process && process !== undefined) {
        // Another server process (--processes N, or a restart) with samples of its own: start again with its history.
        process = answer.process;
        samples = [];
        wait = 0;
      } else {
        process = answer.process;
        samples = [...samples, ...answer.samples].slice(-MAX_SAMPLES);
      }
      error.textContent = '';
      status.textContent = samples.length ? `${samples.length} samples, one per ${answer.interval_ms / 1000} s, from server process ${answer.process}` : 'Waiting for the first sample…';
      draw();
      if (polls++ % 5 === 0) await refreshAccuracy();
    } catch (err) {
      error.textContent = describeError(err);
      wait = RETRY_MS;
    } finally {
      inFlight = false;
    }
    if (visible && !timer) timer = setTimeout(() => void poll(), wait);
  }

  async function show(): Promise<void> {
    visible = true;
    try {
      data = await models();
      const previous = select.value;
      fill(select, ...data.models.map((m) => h('option', { value: m.name }, m.name)));
      select.value = data.models.some((m) => m.name === previous) ? previous : (data.models[0]?.name ?? '');
    } catch (err) {
      error.textContent = describeError(err);
    }
    if (!timer) void poll();
  }

  function hide(): void {
    visible = false;
    clearTimeout(timer);
    timer = undefined;
  }

  return { show, hide };
}
