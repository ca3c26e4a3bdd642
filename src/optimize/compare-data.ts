/**
 * The rows `compare` runs both versions on: a user's JSON Lines file (--data) or inputs made from the model's
 * metadata. Rows are kept one by one (bytes, or token ids for text) and put together into batches of any size
 * on demand, so the same rows feed the accuracy pass and every batch size of the speed measurement.
 */
import * as fs from 'node:fs';
import { dataTypeByName } from '../core/dtype';
import type { InferTensor, TensorSpec } from '../core/tensor';
import { valuesToBytes } from '../core/tensor-values';
import { SeededRandom } from '../generation/seeded-random';
import { PAD_ID, UNKNOWN_ID, type TextClassificationPipeline } from '../pipelines/text-classification';
import { seededInputs } from './sample-inputs';

export interface CompareRows {
  count: number;
  /** Per row: the class index its label names, or undefined for a row without one. */
  labels: (number | undefined)[];
  /** What the rows are, for the report's footer. */
  source: string;
  /** The model inputs for these rows, in this order (a model without a batch dimension takes one row a run). */
  batch(rows: readonly number[]): InferTensor[];
}

/** What the rows must fit: the model's inputs, whether it has a batch dimension, its text pipeline. */
export interface RowTarget {
  specs: readonly TensorSpec[];
  /** config max_batch_size > 0: every input's dim 0 is the batch, and a row is one slice along it. */
  batched: boolean;
  pipeline?: TextClassificationPipeline;
}

/** Seeded rows when the user gives none; a model without a batch dimension takes a whole input set per row. */
export const SEEDED_ROWS = 256;
const SEEDED_SAMPLES = 32;
/** Dynamic dimensions of a model without a batch dimension, in seeded samples. */
const SEEDED_UNBATCHED_DIM = 8;

// ------------------------------------------------------------------ tensor rows

/** Rows of byte slices, one per input, all rows of an input the same shape (its row shape). */
class TensorRows implements CompareRows {
  constructor(
    private readonly specs: readonly TensorSpec[],
    private readonly batched: boolean,
    private readonly rowShapes: number[][],
    private readonly rows: Uint8Array[][],
    readonly labels: (number | undefined)[],
    readonly source: string,
  ) {}

  get count(): number {
    return this.rows.length;
  }

  batch(indices: readonly number[]): InferTensor[] {
    return this.specs.map((spec, i) => {
      const parts = indices.map((r) => this.rows[r]![i]!);
      if (!this.batched) return { name: spec.name, dtype: spec.dtype, shape: this.rowShapes[i]!, data: parts[0]! };
      const data = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let offset = 0;
      for (const p of parts) {
        data.set(p, offset);
        offset += p.byteLength;
      }
      return { name: spec.name, dtype: spec.dtype, shape: [indices.length, ...this.rowShapes[i]!], data };
    });
  }
}

/**
 * Seeded inputs from the model's metadata (sample-inputs.ts), cut into rows along the batch dimension. Token ids
 * of a text model are drawn from its vocabulary instead of seededInputs' zeros: all-padding rows would compare
 * the versions on one constant input.
 */
export function seededRows(target: RowTarget): CompareRows {
  const vocabulary = target.pipeline ? (t: InferTensor, seed: bigint) => fillTokenIds(t, target.pipeline!, seed) : (t: InferTensor) => t;
  if (!target.batched) {
    const rows = Array.from({ length: SEEDED_SAMPLES }, (_, i) => seededInputs(target.specs, SEEDED_UNBATCHED_DIM, 14n + BigInt(i)).map((t) => vocabulary(t, BigInt(i))));
    const shapes = rows[0]!.map((t) => t.shape);
    return new TensorRows(target.specs, false, shapes, rows.map((r) => r.map((t) => t.data)), rows.map(() => undefined), `${SEEDED_SAMPLES} seeded input sets from the model's metadata (dynamic dims ${SEEDED_UNBATCHED_DIM})`);
  }
  const whole = seededInputs(target.specs, SEEDED_ROWS).map((t) => vocabulary(t, 0n));
  const shapes = whole.map((t) => t.shape.slice(1));
  const rows = Array.from({ length: SEEDED_ROWS }, (_, r) =>
    whole.map((t) => {
      const rowBytes = t.data.byteLength / SEEDED_ROWS;
      return t.data.subarray(r * rowBytes, (r + 1) * rowBytes);
    }),
  );
  const dynamic = target.specs.some((s) => s.shape.slice(1).some((d) => d < 0)) ? `, other dynamic dims ${SEEDED_ROWS}` : '';
  return new TensorRows(target.specs, true, shapes, rows, rows.map(() => undefined), `${SEEDED_ROWS} seeded rows from the model's metadata${dynamic}`);
}

