/**
 * Open Inference Protocol (v2) tensors <-> InferTensor, for every v2 front door (gRPC GRPCInferenceService,
 * REST /v2). A v2 tensor's elements arrive in one of three forms:
 *
 *   raw    little-endian row-major bytes (gRPC raw_input_contents, REST's binary tensor extension); BYTES
 *          elements each prefixed with a 4-byte little-endian length. Numeric raw data is passed on as it is.
 *   typed  gRPC InferTensorContents: one repeated field per element family (int_contents for INT8..INT32...).
 *   json   REST `data`: a row-major array (flat or nested) of numbers, booleans or strings.
 *
 * Every check names the tensor and says what was expected, in the protocol's own words (datatype, shape,
 * raw_input_contents...), before anything is allocated from a client's shape.
 */
import { dataTypeByName, elementCount, type DataTypeName } from '../../core/dtype';
import { echo, invalidArgument } from '../../core/errors';
import type { InferTensor } from '../../core/tensor';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../core/tensor-values';
import { MAX_RANK } from '../../core/validate';

/** v2 datatype names -> ours: the same names, but the protocol calls strings BYTES. */
const FROM_V2: Readonly<Record<string, DataTypeName>> = {
  BOOL: 'BOOL', UINT8: 'UINT8', UINT16: 'UINT16', UINT32: 'UINT32', UINT64: 'UINT64',
  INT8: 'INT8', INT16: 'INT16', INT32: 'INT32', INT64: 'INT64',
  FP16: 'FP16', FP32: 'FP32', FP64: 'FP64', BF16: 'BF16', BYTES: 'STRING',
};
export const V2_DATATYPES = Object.keys(FROM_V2);

export function v2Datatype(dtype: DataTypeName): string {
  return dtype === 'STRING' ? 'BYTES' : dtype;
}

/** gRPC InferTensorContents as the server's decoder gives it (int64/uint64 as exact decimal strings). */
export interface TypedContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: (string | number)[];
  uint_contents?: number[];
  uint64_contents?: (string | number)[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export type V2TensorData =
  | { kind: 'raw'; bytes: Uint8Array }
  | { kind: 'typed'; contents: TypedContents }
  | { kind: 'json'; data: unknown };

export interface V2InputTensor {
  name: string;
  datatype: string;
  /** int64 dims: exact decimal strings from the gRPC decoder, numbers from JSON. */
  shape: readonly (number | string)[];
  data: V2TensorData;
}

/** Which typed field carries each datatype (FP16 and BF16 have none: raw only). */
const TYPED_FIELD: Readonly<Partial<Record<DataTypeName, keyof TypedContents>>> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents', INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents', UINT64: 'uint64_contents',
  FP32: 'fp32_contents', FP64: 'fp64_contents', STRING: 'bytes_contents',
};

const INT_RANGE: Readonly<Partial<Record<DataTypeName, [number, number]>>> = {
  INT8: [-128, 127], INT16: [-32768, 32767], INT32: [-2147483648, 2147483647],
  UINT8: [0, 255], UINT16: [0, 65535], UINT32: [0, 4294967295],
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** How a message names the tensor; built only when a check fails (this runs on every request). */
const labelOf = (t: V2InputTensor, index: number) => (t.name ? `input ${echo(t.name)}` : `inputs[${index}]`);

export function inputFromV2(t: V2InputTensor, index: number): InferTensor {
  if (!t.name) throw invalidArgument(`${labelOf(t, index)} has no name; every input needs the model's input name`);
  // Own keys only: a datatype named like an Object.prototype member ('constructor') is as unknown as any other.
  const dtype = Object.hasOwn(FROM_V2, t.datatype) ? FROM_V2[t.datatype] : undefined;
  if (!dtype) {
    throw invalidArgument(`${labelOf(t, index)}: datatype ${echo(t.datatype)} is unknown; expected one of ${V2_DATATYPES.join(', ')}`);
  }
  const info = dataTypeByName(dtype)!;
  if (info.unsupported) throw invalidArgument(`${labelOf(t, index)}: ${info.unsupported}`);
  const shape = shapeFromV2(t.shape, t, index);
  const count = elementCount(shape);
  // Raw numeric data, the common case, passes through as it arrived: one object of one shape, no copies.
  if (t.data.kind === 'raw' && dtype !== 'STRING') return { name: t.name, dtype, shape, data: checkedRaw(t.data.bytes, dtype, count, t, index) };
  const label = labelOf(t, index);
  const elements =
    t.data.kind === 'raw'
      ? { data: new Uint8Array(0), strings: splitBytesElements(t.data.bytes, count, label) }
      : t.data.kind === 'typed'
        ? fromTyped(t.data.contents, dtype, count, label)
        : fromJson(t.data.data, dtype, count, label);
  return { name: t.name, dtype, shape, ...elements };
}

function shapeFromV2(shape: readonly (number | string)[], t: V2InputTensor, index: number): number[] {
  if (shape.length > MAX_RANK) throw invalidArgument(`${labelOf(t, index)}: shape has ${shape.length} dims; at most ${MAX_RANK} are accepted`);
  const dims = new Array<number>(shape.length);
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    const n = typeof d === 'number' ? d : Number(d);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw invalidArgument(`${labelOf(t, index)}: shape dim ${i} is ${echo(String(d), 24)}; dims are non-negative integers`);
    }
    dims[i] = n;
  }
  return dims;
}

