/**
 * The accuracy half of `compare`: every row through both versions once, and per output how far B's values are
 * from A's, how often their top-1 class agrees, and (for labelled rows) how often each version is right.
 */
import type { InferTensor } from '../core/tensor';
import type { NativeSession } from '../runtime/ort-session';
import type { CompareRows } from './compare-data';
import { argmaxRows, difference } from './output-difference';

export interface OutputChange {
  name: string;
  /** Largest |B - A| over every value; null in JSON (Infinity here) when the shapes differ or only one is NaN. */
  maxAbs: number;
  meanAbs: number;
  values: number;
  /** Outputs whose last dimension is > 1: the share of rows (positions before the last dim) whose argmax agrees. */
  top1Agreement?: number;
  top1Rows?: number;
}

export interface TaskAccuracy {
  /** The classifier output the argmax is taken of. */
  output: string;
  labelled: number;
  a: number;
  b: number;
}

export interface AccuracyResult {
  outputs: OutputChange[];
  accuracy?: TaskAccuracy;
}

interface Tally {
  max: number;
  sum: number;
  values: number;
  agree: number;
  rows: number;
  classes: number;
}

/**
 * Runs every row once through A and B in batches of `batch` rows (both see exactly the same batches, padding
 * included) and compares the outputs both have. `classifier` names the output task accuracy is read from
 * (a text pipeline's output); otherwise it is the first output with one row of classes per input row.
 */
export function compareOutputs(
  sessions: readonly [NativeSession, NativeSession],
  names: readonly string[],
  rows: CompareRows,
  batch: number,
  classifier: string | undefined,
  progress?: (done: number) => void,
): AccuracyResult {
  const tallies = new Map<string, Tally>(names.map((n) => [n, { max: 0, sum: 0, values: 0, agree: 0, rows: 0, classes: 0 }]));
  let scored: string | undefined = classifier;
  let labelled = 0;
  const correct = [0, 0];
  for (let start = 0; start < rows.count; start += batch) {
    const indices = Array.from({ length: Math.min(batch, rows.count - start) }, (_, i) => start + i);
    const inputs = rows.batch(indices);
    const a = byName(sessions[0].run(inputs, names).outputs);
    const b = byName(sessions[1].run(inputs, names).outputs);
    for (const name of names) {
      const x = a.get(name)!;
      const y = b.get(name)!;
      const t = tallies.get(name)!;
      const d = difference(x, y);
      t.max = Math.max(t.max, d.maxAbs);
      t.sum += d.count > 0 ? d.meanAbs * d.count : d.maxAbs; // Infinity stays Infinity
      t.values += d.count;
      t.classes = classes(x);
      if (t.classes > 1) {
        const [ax, ay] = [argmaxRows(x), argmaxRows(y)];
        for (let i = 0; i < Math.min(ax.length, ay.length); i++) if (ax[i] === ay[i]) t.agree++;
        t.rows += Math.max(ax.length, ay.length);
      }
    }
    scored ??= names.find((n) => classes(a.get(n)!) > 1 && argmaxRows(a.get(n)!).length === indices.length);
    if (scored !== undefined) {
      const [pa, pb] = [argmaxRows(a.get(scored)!), argmaxRows(b.get(scored)!)];
      indices.forEach((r, i) => {
        const label = rows.labels[r];
        if (label === undefined) return;
        labelled++;
        if (pa[i] === label) correct[0]!++;
        if (pb[i] === label) correct[1]!++;
      });
    }
    progress?.(Math.min(1, (start + indices.length) / rows.count));
  }
  const outputs = names.map((name): OutputChange => {
    const t = tallies.get(name)!;
    return {
      name,
      maxAbs: t.max,
      meanAbs: t.values > 0 ? t.sum / t.values : t.max,
      values: t.values,
      ...(t.classes > 1 ? { top1Agreement: t.rows > 0 ? t.agree / t.rows : 0, top1Rows: t.rows } : {}),
    };
  });
  const accuracy = scored !== undefined && labelled > 0 ? { output: scored, labelled, a: correct[0]! / labelled, b: correct[1]! / labelled } : undefined;
  return { outputs, ...(accuracy ? { accuracy } : {}) };
}

const classes = (t: InferTensor) => t.shape[t.shape.length - 1] ?? 0;

function byName(outputs: InferTensor[]): Map<string, InferTensor> {
  return new Map(outputs.map((t) => [t.name, t]));
}
