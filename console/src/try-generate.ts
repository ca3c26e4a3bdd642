/**
 * Generation: a prompt streamed through the OpenAI-compatible POST /v1/completions (stream: true), with the
 * sampling controls, and the speed as it streams (tokens/s from the first token on, time to first token).
 */
import { call, describeError } from './api.js';
import { field, fill, h, num } from './dom.js';
import type { ModelInfo, ServerInfo } from './models.js';
import { generateSnippets, snippetBlocks, type GenerateParams } from './snippets.js';
import { sseData } from './sse.js';

interface CompletionChunk {
  choices: { text: string; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number };
  error?: { message: string };
}

function numberInput(value: number, attrs: Record<string, number>): HTMLInputElement {
  const input = h('input', { type: 'number', ...attrs }) as HTMLInputElement;
  input.value = String(value);
  return input;
}

export function generateForm(m: ModelInfo, server: ServerInfo): HTMLElement {
  const g = m.generation!;
  const prompt = h('textarea', { rows: 3, name: 'prompt' }) as HTMLTextAreaElement;
  prompt.value = 'In the beginning';
  const temperature = numberInput(g.default_temperature ?? 0.8, { min: 0, max: 2, step: 0.05 });
  const topP = numberInput(g.default_top_p ?? 1, { min: 0.01, max: 1, step: 0.01 });
  const maxTokens = numberInput(g.default_max_tokens || 64, { min: 1, max: g.max_tokens, step: 1 });
  const seed = h('input', { type: 'number', min: 0, step: 1, placeholder: 'random' }) as HTMLInputElement;
  const start = h('button', { type: 'submit' }, 'Generate');
  const stop = h('button', { type: 'button', disabled: true }, 'Stop');
  const error = h('p', { class: 'error', role: 'alert' });
  const output = h('pre', { class: 'generated', 'aria-label': 'Generated text', 'aria-live': 'polite', 'data-tokens': 0 });
  const stats = h('p', { class: 'stats', 'aria-label': 'Generation speed' });
  const snippets = h('div');
  let controller: AbortController | undefined;

  const params = (): GenerateParams => ({
    prompt: prompt.value,
    max_tokens: Number(maxTokens.value),
    temperature: Number(temperature.value),
    top_p: Number(topP.value),
    ...(seed.value !== '' ? { seed: Number(seed.value) } : {}),
  });
  const updateSnippets = () => fill(snippets, snippetBlocks(generateSnippets(server, m.name, params()), server));

  const form = h(
    'form',
    { class: 'try-form' },
    field('Prompt', prompt),
    h('div', { class: 'row' }, field('Temperature', temperature), field('Top p', topP), field('Max tokens', maxTokens), field('Seed', seed, 'empty: the server picks one')),
    h('div', { class: 'actions' }, start, stop),
  );
  form.addEventListener('input', updateSnippets);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void run();
  });
  stop.addEventListener('click', () => controller?.abort());
  updateSnippets();

  async function run(): Promise<void> {
    error.textContent = '';
    controller = new AbortController();
    start.disabled = true;
    stop.disabled = false;
    const p = params();
    const generated = h('span', { class: 'completion' });
    fill(output, h('span', { class: 'prompt' }, p.prompt), generated);
    output.dataset.tokens = '0';
    stats.textContent = 'Waiting for the first token…';
    const sent = performance.now();
    let first = 0;
    let tokens = 0;
    let finish = '';
    const showStats = (done: boolean) => {
      const now = performance.now();
      // tokens/s over the tokens after the first, as servers report decode speed; the first one waits for the prompt.
      const rate = tokens > 1 && now > first ? ((tokens - 1) * 1000) / (now - first) : null;
      output.dataset.tokens = String(tokens);
      if (rate !== null) stats.dataset.tokensPerS = rate.toFixed(1);
      stats.textContent = `${tokens} tokens · ${num(rate, 1)} tokens/s · first token after ${num(first - sent, 0)} ms${done ? ` · finished: ${finish || 'stopped'}` : ''}`;
    };
    try {
      const res = await call('/v1/completions', {
        method: 'POST',
        json: { model: m.name, ...p, stream: true, stream_options: { include_usage: true } },
        signal: controller.signal,
      });
      for await (const data of sseData(res)) {
        if (data === '[DONE]') break;
        const chunk = JSON.parse(data) as CompletionChunk;
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        for (const c of chunk.choices) {
          if (c.text) {
            if (!first) first = performance.now();
            generated.append(c.text);
            tokens++;
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
        showStats(false);
      }
      showStats(true);
    } catch (err) {
      if ((err as Error).name === 'AbortError') showStats(true);
      else error.textContent = describeError(err);
    } finally {
      start.disabled = false;
      stop.disabled = true;
      controller = undefined;
    }
  }

  return h('div', {}, form, error, output, stats, snippets);
}