function checkedRaw(bytes: Uint8Array, dtype: DataTypeName, count: number, t: V2InputTensor, index: number): Uint8Array {
  const size = dataTypeByName(dtype)!.byteSize;
  if (bytes.byteLength !== count * size) {
    throw invalidArgument(
      `${labelOf(t, index)}: raw contents have ${bytes.byteLength} bytes; its shape needs ${count} ${dtype} elements of ${size} bytes = ${count * size} ` +
        `(little-endian, row-major)`,
    );
  }
  return bytes;
}

/** BYTES raw contents: each element is a 4-byte little-endian length, then that many bytes. */
function splitBytesElements(bytes: Uint8Array, count: number, label: string): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const strings: string[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (strings.length === count) {
      throw invalidArgument(`${label}: raw BYTES contents hold more than the ${count} elements its shape needs (${bytes.byteLength - at} bytes left over)`);
    }
    if (at + 4 > bytes.byteLength) {
      throw invalidArgument(`${label}: raw BYTES element ${strings.length} is cut off in its 4-byte length prefix; each element is a little-endian uint32 length, then the bytes`);
    }
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > bytes.byteLength) {
      throw invalidArgument(`${label}: raw BYTES element ${strings.length} says ${length} bytes but only ${bytes.byteLength - at} remain`);
    }
    strings.push(decodeUtf8(bytes.subarray(at, at + length), label, strings.length));
    at += length;
  }
  if (strings.length !== count) throw invalidArgument(`${label}: raw BYTES contents hold ${strings.length} elements; its shape needs ${count}`);
  return strings;
}

function decodeUtf8(bytes: Uint8Array, label: string, i: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw invalidArgument(`${label}: BYTES element ${i} is not valid UTF-8; ONNX Runtime takes string tensors, so BYTES elements must be UTF-8 text`);
  }
}

function fromTyped(contents: TypedContents, dtype: DataTypeName, count: number, label: string): Pick<InferTensor, 'data' | 'strings'> {
  const field = TYPED_FIELD[dtype];
  if (!field) {
    throw invalidArgument(`${label}: ${dtype} has no typed contents field in the protocol; send its elements in raw_input_contents`);
  }
  const others = (Object.keys(contents) as (keyof TypedContents)[]).filter((k) => k !== field && (contents[k]?.length ?? 0) > 0);
  if (others.length > 0) throw invalidArgument(`${label}: ${dtype} elements go in contents.${field}, but contents.${others[0]} is set`);
  const values = (contents[field] ?? []) as unknown[];
  if (values.length !== count) {
    throw invalidArgument(`${label}: contents.${field} has ${values.length} elements; its shape needs ${count}`);
  }
  if (dtype === 'STRING') return { data: new Uint8Array(0), strings: (values as Uint8Array[]).map((b, i) => decodeUtf8(b, label, i)) };
  return { data: packNumbers(dtype, values, label) };
}

function fromJson(data: unknown, dtype: DataTypeName, count: number, label: string): Pick<InferTensor, 'data' | 'strings'> {
  if (!Array.isArray(data)) throw invalidArgument(`${label}: data must be an array of the tensor's elements in row-major order`);
  const values = flatten(data, count, label);
  if (values.length !== count) throw invalidArgument(`${label}: data has ${values.length} elements; its shape needs ${count}`);
  if (dtype === 'STRING') {
    return {
      data: new Uint8Array(0),
      strings: values.map((v, i) => {
        if (typeof v !== 'string') throw invalidArgument(`${label}: BYTES element ${i} is ${echo(v, 24)}; BYTES elements in JSON are strings`);
        return v;
      }),
    };
  }
  return { data: packNumbers(dtype, values, label) };
}

/** Nested arrays flattened row-major; stops (and lets the count check refuse) once past what the shape needs. */
function flatten(data: unknown[], count: number, label: string, out: unknown[] = [], depth = 0): unknown[] {
  if (depth > MAX_RANK) throw invalidArgument(`${label}: data is nested deeper than ${MAX_RANK} levels`);
  for (const v of data) {
    if (out.length > count) break;
    if (Array.isArray(v)) flatten(v, count, label, out, depth + 1);
    else out.push(v);
  }
  return out;
}

