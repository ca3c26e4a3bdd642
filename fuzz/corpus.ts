/**
 * fuzz/corpus/<target>/<hash>.json: one input per outcome class (target + code + normalised message) the
 * fuzzer has seen, replayed before each run. Bounded: at most MAX_PER_TARGET files per target, each at most
 * MAX_ENTRY_BYTES, so the committed corpus stays a few hundred small files.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { normalise, type CorpusEntry, type Outcome } from './case';

export const MAX_PER_TARGET = 30;
export const MAX_ENTRY_BYTES = 6 * 1024;

export class Corpus {
  private readonly classes = new Set<string>();
  private readonly counts = new Map<string, number>();
  readonly added: string[] = [];

  constructor(readonly dir: string, private readonly writable: boolean) {}

  static classOf(target: string, outcome: Outcome): string {
    return `${target} ${outcome.code} ${normalise(outcome.message)}`;
  }

  /** Every stored entry, in a stable order; their classes count as seen. */
  load(): CorpusEntry[] {
    const entries: CorpusEntry[] = [];
    if (!fs.existsSync(this.dir)) return entries;
    for (const target of fs.readdirSync(this.dir).sort()) {
      const folder = path.join(this.dir, target);
      if (!fs.statSync(folder).isDirectory()) continue;
      for (const file of fs.readdirSync(folder).filter((f) => f.endsWith('.json')).sort()) {
        const entry = JSON.parse(fs.readFileSync(path.join(folder, file), 'utf8')) as CorpusEntry;
        entries.push(entry);
        this.classes.add(entry.outcome);
        this.counts.set(target, (this.counts.get(target) ?? 0) + 1);
      }
    }
    return entries;
  }

  /** Keeps the input if its outcome class is new (and the target's share and the entry's size allow). */
  consider(target: string, seed: number, c: CorpusEntry['case'], outcome: Outcome): void {
    const cls = Corpus.classOf(target, outcome);
    if (this.classes.has(cls)) return;
    this.classes.add(cls);
    const count = this.counts.get(target) ?? 0;
    const entry: CorpusEntry = { target, seed, outcome: cls, case: c };
    const text = `${JSON.stringify(entry, null, 1)}\n`;
    if (count >= MAX_PER_TARGET || text.length > MAX_ENTRY_BYTES) return;
    this.counts.set(target, count + 1);
    const file = path.join(this.dir, target, `${createHash('sha256').update(cls).digest('hex').slice(0, 16)}.json`);
    this.added.push(path.relative(this.dir, file));
    if (!this.writable) return;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
}
