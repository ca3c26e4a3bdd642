/**
 * The Models page: every model and version with its state and reason, inputs and outputs, batching settings,
 * breaker, placement and canary weights; load, unload and reload when the server's model control mode is
 * explicit (REST v2 repository load/unload; a load of a loaded model reloads it).
 */
import { call, describeError, postJson } from './api.js';
import { fill, h, num } from './dom.js';
import { kindOf, refreshModels, type ConsoleModels, type ModelInfo, type TensorSpec, type VersionInfo } from './models.js';

interface IndexEntry {
  name: string;
  version?: string;
  state: string;
  reason?: string;
}

export function modelsView(root: HTMLElement): { show(): Promise<void> } {
  const status = h('p', { class: 'status', role: 'status' });
  const error = h('p', { class: 'error', role: 'alert' });
  const list = h('div', { class: 'model-list', 'aria-live': 'polite' });
  const refresh = h('button', { type: 'button', onclick: () => void show() }, 'Refresh');
  fill(root, h('div', { class: 'toolbar' }, h('h2', {}, 'Models'), refresh, status), error, list);

  async function show(): Promise<void> {
    error.textContent = '';
    status.textContent = 'Loading…';
    try {
      const data = await refreshModels();
      const unloaded = data.server.model_control_mode === 'explicit' ? await unloadedModels(data) : [];
      fill(list, ...data.models.map((m) => modelCard(m, data, act)), ...unloaded.map((e) => unloadedCard(e, act)));
      if (data.models.length === 0 && unloaded.length === 0) fill(list, h('p', {}, 'No models are visible to this caller.'));
      status.textContent = `${data.models.length} model${data.models.length === 1 ? '' : 's'} · model control mode ${data.server.model_control_mode}`;
    } catch (err) {
      status.textContent = '';
      error.textContent = describeError(err);
    }
  }

  async function act(action: 'load' | 'unload', model: string): Promise<void> {
    error.textContent = '';
    status.textContent = `${action === 'load' ? 'Loading' : 'Unloading'} ${model}…`;
    try {
      await call(`/v2/repository/models/${encodeURIComponent(model)}/${action}`, { method: 'POST', json: {} });
    } catch (err) {
      error.textContent = describeError(err);
    }
    await show();
  }

  return { show };
}

/** Models in the repository folder that are not loaded (explicit mode), from the v2 repository index. */
async function unloadedModels(data: ConsoleModels): Promise<IndexEntry[]> {
  const known = new Set(data.models.map((m) => m.name));
  const index = await postJson<IndexEntry[]>('/v2/repository/index', {});
  return index.filter((e) => !known.has(e.name) && !e.version);
}

type Act = (action: 'load' | 'unload', model: string) => Promise<void>;

function modelCard(m: ModelInfo, data: ConsoleModels, act: Act): HTMLElement {
  const explicit = data.server.model_control_mode === 'explicit';
  const headingId = `model-${m.name}`;
  return h(
    'section',
    { class: 'card', 'aria-labelledby': headingId, 'data-model': m.name },
    h(
      'header',
      {},
      h('h3', { id: headingId }, m.name),
      h('span', { class: 'tag' }, { text: 'text classification', generate: 'generation', tensor: 'tensors' }[kindOf(m)]),
      h('a', { class: 'button', href: `#try/${encodeURIComponent(m.name)}`, 'aria-label': `Try ${m.name}` }, 'Try it'),
      explicit ? h('button', { type: 'button', 'aria-label': `Reload ${m.name}`, onclick: () => void act('load', m.name) }, 'Reload') : null,
      explicit ? h('button', { type: 'button', 'aria-label': `Unload ${m.name}`, onclick: () => void act('unload', m.name) }, 'Unload') : null,
    ),
    m.description ? h('p', { class: 'description' }, m.description) : null,
    m.reason ? h('p', { class: 'error' }, m.reason) : null,
    settings(m),
    versionsTable(m),
    ...m.warnings.map((w) => h('p', { class: 'warning' }, w)),
  );
}

