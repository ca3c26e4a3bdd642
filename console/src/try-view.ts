/**
 * The Try it page: pick a model, then the form its kind takes (text classification, generation, tensors),
 * each with the same call as commands to copy.
 */
import { describeError } from './api.js';
import { field, fill, h } from './dom.js';
import { kindOf, models, type ConsoleModels, type ModelInfo } from './models.js';
import { textForm } from './try-text.js';
import { generateForm } from './try-generate.js';
import { tensorForm } from './try-tensor.js';

export function tryView(root: HTMLElement): { show(model?: string): Promise<void> } {
  const select = h('select', { name: 'model' });
  const error = h('p', { class: 'error', role: 'alert' });
  const panel = h('div', { class: 'try-panel' });
  fill(root, h('div', { class: 'toolbar' }, h('h2', {}, 'Try it'), field('Model', select)), error, panel);
  let data: ConsoleModels | undefined;

  select.addEventListener('change', () => {
    // The address follows the choice, so a reload or a shared link opens the same model.
    history.replaceState(null, '', `#try/${encodeURIComponent(select.value)}`);
    render();
  });

  function render(): void {
    const m = data?.models.find((x) => x.name === select.value);
    if (!m || !data) return fill(panel, h('p', {}, 'No model to try.'));
    fill(panel, form(m, data));
  }

  function form(m: ModelInfo, d: ConsoleModels): HTMLElement {
    if (!m.versions.some((v) => v.state === 'READY')) return h('p', { class: 'warning' }, `${m.name} has no READY version: ${m.reason || m.versions.map((v) => `v${v.version} ${v.state} ${v.reason}`).join('; ')}`);
    switch (kindOf(m)) {
      case 'text':
        return textForm(m, d.server);
      case 'generate':
        return generateForm(m, d.server);
      default:
        return tensorForm(m, d.server);
    }
  }

  async function show(model?: string): Promise<void> {
    error.textContent = '';
    try {
      data = await models();
    } catch (err) {
      error.textContent = describeError(err);
      return;
    }
    const previous = select.value;
    fill(select, ...data.models.map((m) => h('option', { value: m.name }, m.name)));
    const wanted = model && data.models.some((m) => m.name === model) ? model : previous || data.models[0]?.name || '';
    select.value = wanted;
    if (wanted !== previous || panel.childElementCount === 0 || model) render();
  }

  return { show };
}
