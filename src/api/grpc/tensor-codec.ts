/**
 * tensorgate.v1.Tensor <-> InferTensor. Numeric data stays in the bytes it arrived in (no per-element
 * conversion); only the dtype enum and shape are translated.
 */
import { DATA_TYPE_NAMES, dataTypeByName, type DataTypeName } from '../../core/dtype';
import { echo, invalidArgument } from '../../core/errors';
import type { InferTensor } from '../../core/tensor';

export interface ProtoTensor {
  name: string;
  /** The enum's name; a number when the client sent a value the proto does not define. */
  dtype: string | number;
  /** int64 dims: exact decimal strings from the server's decoder, numbers when we encode. */
  shape: (number | string)[];
  data: Buffer;
  string_data: string[];
}

export function tensorFromProto(t: ProtoTensor, index: number): InferTensor {
  const label = t.name ? `input ${echo(t.name)}` : `inputs[${index}]`;
  if (!t.name) throw invalidArgument(`${label} has no name; every tensor needs the model's input name`);
  if (t.dtype === 'DATA_TYPE_UNSPECIFIED') {
    throw invalidArgument(`${label}: dtype is missing; set it to the model's type, e.g. FP32`);
  }
  if (typeof t.dtype !== 'string' || !dataTypeByName(t.dtype)) {
    throw invalidArgument(`${label}: dtype ${echo(t.dtype)} is unknown; expected one of ${DATA_TYPE_NAMES.join(', ')}`);
  }
  return {
    name: t.name,
    dtype: t.dtype as DataTypeName,
    shape: t.shape.map((d, i) => dimFromProto(d, i, label)),
    data: t.data,
    ...(t.string_data.length > 0 ? { strings: t.string_data } : {}),
  };
}

export function tensorToProto(t: InferTensor): ProtoTensor {
  return {
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    string_data: t.strings ?? [],
  };
}

/** An int64 dim as a number, refusing (and quoting exactly) values a JS number cannot hold exactly. */
function dimFromProto(dim: number | string, i: number, label: string): number {
  const n = Number(dim);
  if (Number.isSafeInteger(n)) return n; // negatives are refused by validation, with the model's spec
  throw invalidArgument(`${label}: shape dim ${i} is ${echo(String(dim), 24)}, beyond any tensor size; dims are non-negative integers`);
}
