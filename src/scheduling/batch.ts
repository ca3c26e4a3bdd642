/**
 * Merging requests into one batch along dim 0 and splitting the batch's outputs back, exactly. Only
 * requests with the same signature (dtypes, dims after the first, requested outputs) are merged.
 */
import { dataTypeByName } from '../core/dtype';
import { internal } from '../core/errors';
import type { InferTensor } from '../core/tensor';

/** What must agree for requests to share a batch. */
export function batchSignature(inputs: readonly InferTensor[], outputs: readonly string[]): string {
  const parts = [...inputs]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((t) => `${t.name}:${t.dtype}:${t.shape.slice(1).join('x')}`);
  return `${parts.join('|')}=>${outputs.join(',')}`;
}

/** Rows (dim 0) a request carries; every input must agree. Undefined when they do not. */
export function batchRows(inputs: readonly InferTensor[]): number | undefined {
  let rows: number | undefined;
  for (const t of inputs) {
    const d = t.shape[0];
    if (d === undefined) return undefined;
    if (rows === undefined) rows = d;
    else if (rows !== d) return undefined;
  }
  return rows;
}

/**
 * Concatenates each input along dim 0 into one freshly allocated buffer per input (which the pool may
 * then transfer to a worker without another copy).
 */
export function mergeInputs(members: readonly (readonly InferTensor[])[]): InferTensor[] {
  const first = members[0]!;
  return first.map((template) => {
    const parts = members.map((inputs) => inputs.find((t) => t.name === template.name)!);
    const rows = parts.reduce((n, t) => n + t.shape[0]!, 0);
    const shape = [rows, ...template.shape.slice(1)];
    if (template.dtype === 'STRING') {
      return { name: template.name, dtype: template.dtype, shape, data: new Uint8Array(0), strings: parts.flatMap((t) => t.strings ?? []) };
    }
    const data = new Uint8Array(parts.reduce((n, t) => n + t.data.byteLength, 0));
    let offset = 0;
    for (const t of parts) {
      data.set(t.data, offset);
      offset += t.data.byteLength;
    }
    return { name: template.name, dtype: template.dtype, shape, data };
  });
}

/**
 * Splits batch outputs back per member by its row count. Numeric slices are views into the batch's
 * buffer (no copy); every output must carry the batch along dim 0.
 */
export function splitOutputs(outputs: readonly InferTensor[], memberRows: readonly number[]): InferTensor[][] {
  const total = memberRows.reduce((a, b) => a + b, 0);
  const perMember: InferTensor[][] = memberRows.map(() => []);
  for (const out of outputs) {
    if (out.shape[0] !== total) {
      throw internal(`batched output '${out.name}' has dim 0 = ${out.shape[0]}, expected the batch's ${total} rows; the model cannot be batched`);
    }
    const rest = out.shape.slice(1);
    const rowElements = rest.reduce((a, b) => a * b, 1);
    const rowBytes = rowElements * (dataTypeByName(out.dtype)?.byteSize ?? 0);
    let row = 0;
    memberRows.forEach((rows, i) => {
      const shape = [rows, ...rest];
      if (out.dtype === 'STRING') {
        perMember[i]!.push({ name: out.name, dtype: out.dtype, shape, data: new Uint8Array(0), strings: out.strings!.slice(row * rowElements, (row + rows) * rowElements) });
      } else {
        const data = new Uint8Array(out.data.buffer, out.data.byteOffset + row * rowBytes, rows * rowBytes);
        perMember[i]!.push({ name: out.name, dtype: out.dtype, shape, data });
      }
      row += rows;
    });
  }
  return perMember;
}
