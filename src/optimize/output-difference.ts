/**
 * How far one version's outputs are from another's on the same inputs: the accuracy half of `optimize`'s check
 * and of `compare`'s report.
 */
import { dataTypeByName } from '../core/dtype';
import type { InferTensor } from '../core/tensor';

/** Values of a numeric tensor as numbers (float16 decoded); undefined for strings and unknown types. */
export function numericValues(t: InferTensor): ArrayLike<number> | undefined {
  const info = dataTypeByName(t.dtype);
  if (!info?.arrayType || t.dtype === 'STRING') return undefined;
  const copy = t.data.slice().buffer; // aligned for the element type, whatever offset the bytes came at
  if (t.dtype === 'FP16') return Array.from(new Uint16Array(copy), float16ToNumber);
  const typed = new info.arrayType(copy);
  return typed instanceof BigInt64Array || typed instanceof BigUint64Array ? Array.from(typed, Number) : (typed as ArrayLike<number>);
}

/** IEEE 754 half precision bits to a number (Node 20 has no Float16Array). */
export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

export interface Difference {
  /** Largest absolute difference; Infinity when the shapes differ or a value is NaN in one only. */
  maxAbs: number;
  meanAbs: number;
  count: number;
}

export function difference(a: InferTensor, b: InferTensor): Difference {
  const x = numericValues(a);
  const y = numericValues(b);
  if (!x || !y || x.length !== y.length || a.shape.join() !== b.shape.join()) return { maxAbs: Infinity, meanAbs: Infinity, count: 0 };
  let worst = 0;
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    const same = d === 0 || (Number.isNaN(x[i]!) && Number.isNaN(y[i]!));
    const diff = same ? 0 : Number.isNaN(d) ? Infinity : d;
    worst = Math.max(worst, diff);
    sum += diff;
  }
  return { maxAbs: worst, meanAbs: x.length > 0 ? sum / x.length : 0, count: x.length };
}

/**
 * The index of the largest value in each row of a [rows, classes] (or [rows, ..., classes]) output: the
 * predicted class, for top-1 agreement between versions and task accuracy against labels.
 */
export function argmaxRows(t: InferTensor): number[] {
  const values = numericValues(t);
  const classes = t.shape[t.shape.length - 1] ?? 0;
  if (!values || classes <= 0) return [];
  const rows: number[] = [];
  for (let start = 0; start + classes <= values.length; start += classes) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (values[start + c]! > values[start + best]!) best = c;
    rows.push(best);
  }
  return rows;
}
