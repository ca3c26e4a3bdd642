/**
 * Every route registered on the HTTP front door (fed by fastify's onRoute hook, mounted plugins' routes
 * included), for what fastify does not do itself: answering 405 with `Allow` when a path exists with other
 * methods, and naming the served paths in a 404.
 */

interface Entry {
  /** The route's path as registered ('/v1/models/:id'); how a 404 names it. */
  shown: string;
  pattern: RegExp;
  methods: Set<string>;
}

/**
 * A find-my-way path as a whole-path pattern: ':name' (optionally with '(regex)') is one segment, '*' anything.
 * Close enough for choosing between 404 and 405; the router itself still decides what a route matches.
 */
function toPattern(path: string): RegExp {
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c === '*') out += '.*';
    else if (c === ':' && path[i + 1] === ':') {
      out += ':'; // '::' is a literal colon
      i++;
    } else if (c === ':') {
      let j = i + 1;
      while (j < path.length && /[\w$]/.test(path[j]!)) j++;
      if (path[j] === '(') {
        let depth = 0;
        let k = j;
        for (; k < path.length; k++) {
          if (path[k] === '(') depth++;
          else if (path[k] === ')' && --depth === 0) break;
        }
        out += `(?:${path.slice(j + 1, k).replace(/^\^|\$$/g, '')})`;
        j = k + 1;
      } else out += '[^/]+';
      i = j - 1;
    } else out += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

export class RouteTable {
  private readonly entries = new Map<string, Entry>();

  /** `shown` replaces the path in the 404's list (a raw route registered twice shows once). */
  add(path: string, methods: string | string[], shown = path): void {
    let entry = this.entries.get(path);
    if (!entry) {
      entry = { shown, pattern: toPattern(path), methods: new Set() };
      this.entries.set(path, entry);
    }
    for (const m of Array.isArray(methods) ? methods : [methods]) {
      entry.methods.add(m.toUpperCase());
      if (m.toUpperCase() === 'GET') entry.methods.add('HEAD');
    }
  }

  /** The methods routes on `pathname` answer, in registration order (GET then HEAD); empty if none. */
  allowed(pathname: string): string[] {
    const methods = new Set<string>();
    for (const e of this.entries.values()) if (e.pattern.test(pathname)) for (const m of e.methods) methods.add(m);
    return [...methods];
  }

  /** The served paths for a 404's message; bounded by the caller (routes are ours and our plugins'). */
  served(): string {
    return [...new Set([...this.entries.values()].map((e) => e.shown))].join(', ');
  }
}