function fillTokenIds(t: InferTensor, pipeline: TextClassificationPipeline, seed: bigint): InferTensor {
  if (t.name !== pipeline.config.input || t.dtype !== 'INT64') return t;
  const random = new SeededRandom(seed + 41n);
  const ids = new BigInt64Array(t.data.byteLength / 8);
  const words = Math.max(1, pipeline.vocabularySize - UNKNOWN_ID - 1);
  for (let i = 0; i < ids.length; i++) ids[i] = BigInt(UNKNOWN_ID + 1 + Math.floor(random.next() * words));
  return { ...t, data: new Uint8Array(ids.buffer) };
}

// ------------------------------------------------------------------ text rows

/** Token ids per row, padded with the pad id to the longest row of each batch. */
class TextRows implements CompareRows {
  constructor(
    private readonly input: string,
    private readonly ids: BigInt64Array[],
    readonly labels: (number | undefined)[],
    readonly source: string,
  ) {}

  get count(): number {
    return this.ids.length;
  }

  batch(indices: readonly number[]): InferTensor[] {
    const width = Math.max(1, ...indices.map((r) => this.ids[r]!.length));
    const data = new BigInt64Array(indices.length * width).fill(BigInt(PAD_ID));
    indices.forEach((r, i) => data.set(this.ids[r]!, i * width));
    return [{ name: this.input, dtype: 'INT64', shape: [indices.length, width], data: new Uint8Array(data.buffer) }];
  }
}

// ------------------------------------------------------------------ --data files

type Line = Record<string, unknown>;

/**
 * Reads a JSON Lines file: `{"inputs": {NAME: one row as a nested array}, "label"?: N}` per line for a tensor
 * model, `{"text": "...", "label"?: "positive" | 1}` for a text_classification model. Blank lines are skipped;
 * any other bad line throws naming its number and what was expected.
 */
