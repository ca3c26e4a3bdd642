/**
 * The console's entry: the token box, the three pages (Models, Try it, Watch) and the address that picks
 * one (#models, #try/MODEL, #watch).
 */
import { getToken, setToken } from './api.js';
import { h } from './dom.js';
import { refreshModels } from './models.js';
import { modelsView } from './models-view.js';
import { tryView } from './try-view.js';
import { watchView } from './watch-view.js';

type Page = 'models' | 'try' | 'watch';

const sections = {
  models: document.getElementById('page-models')!,
  try: document.getElementById('page-try')!,
  watch: document.getElementById('page-watch')!,
};
const views = { models: modelsView(sections.models), try: tryView(sections.try), watch: watchView(sections.watch) };

function route(): void {
  const [page, arg] = location.hash.replace(/^#/, '').split('/') as [string, string | undefined];
  const current: Page = page === 'try' || page === 'watch' ? page : 'models';
  for (const [name, section] of Object.entries(sections)) section.hidden = name !== current;
  for (const link of document.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (link.getAttribute('href') === `#${current}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (current !== 'watch') views.watch.hide();
  if (current === 'models') void views.models.show();
  else if (current === 'try') void views.try.show(arg ? decodeURIComponent(arg) : undefined);
  else void views.watch.show();
}

function tokenBox(): void {
  const input = document.getElementById('token') as HTMLInputElement;
  const form = document.getElementById('token-form') as HTMLFormElement;
  const state = document.getElementById('token-state')!;
  const show = () => (state.textContent = getToken() ? 'token set for this tab' : 'no token');
  input.value = getToken();
  show();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    show();
    // Everything shown may change with who is asking.
    void refreshModels().catch(() => undefined);
    route();
  });
  form.append(
    h('button', {
      type: 'button',
      onclick: () => {
        input.value = '';
        setToken('');
        show();
        route();
      },
    }, 'Forget'),
  );
}

tokenBox();
window.addEventListener('hashchange', route);
route();
