/**
 * Text classification: a text -> the label, its confidence and a bar per label, through the REST v2 infer
 * route's text input (a BYTES input named input_text, answered with label, confidence, labels and
 * probabilities).
 */
import { describeError, postJson } from './api.js';
import { field, fill, h, num } from './dom.js';
import { explainSlot, feedbackSlot, newRequestId } from './extensions.js';
import type { ModelInfo, ServerInfo } from './models.js';
import { snippetBlocks, textSnippets } from './snippets.js';

interface V2Output {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

export interface TextAnswer {
  label: string;
  confidence: number;
  scores: { label: string; score: number }[];
}

/** The answer's tensors by name; labels fall back to the model's own list. */
export function readTextAnswer(outputs: V2Output[], fallbackLabels: string[]): TextAnswer {
  const byName = new Map(outputs.map((o) => [o.name, o.data]));
  const labels = (byName.get('labels') as string[] | undefined) ?? fallbackLabels;
  const probabilities = ((byName.get('probabilities') ?? []) as unknown[]).flat(Infinity as 1).map(Number);
  return {
    label: String(byName.get('label')?.[0] ?? ''),
    confidence: Number(byName.get('confidence')?.[0] ?? NaN),
    scores: labels.map((label, i) => ({ label, score: probabilities[i] ?? 0 })),
  };
}

export function textForm(m: ModelInfo, server: ServerInfo): HTMLElement {
  const text = h('textarea', { rows: 3, name: 'text' }) as HTMLTextAreaElement;
  text.value = 'What a wonderful, happy day';
  const predict = h('button', { type: 'submit' }, 'Predict');
  const error = h('p', { class: 'error', role: 'alert' });
  const result = h('div', { class: 'result', 'aria-live': 'polite', 'aria-label': 'Prediction' });
  const snippets = h('div');
  const explain = explainSlot(m, server, () => text.value);
  const updateSnippets = () => fill(snippets, snippetBlocks(textSnippets(server, m.name, text.value), server));

  const form = h('form', { class: 'try-form' }, field('Text', text), h('div', { class: 'actions' }, predict));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void run();
  });
  text.addEventListener('input', updateSnippets);
  updateSnippets();

  async function run(): Promise<void> {
    error.textContent = '';
    predict.disabled = true;
    try {
      // An id of our own: feedback on this prediction names it.
      const id = newRequestId();
      const body = { id, inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [1], data: [text.value] }] };
      const res = await postJson<{ model_version: string; outputs: V2Output[] }>(`/v2/models/${encodeURIComponent(m.name)}/infer`, body);
      const answer = readTextAnswer(res.outputs, m.text_pipeline?.labels ?? []);
      showAnswer(answer, res.model_version);
      result.append(feedbackSlot(m, server, id, answer.scores.map((s) => s.label)));
    } catch (err) {
      error.textContent = describeError(err);
    } finally {
      predict.disabled = false;
    }
  }

  function showAnswer(a: TextAnswer, version: string): void {
    fill(
      result,
      h('p', { class: 'answer' }, h('span', { class: 'label', 'data-label': a.label }, a.label), ' ', h('span', { class: 'confidence' }, `${num(a.confidence * 100, 1)}%`), h('small', {}, ` from version ${version}`)),
      h(
        'div',
        { class: 'bars' },
        ...a.scores.map((s) => {
          const bar = h('div', { class: 'bar-fill' });
          bar.style.width = `${Math.max(0, Math.min(1, s.score)) * 100}%`;
          return h(
            'div',
            { class: 'bar', role: 'meter', 'aria-label': s.label, 'aria-valuemin': 0, 'aria-valuemax': 1, 'aria-valuenow': s.score, 'aria-valuetext': `${num(s.score * 100, 1)}%` },
            h('span', { class: 'bar-label' }, s.label),
            h('span', { class: 'bar-track' }, bar),
            h('span', { class: 'bar-value' }, `${num(s.score * 100, 1)}%`),
          );
        }),
      ),
    );
  }

  return h('div', {}, form, error, result, explain, snippets);
}