export function readDataFile(file: string, target: RowTarget): CompareRows {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`--data ${file} cannot be read: ${(err as Error).message}`);
  }
  const lines: { n: number; value: Line }[] = [];
  const expected = target.pipeline
    ? `{"text": "...", "label"?: ${target.pipeline.config.labels.map((l) => JSON.stringify(l)).join(' | ')} | class index}`
    : `{"inputs": {${target.specs.map((s) => `"${s.name}": [...]`).join(', ')}}, "label"?: class index} (one row, no batch dimension)`;
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const where = `--data ${file} line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new Error(`${where} is not JSON (${(err as Error).message}); expected ${expected}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${where} is not a JSON object; expected ${expected}`);
    lines.push({ n: i + 1, value: value as Line });
  });
  if (lines.length === 0) throw new Error(`--data ${file} has no rows; expected one JSON object a line: ${expected}`);
  const where = (n: number) => `--data ${file} line ${n}`;
  const labels = lines.map(({ n, value }) => readLabel(value.label, target, where(n)));
  const labelled = labels.filter((l) => l !== undefined).length;
  const source = `${file}, ${lines.length} rows${labelled > 0 ? ` (${labelled} labelled)` : ''}`;
  if (target.pipeline) {
    const pipeline = target.pipeline;
    const ids = lines.map(({ n, value }) => {
      if (typeof value.text !== 'string') throw new Error(`${where(n)} has no "text" string; expected ${expected}`);
      const extra = Object.keys(value).filter((k) => k !== 'text' && k !== 'label');
      if (extra.length > 0) throw new Error(`${where(n)} has unknown field ${extra.map((k) => `"${k}"`).join(', ')}; expected ${expected}`);
      // The pipeline's own encoding, as the server tokenizes a request's text (an empty text is one pad token).
      const t = pipeline.encode(value.text);
      return new BigInt64Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 8);
    });
    return new TextRows(pipeline.config.input, ids, labels, source);
  }
  const shapes: (number[] | undefined)[] = target.specs.map(() => undefined);
  const rows = lines.map(({ n, value }) => {
    const inputs = value.inputs;
    if (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs)) throw new Error(`${where(n)} has no "inputs" object; expected ${expected}`);
    const extra = [...Object.keys(value).filter((k) => k !== 'inputs' && k !== 'label').map((k) => `field "${k}"`), ...Object.keys(inputs).filter((k) => !target.specs.some((s) => s.name === k)).map((k) => `input "${k}"`)];
    if (extra.length > 0) throw new Error(`${where(n)} has unknown ${extra.join(', ')}; expected ${expected}`);
    return target.specs.map((spec, i) => {
      const given = (inputs as Record<string, unknown>)[spec.name];
      if (given === undefined) throw new Error(`${where(n)} lacks input "${spec.name}"; expected ${expected}`);
      const row = rowValues(given, spec, target.batched, `${where(n)} input "${spec.name}"`);
      const first = shapes[i];
      if (first === undefined) shapes[i] = row.shape;
      else if (first.join() !== row.shape.join()) {
        throw new Error(`${where(n)} input "${spec.name}" has shape [${row.shape.join(', ')}] but earlier rows have [${first.join(', ')}]; rows are batched together, so every row of an input must have one shape`);
      }
      return row.bytes;
    });
  });
  return new TensorRows(target.specs, target.batched, shapes as number[][], rows, labels, source);
}

function readLabel(label: unknown, target: RowTarget, where: string): number | undefined {
  if (label === undefined) return undefined;
  const names = target.pipeline?.config.labels;
  if (typeof label === 'string' && names) {
    const index = names.indexOf(label);
    if (index < 0) throw new Error(`${where}: label ${JSON.stringify(label)} is not one of the model's labels (${names.join(', ')})`);
    return index;
  }
  if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || (names && label >= names.length)) {
    const range = names ? `a class index 0-${names.length - 1} or one of ${names.map((l) => JSON.stringify(l)).join(', ')}` : 'a class index (an integer, 0 or more)';
    throw new Error(`${where}: label ${JSON.stringify(label)} is not ${range}`);
  }
  return label;
}

/** One row's values of an input: a nested array whose shape must fit the input's row shape (dims after the batch). */
function rowValues(given: unknown, spec: TensorSpec, batched: boolean, where: string): { shape: number[]; bytes: Uint8Array } {
  const info = dataTypeByName(spec.dtype);
  if (!info?.arrayType || spec.dtype === 'STRING') throw new Error(`${where}: dtype ${spec.dtype} cannot be given in a --data file`);
  const want = batched ? spec.shape.slice(1) : spec.shape;
  const values: number[] = [];
  const shape: number[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth === want.length) {
      if (typeof v === 'boolean' && spec.dtype === 'BOOL') values.push(v ? 1 : 0);
      else if (typeof v === 'number' && Number.isFinite(v)) values.push(v);
      else throw new Error(`${where}: ${JSON.stringify(v)?.slice(0, 40)} at depth ${depth} is not a number; expected a nested array of ${want.length} dims [${want.map((d) => (d < 0 ? 'any' : d)).join(', ')}] of ${spec.dtype} numbers`);
      return;
    }
    if (!Array.isArray(v)) throw new Error(`${where}: expected a nested array of ${want.length} dims [${want.map((d) => (d < 0 ? 'any' : d)).join(', ')}], found a ${typeof v} at depth ${depth}`);
    if (shape[depth] === undefined) shape[depth] = v.length;
    else if (shape[depth] !== v.length) throw new Error(`${where}: ragged array (lengths ${shape[depth]} and ${v.length} at depth ${depth})`);
    const fixed = want[depth]!;
    if (fixed >= 0 && v.length !== fixed) throw new Error(`${where}: dim ${depth} has ${v.length} values, the model's input takes ${fixed} (row shape [${want.join(', ')}])`);
    for (const x of v) walk(x, depth + 1);
  };
  walk(given, 0);
  if (shape.length < want.length) throw new Error(`${where}: an empty array; expected a row of shape [${want.join(', ')}]`);
  const integer = !['FP32', 'FP64', 'FP16'].includes(spec.dtype);
  if (integer && values.some((x) => !Number.isInteger(x))) throw new Error(`${where}: ${spec.dtype} values must be integers`);
  return { shape, bytes: valuesToBytes(spec.dtype, values) };
}
