/**
 * Controls for routes other parts of the server add, shown only when GET /console/api/models says the server
 * has them (server.features):
 *   explain   POST /v2/models/{m}/explain {text}      per-word contributions, shown as highlighted words
 *   feedback  POST /v2/models/{m}/feedback {id, label} the true label of a prediction made with that id
 *   accuracy  GET  /v2/models/{m}/accuracy            live accuracy and confusion counts per version (Watch)
 *   jobs      POST .../infer?async=true, then GET /v2/jobs/{id} until it ends (the tensor form)
 */
import { call, describeError, getJson, postJson } from './api.js';
import { fill, h, num } from './dom.js';
import type { ModelInfo, ServerInfo } from './models.js';

interface WordContribution {
  word: string;
  start: number;
  end: number;
  contribution: number;
}

interface Explanation {
  version: string;
  predicted_label: string;
  label: string;
  probability: number;
  words: WordContribution[];
}

/** A request id for a prediction, so feedback can name it (crypto.randomUUID needs a secure context). */
export function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** The text with each word's contribution as its colour: green pushes toward the label, red away from it. */
function highlighted(text: string, e: Explanation): HTMLElement {
  const largest = Math.max(1e-9, ...e.words.map((w) => Math.abs(w.contribution)));
  const out = h('p', { class: 'explained', 'aria-label': `Word contributions to ${e.label}` });
  let at = 0;
  for (const w of [...e.words].sort((a, b) => a.start - b.start)) {
    if (w.start < at) continue;
    out.append(text.slice(at, w.start));
    const mark = h('mark', { title: `${w.word}: ${w.contribution >= 0 ? '+' : ''}${num(w.contribution, 4)}`, 'data-contribution': w.contribution }, text.slice(w.start, w.end));
    const strength = Math.abs(w.contribution) / largest;
    mark.style.backgroundColor = w.contribution >= 0 ? `rgba(22, 163, 74, ${0.1 + 0.6 * strength})` : `rgba(220, 38, 38, ${0.1 + 0.6 * strength})`;
    out.append(mark);
    at = w.end;
  }
  out.append(text.slice(at));
  return out;
}

export function explainSlot(m: ModelInfo, server: ServerInfo, text: () => string): HTMLElement {
  const slot = h('section', { class: 'extension', 'data-slot': 'explain', 'aria-label': 'Explanation', hidden: !server.features.explain });
  if (!server.features.explain) return slot;
  const result = h('div', { 'aria-live': 'polite' });
  const error = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { type: 'button' }, 'Explain');
  button.addEventListener('click', async () => {
    error.textContent = '';
    button.disabled = true;
    const t = text();
    try {
      const e = await postJson<Explanation>(`/v2/models/${encodeURIComponent(m.name)}/explain`, { text: t });
      fill(result, h('p', { class: 'hint' }, `Why ${e.label} (${num(e.probability * 100, 1)}%, version ${e.version}): green words push toward it, red ones away.`), highlighted(t, e));
    } catch (err) {
      error.textContent = describeError(err);
    } finally {
      button.disabled = false;
    }
  });
  fill(slot, h('h3', {}, 'Why this label?'), button, error, result);
  return slot;
}

/** After a prediction made with request id `id`: buttons that send its true label. */
export function feedbackSlot(m: ModelInfo, server: ServerInfo, id: string, labels: string[]): HTMLElement {
  const slot = h('section', { class: 'extension', 'data-slot': 'feedback', 'aria-label': 'Feedback', hidden: !server.features.feedback });
  if (!server.features.feedback) return slot;
  const status = h('p', { role: 'status' });
  const send = async (label: string) => {
    try {
      const a = await postJson<{ correct: boolean; accuracy: { accuracy: number | null; window_feedback: number } }>(`/v2/models/${encodeURIComponent(m.name)}/feedback`, { id, label });
      status.textContent = `Recorded: the prediction was ${a.correct ? 'right' : 'wrong'}. Live accuracy ${a.accuracy.accuracy === null ? '-' : `${num(a.accuracy.accuracy * 100, 1)}%`} over the last ${a.accuracy.window_feedback} answers.`;
    } catch (err) {
      status.textContent = describeError(err);
    }
  };
  fill(slot, h('span', {}, 'The right label was: '), ...labels.map((l) => h('button', { type: 'button', 'aria-label': `The right label was ${l}`, onclick: () => void send(l) }, l)), status);
  return slot;
}

