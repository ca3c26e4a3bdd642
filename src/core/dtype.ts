/**
 * The element types tensorgate understands, and how each maps to the wire (DataType enum names, as in the
 * Open Inference Protocol) and to ONNX Runtime's Node binding (type strings and typed arrays).
 *
 * Measured facts this table encodes: float16 travels as Uint16Array, int64 as BigInt64Array, bool as
 * Uint8Array, string as string[]; the Node binding has no bfloat16.
 */

export type DataTypeName =
  | 'FP32' | 'FP64' | 'FP16' | 'BF16'
  | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64'
  | 'BOOL' | 'STRING';

/** onnxruntime-common's Tensor.Type strings. */
export type OrtTypeName =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int8' | 'int16' | 'int32' | 'int64'
  | 'uint8' | 'uint16' | 'uint32' | 'uint64'
  | 'bool' | 'string';

type TypedArrayConstructor =
  | Float32ArrayConstructor | Float64ArrayConstructor
  | Int8ArrayConstructor | Int16ArrayConstructor | Int32ArrayConstructor | BigInt64ArrayConstructor
  | Uint8ArrayConstructor | Uint16ArrayConstructor | Uint32ArrayConstructor | BigUint64ArrayConstructor;

export interface DataTypeInfo {
  readonly name: DataTypeName;
  /** The proto enum number in tensorgate.v1.DataType. */
  readonly protoNumber: number;
  readonly ort: OrtTypeName;
  /** Bytes per element on the wire; 0 for STRING (which travels as string_data). */
  readonly byteSize: number;
  /** How ONNX Runtime's Node binding wants the data; undefined for STRING and unsupported types. */
  readonly arrayType?: TypedArrayConstructor;
  /** Why the type cannot be served, when it cannot. */
  readonly unsupported?: string;
}

const TABLE: readonly DataTypeInfo[] = [
  { name: 'FP32', protoNumber: 1, ort: 'float32', byteSize: 4, arrayType: Float32Array },
  { name: 'FP64', protoNumber: 2, ort: 'float64', byteSize: 8, arrayType: Float64Array },
  { name: 'FP16', protoNumber: 3, ort: 'float16', byteSize: 2, arrayType: Uint16Array },
  {
    name: 'BF16', protoNumber: 4, ort: 'bfloat16', byteSize: 2,
    unsupported: 'BF16 tensors are not supported: the ONNX Runtime Node binding has no bfloat16 type; send FP32 or FP16',
  },
  { name: 'INT8', protoNumber: 5, ort: 'int8', byteSize: 1, arrayType: Int8Array },
  { name: 'INT16', protoNumber: 6, ort: 'int16', byteSize: 2, arrayType: Int16Array },
  { name: 'INT32', protoNumber: 7, ort: 'int32', byteSize: 4, arrayType: Int32Array },
  { name: 'INT64', protoNumber: 8, ort: 'int64', byteSize: 8, arrayType: BigInt64Array },
  { name: 'UINT8', protoNumber: 9, ort: 'uint8', byteSize: 1, arrayType: Uint8Array },
  { name: 'UINT16', protoNumber: 10, ort: 'uint16', byteSize: 2, arrayType: Uint16Array },
  { name: 'UINT32', protoNumber: 11, ort: 'uint32', byteSize: 4, arrayType: Uint32Array },
  { name: 'UINT64', protoNumber: 12, ort: 'uint64', byteSize: 8, arrayType: BigUint64Array },
  { name: 'BOOL', protoNumber: 13, ort: 'bool', byteSize: 1, arrayType: Uint8Array },
  { name: 'STRING', protoNumber: 14, ort: 'string', byteSize: 0 },
];

const BY_NAME = new Map(TABLE.map((t) => [t.name, t]));
const BY_ORT = new Map(TABLE.map((t) => [t.ort, t]));

export const DATA_TYPE_NAMES: readonly DataTypeName[] = TABLE.map((t) => t.name);

export function dataTypeByName(name: string): DataTypeInfo | undefined {
  return BY_NAME.get(name as DataTypeName);
}

export function dataTypeByOrt(ort: string): DataTypeInfo | undefined {
  return BY_ORT.get(ort as OrtTypeName);
}

/** Element count of a shape; 1 for a scalar. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
