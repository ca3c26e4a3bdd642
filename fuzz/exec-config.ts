/**
 * Runs config cases in-process through the parsers' own entry points: config.yaml through readModelConfig
 * (from a temp file, as the repository reads it), config.pbtxt through parseTritonConfigText and
 * convertTritonConfig (what readTritonConfigFile runs on the file's text). Their documented failures: a plain
 * Error naming config.yaml and why; a PbtxtError (file:line:col); for a parsed Triton config, problems returned,
 * never thrown. Anything else thrown (TypeError, RangeError, a ZodError) is a parser bug, and so is a result
 * that is not a config.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readModelConfig } from '../src/repository/model-config';
import { PbtxtError } from '../src/repository/triton/pbtxt';
import { convertTritonConfig, type TritonModelConfig } from '../src/repository/triton/triton-config';
import { parseTritonConfigText } from '../src/repository/triton/triton-schema';
import type { Case, Outcome } from './case';

/** How every documented config.yaml refusal begins (model-config.ts). */
const DOCUMENTED_YAML = /^(invalid config\.yaml: |config\.yaml is not valid YAML: )/;
/** A parse slower than this on a few-KiB text is a hang (a runaway regex or loop). */
const SLOW_MS = 5000;

export class ConfigExecutor {
  private readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-fuzz-config-'));
  private readonly file = path.join(this.root, 'config.yaml');
  private readonly removeOnExit = () => fs.rmSync(this.root, { recursive: true, force: true });

  constructor() {
    process.once('exit', this.removeOnExit);
    quietYamlWarnings();
  }

  close(): void {
    process.off('exit', this.removeOnExit);
    this.removeOnExit();
  }

  /** One at a time (the runner chains them): the yaml file is rewritten per case. */
  async run(c: Extract<Case, { kind: 'config' }>): Promise<Outcome> {
    const started = performance.now();
    const outcome = c.file === 'config.pbtxt' ? this.pbtxt(c.text) : await this.yaml(c.text);
    const ms = performance.now() - started;
    if (ms > SLOW_MS) outcome.violations.push(`hang: the parse took ${Math.round(ms)} ms`);
    return outcome;
  }

  private async yaml(text: string): Promise<Outcome> {
    fs.writeFileSync(this.file, text);
    try {
      const config = await readModelConfig(this.file, 'fuzz');
      return { code: 'ok', message: '', violations: config !== null && typeof config === 'object' ? [] : ['the result is not a config'] };
    } catch (err) {
      return refused(err, (e) => e.constructor === Error && DOCUMENTED_YAML.test(e.message));
    }
  }

  private pbtxt(text: string): Outcome {
    try {
      const parsed = parseTritonConfigText(text);
      const converted = convertTritonConfig(parsed.message as TritonModelConfig, { modelName: 'fuzz', unsupported: parsed.unsupported });
      const violations = converted.config === undefined && converted.problems.length === 0 ? ['no config and no problem said why'] : [];
      return converted.config ? { code: 'ok', message: converted.warnings[0] ?? '', violations } : { code: 'problems', message: converted.problems[0] ?? '', violations };
    } catch (err) {
      return refused(err, (e) => e instanceof PbtxtError);
    }
  }
}

function refused(err: unknown, documented: (e: Error) => boolean): Outcome {
  const e = err as Error;
  const name = e?.constructor?.name ?? typeof err;
  const violations = err instanceof Error && documented(e) ? [] : [`threw ${name}, not the documented error: ${(e?.message ?? String(err)).slice(0, 300)}`];
  return { code: err instanceof Error && documented(e) ? 'refused' : name, message: e?.message ?? String(err), violations };
}

/**
 * The yaml library reports what it tolerates in a text (an ambiguous alias, an unresolved tag) as process
 * warnings, which Node prints: thousands of lines for fuzzed texts. Those are dropped; every other warning is
 * still printed, as Node would.
 */
function quietYamlWarnings(): void {
  if (process.listeners('warning').some((l) => l.name === 'printUnlessYaml')) return;
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', function printUnlessYaml(w: Error) {
    if (w.name !== 'YAMLWarning') for (const p of printers) p(w);
  });
}