interface AccuracyReport {
  version: string;
  window_size: number;
  window_feedback: number;
  accuracy: number | null;
  total_feedback: number;
  total_correct: number;
  labels: string[];
  confusion: { label: string; predicted: string; count: number }[];
}

/** The Watch page's live accuracy of a classification model: per version, and its confusion counts. */
export async function accuracyPanel(m: ModelInfo, server: ServerInfo, into: HTMLElement): Promise<void> {
  into.hidden = !(server.features.accuracy && m.text_pipeline);
  if (into.hidden) return;
  try {
    const a = await getJson<{ versions: AccuracyReport[] }>(`/v2/models/${encodeURIComponent(m.name)}/accuracy`);
    fill(
      into,
      h('h3', {}, `Live accuracy of ${m.name}`),
      ...a.versions.map((v) =>
        h(
          'div',
          { class: 'accuracy', 'data-version': v.version },
          h('p', {}, `Version ${v.version}: ${v.accuracy === null ? 'no feedback yet' : `${num(v.accuracy * 100, 1)}% over the last ${v.window_feedback} of ${v.window_size}`} (${v.total_correct}/${v.total_feedback} in all)`),
          confusionTable(v),
        ),
      ),
    );
  } catch (err) {
    fill(into, h('p', { class: 'error', role: 'alert' }, describeError(err)));
  }
}

function confusionTable(v: AccuracyReport): HTMLElement {
  const count = (label: string, predicted: string) => v.confusion.find((c) => c.label === label && c.predicted === predicted)?.count ?? 0;
  return h(
    'table',
    { class: 'confusion', 'aria-label': `Confusion counts of version ${v.version}` },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'true \\ predicted'), ...v.labels.map((l) => h('th', { scope: 'col' }, l)))),
    h('tbody', {}, ...v.labels.map((l) => h('tr', {}, h('th', { scope: 'row' }, l), ...v.labels.map((p) => h('td', {}, String(count(l, p))))))),
  );
}

interface Job {
  job_id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  location?: string;
  result?: unknown;
  error?: { code: string; message: string };
}

const POLL_MS = 250;

/**
 * A "Run as a job" choice for an infer form (POST .../infer?async=true, then GET /v2/jobs/{id} until it ends):
 * `run` submits and resolves with the job's result, reporting each status on the way; `cancel` DELETEs it.
 */
export function jobChoice(server: ServerInfo): { element: HTMLElement; checked(): boolean; run<T>(path: string, body: unknown, status: (text: string) => void): Promise<T>; cancel(): void } {
  const box = h('input', { type: 'checkbox', name: 'async' }) as HTMLInputElement;
  const element = h('label', { class: 'check', 'data-slot': 'jobs', hidden: !server.features.jobs }, box, ' Run as a job (async)');
  let current: string | undefined;
  return {
    element,
    checked: () => server.features.jobs === true && box.checked,
    async run<T>(path: string, body: unknown, status: (text: string) => void): Promise<T> {
      let job = await postJson<Job>(`${path}?async=true`, body);
      const location = job.location ?? `/v2/jobs/${encodeURIComponent(job.job_id)}`;
      current = location;
      try {
        while (job.status === 'queued' || job.status === 'running') {
          status(`Job ${job.job_id}: ${job.status}`);
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
          job = await getJson<Job>(location);
        }
      } finally {
        current = undefined;
      }
      status(`Job ${job.job_id}: ${job.status}`);
      if (job.status !== 'succeeded') throw new Error(`job ${job.job_id} ${job.status}: ${job.error?.message ?? 'no reason given'}`);
      return job.result as T;
    },
    cancel() {
      if (current) void call(current, { method: 'DELETE' }).catch(() => undefined);
    },
  };
}
