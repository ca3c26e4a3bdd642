/**
 * Reading and writing ONNX model files: protobufjs with ONNX's own schema (proto/onnx/onnx.proto), so a model
 * read and written again keeps every field it had, known to this code or not.
 *
 * Decoded messages keep protobufjs's representation: int64 fields are `Long`s (or numbers in objects we
 * build; the encoder takes both), bytes are Uint8Arrays. The interfaces below type the fields tensorgate reads
 * or changes; the rest of each message travels through untouched.
 */
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../paths';

/** An int64 field: a protobufjs Long when decoded, a number when we set it. */
export type Int64 = number | protobuf.Long;

export function int64ToNumber(value: Int64 | undefined | null): number {
  if (value === undefined || value === null) return 0;
  return typeof value === 'number' ? value : protobuf.util.LongBits.from(value).toNumber(value.unsigned);
}

/** TensorProto.DataType. */
export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
} as const;
export type DataType = number;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9,
  GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
} as const;

export interface OnnxStringEntry {
  key?: string;
  value?: string;
}

export interface OnnxTensor {
  name?: string;
  dims?: Int64[];
  dataType?: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: Int64[];
  doubleData?: number[];
  uint64Data?: Int64[];
  stringData?: Uint8Array[];
  externalData?: OnnxStringEntry[];
  dataLocation?: number;
  docString?: string;
  [other: string]: unknown;
}

export interface OnnxAttribute {
  name?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: OnnxTensor;
  g?: OnnxGraph;
  floats?: number[];
  ints?: Int64[];
  graphs?: OnnxGraph[];
  [other: string]: unknown;
}

export interface OnnxNode {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute?: OnnxAttribute[];
  [other: string]: unknown;
}

export interface OnnxDimension {
  dimValue?: Int64;
  dimParam?: string;
  [other: string]: unknown;
}

export interface OnnxType {
  tensorType?: { elemType?: number; shape?: { dim?: OnnxDimension[] } };
  [other: string]: unknown;
}

export interface OnnxValueInfo {
  name?: string;
  type?: OnnxType;
  [other: string]: unknown;
}

export interface OnnxGraph {
  name?: string;
  node?: OnnxNode[];
  initializer?: OnnxTensor[];
  input?: OnnxValueInfo[];
  output?: OnnxValueInfo[];
  valueInfo?: OnnxValueInfo[];
  docString?: string;
  [other: string]: unknown;
}

export interface OnnxOpset {
  domain?: string;
  version?: Int64;
}

export interface OnnxModel {
  irVersion?: Int64;
  opsetImport?: OnnxOpset[];
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  graph?: OnnxGraph;
  metadataProps?: OnnxStringEntry[];
  functions?: unknown[];
  [other: string]: unknown;
}

let modelType: protobuf.Type | undefined;

/** Loaded on first use: only the commands that read or write ONNX files pay for parsing the schema. */
function modelProto(): protobuf.Type {
  modelType ??= new protobuf.Root().loadSync(path.join(PROTO_DIR, 'onnx', 'onnx.proto')).lookupType('onnx.ModelProto');
  return modelType;
}

export function decodeModel(bytes: Uint8Array): OnnxModel {
  try {
    return modelProto().decode(bytes) as unknown as OnnxModel;
  } catch (err) {
    throw new Error(`not an ONNX model file (the protobuf does not decode: ${(err as Error).message})`);
  }
}

export function encodeModel(model: OnnxModel): Uint8Array {
  return modelProto().encode(model as unknown as protobuf.Message).finish();
}

/** The opset a model imports for the default (ai.onnx) domain. */
export function defaultOpset(model: OnnxModel): number {
  const entry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return int64ToNumber(entry?.version);
}
