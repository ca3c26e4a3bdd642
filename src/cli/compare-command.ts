/**
 * `tensorgate compare MODEL A B [--models DIR] [--data FILE] [--json] [--batch-sizes 1,8,32] [--seconds S]`:
 * runs versions A and B of a model on the same rows (src/optimize/compare-versions.ts) and prints the report
 * as a table, or JSON with --json. A progress bar goes to stderr only when stderr is a terminal, so pipes,
 * logs and tests never see its control characters.
 */
import { SingleBar } from 'cli-progress';
import { reportJson, reportTable } from '../optimize/compare-report';
import { compareVersions } from '../optimize/compare-versions';
import { BUNDLED_MODELS_DIR } from '../paths';

const USAGE = 'usage: tensorgate compare MODEL A B [--models DIR] [--data FILE] [--json] [--batch-sizes 1,8,32] [--seconds S]';

export async function compareCommand(
  positionals: string[],
  flags: { models?: string; data?: string; json?: boolean; batchSizes?: string; seconds?: string },
): Promise<void> {
  if (positionals.length !== 3) throw new Error(`${USAGE} (MODEL and two versions A and B, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'})`);
  const [model, a, b] = positionals as [string, string, string];
  const version = (v: string, which: string) => {
    if (!/^[1-9][0-9]*$/.test(v)) throw new Error(`version ${which} must be a positive integer (a version folder of the model), got '${v}'`);
    return Number(v);
  };
  let batchSizes: number[] | undefined;
  if (flags.batchSizes !== undefined) {
    if (!/^\s*[0-9]+(\s*,\s*[0-9]+)*\s*$/.test(flags.batchSizes)) throw new Error(`--batch-sizes takes positive integers separated by commas (e.g. 1,8,32), got '${flags.batchSizes}'`);
    batchSizes = flags.batchSizes.split(',').map(Number);
  }
  const seconds = flags.seconds === undefined ? undefined : Number(flags.seconds);
  if (seconds !== undefined && !(seconds > 0 && seconds <= 3600)) throw new Error(`--seconds takes the run time per version per batch size, a number above 0 (up to 3600), got '${flags.seconds}'`);

  // A bar only for a person watching: anything else would get carriage returns and cursor codes in its text.
  const bar = process.stderr.isTTY ? new SingleBar({ stream: process.stderr, format: 'compare {bar} {percentage}% | {phase}', clearOnComplete: true, hideCursor: true }) : undefined;
  bar?.start(1, 0, { phase: 'loading' });
  let report;
  try {
    report = await compareVersions({
      models: flags.models ?? process.env.TENSORGATE_MODELS ?? BUNDLED_MODELS_DIR,
      model,
      a: version(a, 'A'),
      b: version(b, 'B'),
      ...(flags.data !== undefined ? { data: flags.data } : {}),
      ...(batchSizes ? { batchSizes } : {}),
      ...(seconds !== undefined ? { seconds } : {}),
      ...(bar ? { progress: (done: number, phase: string) => bar.update(done, { phase }) } : {}),
    });
  } finally {
    bar?.stop();
  }
  process.stdout.write(flags.json ? `${reportJson(report)}\n` : reportTable(report));
}