/** Elements from typed contents or JSON -> little-endian bytes, each checked against its datatype. */
function packNumbers(dtype: DataTypeName, values: unknown[], label: string): Uint8Array {
  const info = dataTypeByName(dtype)!;
  const bytes = new Uint8Array(values.length * info.byteSize);
  const view = new DataView(bytes.buffer);
  const bad = (i: number, v: unknown, want: string) =>
    invalidArgument(`${label}: element ${i} is ${echo(typeof v === 'bigint' ? String(v) : v, 24)}; ${dtype} elements are ${want}`);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const o = i * info.byteSize;
    switch (dtype) {
      case 'BOOL':
        if (typeof v !== 'boolean') throw bad(i, v, 'true or false');
        bytes[o] = v ? 1 : 0;
        break;
      case 'FP32':
      case 'FP64':
      case 'FP16': {
        const n = finiteOrSpecial(v);
        if (n === undefined) throw bad(i, v, 'numbers');
        if (dtype === 'FP32') view.setFloat32(o, n, true);
        else if (dtype === 'FP64') view.setFloat64(o, n, true);
        else view.setUint16(o, float32ToFloat16Bits(n), true);
        break;
      }
      case 'INT64':
      case 'UINT64': {
        const big = toBigInt(v);
        const unsigned = dtype === 'UINT64';
        if (big === undefined || (unsigned ? big < 0n || big > 0xffffffffffffffffn : big < -(2n ** 63n) || big >= 2n ** 63n)) {
          throw bad(i, v, unsigned ? 'integers from 0 to 2^64-1' : 'integers from -2^63 to 2^63-1');
        }
        if (unsigned) view.setBigUint64(o, big, true);
        else view.setBigInt64(o, big, true);
        break;
      }
      default: {
        const [min, max] = INT_RANGE[dtype]!;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(i, v, `integers from ${min} to ${max}`);
        if (info.byteSize === 1) view.setUint8(o, v & 0xff);
        else if (info.byteSize === 2) view.setUint16(o, v & 0xffff, true);
        else view.setUint32(o, v >>> 0, true);
      }
    }
  }
  return bytes;
}

/** A float element: a number, or (JSON cannot write them) the strings "NaN", "Infinity", "-Infinity". */
function finiteOrSpecial(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity' || v === 'inf') return Infinity;
  if (v === '-Infinity' || v === '-inf') return -Infinity;
  return undefined;
}

function toBigInt(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt(v) : undefined;
  if (typeof v === 'string' && /^-?[0-9]{1,20}$/.test(v)) return BigInt(v);
  return undefined;
}

/** An output's raw contents: its bytes as they are (numeric), or length-prefixed UTF-8 elements (BYTES). */
export function outputToRaw(t: InferTensor): Buffer {
  if (t.dtype !== 'STRING') return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const encoded = (t.strings ?? []).map((s) => Buffer.from(s, 'utf8'));
  const out = Buffer.allocUnsafe(encoded.reduce((n, b) => n + 4 + b.length, 0));
  let at = 0;
  for (const b of encoded) {
    out.writeUInt32LE(b.length, at);
    b.copy(out, at + 4);
    at += 4 + b.length;
  }
  return out;
}

/** An output's elements as JS values: numbers (INT64/UINT64 beyond 2^53 as decimal strings), booleans, strings. */
export function outputValues(t: InferTensor): (number | boolean | string)[] {
  if (t.dtype === 'STRING') return t.strings ?? [];
  const info = dataTypeByName(t.dtype)!;
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const n = t.data.byteLength / info.byteSize;
  const out = new Array<number | boolean | string>(n);
  for (let i = 0; i < n; i++) {
    const o = i * info.byteSize;
    switch (t.dtype) {
      case 'BOOL': out[i] = view.getUint8(o) !== 0; break;
      case 'FP32': out[i] = view.getFloat32(o, true); break;
      case 'FP64': out[i] = view.getFloat64(o, true); break;
      case 'FP16': out[i] = float16BitsToFloat32(view.getUint16(o, true)); break;
      case 'INT8': out[i] = view.getInt8(o); break;
      case 'INT16': out[i] = view.getInt16(o, true); break;
      case 'INT32': out[i] = view.getInt32(o, true); break;
      case 'UINT8': out[i] = view.getUint8(o); break;
      case 'UINT16': out[i] = view.getUint16(o, true); break;
      case 'UINT32': out[i] = view.getUint32(o, true); break;
      case 'INT64': out[i] = safeOrString(view.getBigInt64(o, true)); break;
      case 'UINT64': out[i] = safeOrString(view.getBigUint64(o, true)); break;
      default: throw new Error(`no element values for ${t.dtype}`);
    }
  }
  return out;
}

function safeOrString(v: bigint): number | string {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v.toString();
}

/** An output as gRPC typed contents; FP16 (no typed field in the protocol) is refused by name. */
export function outputToTyped(t: InferTensor): TypedContents {
  const field = TYPED_FIELD[t.dtype];
  if (!field) {
    throw invalidArgument(`output '${t.name}' is ${t.dtype}, which has no typed contents field in the protocol; ask for raw outputs (binary_data_output true)`);
  }
  if (t.dtype === 'STRING') return { bytes_contents: (t.strings ?? []).map((s) => Buffer.from(s, 'utf8')) };
  // The encoder takes int64/uint64 as decimal strings exactly; every other value as the JS value itself.
  const values = t.dtype === 'INT64' || t.dtype === 'UINT64' ? outputValues(t).map(String) : outputValues(t);
  return { [field]: values } as TypedContents;
}