function unloadedCard(e: IndexEntry, act: Act): HTMLElement {
  return h(
    'section',
    { class: 'card unloaded', 'aria-label': e.name, 'data-model': e.name },
    h('header', {}, h('h3', {}, e.name), h('span', { class: 'state state-UNAVAILABLE' }, e.reason ?? e.state), h('button', { type: 'button', 'aria-label': `Load ${e.name}`, onclick: () => void act('load', e.name) }, 'Load')),
  );
}

function settings(m: ModelInfo): HTMLElement {
  const c = m.config;
  const items: [string, string][] = [['platform', m.platform], ['default version', m.default_version || '-']];
  // Generation models schedule sequences, not batches of requests: their batching settings do not apply.
  if (c?.max_batch_size !== undefined && !m.generation) {
    items.push(['max batch size', c.max_batch_size > 0 ? String(c.max_batch_size) : 'no batch dimension']);
    const delay = c.dynamic_batching?.max_queue_delay_us ?? 0;
    items.push(['dynamic batching', c.dynamic_batching ? (delay > 0 ? `waits up to ${num(delay)} µs` : 'on, no added wait') : 'off']);
    if (c.dynamic_batching?.preferred_batch_sizes?.length) items.push(['preferred sizes', c.dynamic_batching.preferred_batch_sizes.join(', ')]);
    if (c.queue?.max_size !== undefined) items.push(['queue limit', String(c.queue.max_size)]);
  }
  if (c?.instance_count !== undefined) items.push(['instances', c.instance_count > 0 ? String(c.instance_count) : 'one per worker']);
  if (m.text_pipeline) items.push(['labels', m.text_pipeline.labels.join(', ')]);
  if (m.generation) {
    const g = m.generation;
    items.push(['context', `${g.context_tokens} tokens`], ['max tokens', String(g.max_tokens)], ['sequences', `${g.max_concurrent_sequences} decoding, ${g.max_waiting_sequences} waiting`]);
  }
  if (m.canary) {
    const weights = Object.entries(m.canary.weights).map(([v, w]) => `v${v} ${w}%`);
    items.push(['canary', `${weights.join(' · ')} (stable v${m.canary.stable_version})`]);
    if (m.canary.rolled_back_versions.length) items.push(['rolled back', m.canary.rolled_back_versions.map((v) => `v${v}`).join(', ')]);
  }
  return h('dl', { class: 'settings' }, ...items.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

/**
 * Where a version runs, with its typical run time once measured, and whether a lone execution gets every core
 * (a solo run); the reasons show on hover.
 */
function placement(p: NonNullable<VersionInfo['placement']>): HTMLElement {
  const where = `${p.where === 'main_thread' ? 'main thread' : 'workers'}${p.typical_run_us > 0 ? ` (typical run ${num(p.typical_run_us, 0)} µs)` : ''}`;
  const solo = p.solo?.state === 'ready' ? h('div', { class: 'solo', title: p.solo.reason }, `every core when alone (${num(Number(p.solo.runs), 0)} solo runs)`) : null;
  return h('span', {}, h('span', { title: p.reason }, where), solo);
}

const specs = (list: TensorSpec[]) => list.map((s) => `${s.name} ${s.dtype} [${s.shape.map((d) => (d < 0 ? '-1' : String(d))).join(', ')}]`).join('; ') || '-';

function versionsTable(m: ModelInfo): HTMLElement {
  const row = (v: VersionInfo) =>
    h(
      'tr',
      { 'data-version': v.version },
      h('td', {}, v.version),
      h('td', {}, h('span', { class: `state state-${v.state}` }, v.state), v.reason ? h('div', { class: 'reason' }, v.reason) : null),
      h('td', {}, specs(v.inputs)),
      h('td', {}, specs(v.outputs)),
      h('td', {}, v.breaker ? h('span', { class: `breaker breaker-${v.breaker.state}` }, v.breaker.state.replace('_', '-')) : '-'),
      h('td', {}, v.placement ? placement(v.placement) : '-'),
    );
  return h(
    'table',
    { class: 'versions', 'aria-label': `Versions of ${m.name}` },
    h('thead', {}, h('tr', {}, ...['Version', 'State', 'Inputs', 'Outputs', 'Breaker', 'Runs on'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...m.versions.map(row)),
  );
}
