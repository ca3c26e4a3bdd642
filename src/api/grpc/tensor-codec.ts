/**
 * tensorgate.v1.Tensor <-> InferTensor. Numeric data stays in the bytes it arrived in (no per-element
 * conversion); only the dtype enum and shape are translated.
 */
import { dataTypeByName, type DataTypeName } from '../../core/dtype';
import { invalidArgument } from '../../core/errors';
import type { InferTensor } from '../../core/tensor';

export interface ProtoTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Buffer;
  string_data: string[];
}

export function tensorFromProto(t: ProtoTensor, index: number): InferTensor {
  const label = t.name ? `input '${t.name}'` : `inputs[${index}]`;
  if (!t.name) throw invalidArgument(`${label} has no name; every tensor needs the model's input name`);
  if (!dataTypeByName(t.dtype)) {
    throw invalidArgument(`${label}: dtype is missing (${t.dtype}); set dtype to the model's type, e.g. FP32`);
  }
  return {
    name: t.name,
    dtype: t.dtype as DataTypeName,
    shape: t.shape.map(Number),
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
