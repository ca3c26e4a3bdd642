/** A few DOM helpers, so views read as the markup they build. */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined>;

/**
 * An element with attributes and children: `on*` attributes are listeners, `true` sets a boolean attribute,
 * `false`/undefined leaves it out; strings become text (never HTML).
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.slice(2).toLowerCase(), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? String(c) : c);
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, ...children);
}

let ids = 0;
/** A unique id for label/for and aria pairs. */
export const uid = (prefix: string) => `${prefix}-${++ids}`;

/** A labelled form field: <label for> and its control, in one wrapper. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  control.id ||= uid('f');
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint ? h('small', {}, hint) : null);
}

/** Formats a number for people: `digits` significant decimals, '-' for none. */
export function num(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}
