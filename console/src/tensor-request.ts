/**
 * Tensor requests from a model's metadata: a valid random v2 JSON infer body to start from, and the same
 * inputs as tensorgate.v1 Predict tensors (little-endian bytes, base64) for a buf curl command.
 */
import type { TensorSpec } from './models.js';

export interface V2Input {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

export interface V2Body {
  inputs: V2Input[];
}

/** Our dtype names are the v2 datatypes, except strings: STRING here, BYTES in v2. */
const v2Datatype = (dtype: string) => (dtype === 'STRING' ? 'BYTES' : dtype);

function randomValue(datatype: string): unknown {
  if (datatype.startsWith('FP') || datatype === 'BF16') return Math.round((Math.random() * 2 - 1) * 1e4) / 1e4;
  if (datatype === 'BOOL') return Math.random() < 0.5;
  if (datatype === 'BYTES') return 'text';
  return Math.floor(Math.random() * 10); // small, valid for every integer type (and most id tables)
}

/** A body with every input filled with random values; variable dimensions (-1) become 1. */
export function randomBody(inputs: TensorSpec[]): V2Body {
  return {
    inputs: inputs.map((s) => {
      const shape = s.shape.map((d) => (d < 0 ? 1 : d));
      const datatype = v2Datatype(s.dtype);
      const count = shape.reduce((a, b) => a * b, 1);
      return { name: s.name, datatype, shape, data: Array.from({ length: count }, () => randomValue(datatype)) };
    }),
  };
}

/** The body as the editor shows it: one line per input, data on one line (large inputs stay readable). */
export function formatBody(body: V2Body): string {
  const inputs = body.inputs.map((i) => `    {"name": ${JSON.stringify(i.name)}, "datatype": ${JSON.stringify(i.datatype)}, "shape": ${JSON.stringify(i.shape)},\n     "data": ${JSON.stringify(i.data)}}`);
  return `{\n  "inputs": [\n${inputs.join(',\n')}\n  ]\n}`;
}

const ARRAYS: Record<string, { new (values: number[]): ArrayBufferView } | undefined> = {
  FP32: Float32Array,
  FP64: Float64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  BOOL: Uint8Array,
};

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Typed arrays are little-endian on every platform a browser runs on (x86, ARM). */
function elementBytes(datatype: string, values: unknown[]): Uint8Array | undefined {
  if (datatype === 'INT64' || datatype === 'UINT64') {
    const array = datatype === 'INT64' ? BigInt64Array.from(values.map((v) => BigInt(v as number))) : BigUint64Array.from(values.map((v) => BigInt(v as number)));
    return new Uint8Array(array.buffer);
  }
  const Type = ARRAYS[datatype];
  if (!Type) return undefined;
  const view = new Type(values.map((v) => Number(v)));
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** A Predict tensor for an input, or undefined for a dtype written here as no bytes (FP16, BF16). */
export function predictTensor(input: V2Input): Record<string, unknown> | undefined {
  const values = input.data.flat(Infinity as 1);
  if (input.datatype === 'BYTES') return { name: input.name, dtype: 'STRING', shape: input.shape, string_data: values.map(String) };
  const bytes = elementBytes(input.datatype, values);
  return bytes ? { name: input.name, dtype: input.datatype, shape: input.shape, data: base64(bytes) } : undefined;
}
