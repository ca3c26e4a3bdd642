/**
 * Runs config cases in-process through the repository's own entry point, readFolderConfig (config.yaml,
 * config.pbtxt, or both present), in a temp model folder of a temp repository. Its documented failure is a plain Error whose message
 * says which file and why; anything else thrown (TypeError, RangeError, a ZodError, a PbtxtError that escaped
 * its wrapper) is a parser bug, and so is a result that is not a config.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readFolderConfig } from '../src/repository/folder-config';
import type { Case, Outcome } from './case';

/** How every documented refusal begins (model-config.ts, folder-config.ts, triton-config-file.ts). */
const DOCUMENTED = /^(invalid config\.yaml: |config\.yaml is not valid YAML: |invalid config\.pbtxt: |config\.pbtxt cannot be served: |both config\.yaml and config\.pbtxt are present)/;
/** A parse slower than this on a few-KiB text is a hang (a runaway regex or loop). */
const SLOW_MS = 5000;

export class ConfigExecutor {
  private readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-fuzz-config-'));
  private readonly dir = path.join(this.root, 'fuzz');

  private readonly removeOnExit = () => fs.rmSync(this.root, { recursive: true, force: true });

  constructor() {
    fs.mkdirSync(this.dir);
    process.once('exit', this.removeOnExit);
  }

  close(): void {
    process.off('exit', this.removeOnExit);
    this.removeOnExit();
  }

  /** One at a time (the runner awaits each): the files are rewritten per case. */
  async run(c: Extract<Case, { kind: 'config' }>): Promise<Outcome> {
    for (const f of ['config.yaml', 'config.pbtxt']) fs.rmSync(path.join(this.dir, f), { force: true });
    if (c.file === 'both') {
      fs.writeFileSync(path.join(this.dir, 'config.yaml'), c.text);
      fs.writeFileSync(path.join(this.dir, 'config.pbtxt'), '');
    } else fs.writeFileSync(path.join(this.dir, c.file), c.text);
    const started = performance.now();
    const violations: string[] = [];
    let outcome: Outcome;
    try {
      const result = await readFolderConfig(this.root, this.dir, 'fuzz');
      if (result === null || typeof result.config !== 'object' || !Array.isArray(result.warnings)) violations.push('the result is not a config');
      outcome = { code: 'ok', message: result.warnings[0] ?? '', violations };
    } catch (err) {
      const e = err as Error;
      const name = e?.constructor?.name ?? typeof err;
      if (!(err instanceof Error) || e.constructor !== Error) violations.push(`threw ${name}, not the documented Error: ${e?.message ?? String(err)}`);
      else if (!DOCUMENTED.test(e.message)) violations.push(`threw an Error without the documented prefix: ${e.message.slice(0, 300)}`);
      outcome = { code: e?.constructor === Error ? 'refused' : name, message: e?.message ?? String(err), violations };
    }
    const ms = performance.now() - started;
    if (ms > SLOW_MS) outcome.violations.push(`hang: the parse took ${Math.round(ms)} ms`);
    return outcome;
  }
}
