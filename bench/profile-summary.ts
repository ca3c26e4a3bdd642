/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time and by inclusive
 * time, and self time per package, so a miss in the benchmark can be pinned on code rather than guessed.
 *
 * `node dist/bench/profile-summary.js <file.cpuprofile> [top N]`
 */
import * as fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a function lives: a package, tensorgate's own code, node internals, or a V8 pseudo-frame. */
export function packageOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return 'node internals';
  const m = /\/dist\/(src|bench)\/(.*?)(\.js)?$/.exec(url);
  if (m) return `tensorgate ${m[1]}/${m[2]!.split('/')[0]}`;
  return url;
}

function label(f: ProfileNode['callFrame']): string {
  const file = f.url ? f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, '').replace(/^file:\/\//, '') : '';
  return `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
}

export function summarise(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const perPackage = new Map<string, number>();
  const perCaller = new Map<string, number>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id)!;
    const name = node.callFrame.functionName;
    if (name === '(idle)') {
      idle += dt;
      return;
    }
    total += dt;
    const key = label(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
    const pkg = packageOf(node.callFrame.url, name);
    perPackage.set(pkg, (perPackage.get(pkg) ?? 0) + dt);
    // Node internals and native code charged to the nearest package above them (who asked for the work).
    let owner = pkg;
    for (let cur: number | undefined = id; cur !== undefined && (owner === 'node internals' || owner === '(native)'); cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      owner = packageOf(f.url, f.functionName);
    }
    perCaller.set(owner, (perCaller.get(owner) ?? 0) + dt);
    // Inclusive: every distinct function on the stack gets the sample once (recursion counted once).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = label(byId.get(cur)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  });
  const ms = (us: number) => (us / 1000).toFixed(0).padStart(7);
  const share = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)}%`;
  const list = (m: Map<string, number>, n: number, skip?: (k: string) => boolean) =>
    [...m.entries()].filter(([k]) => !skip?.(k)).sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${ms(v)} ms ${share(v)}  ${k}`);
  const wrappers = (k: string) => k.startsWith('(root)') || k.startsWith('(program)') || /^(processTicksAndRejections|listOnTimeout|processTimers|emit|runMicrotasks) /.test(k);
  return [
    `busy ${ms(total)} ms, idle ${ms(idle)} ms (${((total / (total + idle)) * 100).toFixed(0)}% of the thread's wall time busy)`,
    '',
    'self time by package:',
    ...list(perPackage, 20),
    '',
    'self time by package, node internals and native code charged to the package that called them:',
    ...list(perCaller, 20),
    '',
    `top ${top} functions by self time:`,
    ...list(self, top),
    '',
    `top ${top} functions by inclusive time (event-loop wrappers left out):`,
    ...list(inclusive, top, wrappers),
  ].join('\n');
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: profile-summary <file.cpuprofile> [top N]');
    process.exit(2);
  }
  console.log(summarise(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile, Number(process.argv[3] ?? 25)));
}
