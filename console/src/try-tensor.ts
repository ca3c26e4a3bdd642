/**
 * Tensor models: a v2 JSON infer body in an editor, prefilled with random values that fit the model's
 * inputs, and the outputs it answers.
 */
import { describeError, postJson } from './api.js';
import { field, fill, h, num } from './dom.js';
import { jobChoice } from './extensions.js';
import { servedVersion, type ModelInfo, type ServerInfo } from './models.js';
import { snippetBlocks, tensorSnippets } from './snippets.js';
import { formatBody, randomBody, type V2Body } from './tensor-request.js';

interface V2Output {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

/** Values shown per output; the rest are counted. */
const SHOWN = 16;

export function tensorForm(m: ModelInfo, server: ServerInfo): HTMLElement {
  const version = servedVersion(m);
  const editor = h('textarea', { rows: 10, name: 'request', spellcheck: false, class: 'code' }) as HTMLTextAreaElement;
  const randomize = h('button', { type: 'button' }, 'New random request');
  const infer = h('button', { type: 'submit' }, 'Infer');
  const error = h('p', { class: 'error', role: 'alert' });
  const result = h('div', { class: 'result', 'aria-live': 'polite', 'aria-label': 'Outputs' });
  const snippets = h('div');
  const job = jobChoice(server);
  const jobStatus = h('p', { class: 'status', role: 'status', 'aria-label': 'Job status' });

  const parsed = (): V2Body | undefined => {
    try {
      return JSON.parse(editor.value) as V2Body;
    } catch {
      return undefined;
    }
  };
  const updateSnippets = () => {
    const body = parsed();
    fill(snippets, body ? snippetBlocks(tensorSnippets(server, m.name, body), server) : h('p', { class: 'hint' }, 'The request is not valid JSON yet.'));
  };
  const fresh = () => {
    editor.value = formatBody(randomBody(version?.inputs ?? []));
    updateSnippets();
  };
  randomize.addEventListener('click', fresh);
  editor.addEventListener('input', updateSnippets);
  fresh();

  const form = h(
    'form',
    { class: 'try-form' },
    field('Request (v2 JSON)', editor, `POST /v2/models/${m.name}/infer: inputs ${(version?.inputs ?? []).map((s) => `${s.name} ${s.dtype} [${s.shape.join(', ')}]`).join('; ')}`),
    h('div', { class: 'actions' }, infer, randomize, job.element),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void run();
  });

  async function run(): Promise<void> {
    error.textContent = '';
    const body = parsed();
    if (!body) {
      error.textContent = 'The request is not valid JSON.';
      return;
    }
    infer.disabled = true;
    jobStatus.textContent = '';
    const started = performance.now();
    const path = `/v2/models/${encodeURIComponent(m.name)}/infer`;
    try {
      type Answer = { model_version: string; outputs: V2Output[] };
      const res = job.checked() ? await job.run<Answer>(path, body, (text) => (jobStatus.textContent = text)) : await postJson<Answer>(path, body);
      showOutputs(res.outputs, res.model_version, performance.now() - started);
    } catch (err) {
      error.textContent = describeError(err);
    } finally {
      infer.disabled = false;
    }
  }

  function showOutputs(outputs: V2Output[], answeredBy: string, ms: number): void {
    fill(
      result,
      h('p', { class: 'hint' }, `Answered by version ${answeredBy} in ${num(ms, 1)} ms (round trip from this page).`),
      h(
        'table',
        { class: 'outputs', 'aria-label': 'Output tensors' },
        h('thead', {}, h('tr', {}, ...['Output', 'Type', 'Shape', 'Values', 'Largest at'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          ...outputs.map((o) => {
            const values = o.data.flat(Infinity as 1);
            const shown = values.slice(0, SHOWN).map((v) => (typeof v === 'number' ? num(v, 4) : String(v)));
            return h(
              'tr',
              { 'data-output': o.name },
              h('th', { scope: 'row' }, o.name),
              h('td', {}, o.datatype),
              h('td', {}, `[${o.shape.join(', ')}]`),
              h('td', { class: 'values' }, shown.join(', ') + (values.length > SHOWN ? ` … (${values.length} values)` : '')),
              h('td', {}, argmaxOfRows(o)),
            );
          }),
        ),
      ),
    );
  }

  return h('div', {}, form, jobStatus, error, result, snippets);
}

/** Per row of a [rows, classes] numeric output, the index of its largest value (a classifier's class). */
function argmaxOfRows(o: V2Output): string {
  if (o.shape.length !== 2 || !o.datatype.startsWith('FP')) return '-';
  const [rows, cols] = o.shape as [number, number];
  const values = o.data.flat(Infinity as 1) as number[];
  const best: number[] = [];
  for (let r = 0; r < rows && r < SHOWN; r++) {
    const row = values.slice(r * cols, (r + 1) * cols);
    best.push(row.indexOf(Math.max(...row)));
  }
  return best.join(', ');
}
