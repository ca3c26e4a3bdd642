/**
 * inference.GRPCInferenceService/ModelInfer and ModelStreamInfer inputs (the v2 protocol over gRPC): a request
 * the bundled models accept, with its elements raw (raw_input_contents) or typed (InferTensorContents), then
 * faults: raw and typed mixed, raw entries not one per input, the wrong contents field, element counts that
 * disagree with the shape, BYTES elements with bad length prefixes or invalid UTF-8, parameters of every type
 * with names understood or not, huge int64/uint64 values.
 */
import fc from 'fast-check';
import { b64, type Case } from './case';
import { BAD_UTF8_MARK, countOf, dtypeArb, elementBytesArb, floatArb, nameArb, resizeArb, shapeArb, V2_DTYPES } from './gen-common';
import { perModel, TENSOR_MODELS, type FuzzModel } from './models';
import { bodyArb, deadlineArb } from './wire';

/** A v2 parameter value of any of the oneof's types. */
const parameterValueArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.boolean().map((v) => ({ bool_param: v })),
  fc.oneof(fc.integer({ min: -5, max: 100_000 }).map(String), fc.constantFrom('9223372036854775807', '-9223372036854775808')).map((v) => ({ int64_param: v })),
  fc.oneof(fc.nat(100_000).map(String), fc.constant('18446744073709551615')).map((v) => ({ uint64_param: v })),
  fc.oneof(fc.string({ maxLength: 8 }), fc.constant(BAD_UTF8_MARK)).map((v) => ({ string_param: v })),
  floatArb.map((v) => ({ double_param: v })),
  fc.constant({}),
);

/** Request-level parameter names: understood ones (priority, timeout...), Triton's refused ones, unknown ones. */
export const REQUEST_PARAMETER_NAMES = ['priority', 'timeout', 'bypass_cache', 'binary_data_output', 'sequence_id', 'shared_memory_region', 'classification', 'x', ''];

export const parametersArb = (names: readonly string[]) =>
  fc.oneof({ weight: 12, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.dictionary(fc.constantFrom(...names), parameterValueArb, { maxKeys: 3 }) });

/** Which typed field a datatype's elements belong in. */
const TYPED_FIELD: Record<string, string> = {
  BOOL: 'bool_contents', INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents', INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents', UINT64: 'uint64_contents',
  FP32: 'fp32_contents', FP64: 'fp64_contents', BYTES: 'bytes_contents',
};
const typedField = (datatype: string) => (Object.hasOwn(TYPED_FIELD, datatype) ? TYPED_FIELD[datatype]! : 'fp32_contents');

/** Values that are out of range or of the wrong kind for most fields, put in now and then. */
const ODD_VALUES: readonly unknown[] = [-1, 300, 70000, 2 ** 31, -(2 ** 31) - 1, 1.5, NaN, Infinity, '18446744073709551616', '-9223372036854775809', true, 'x'];

/** The raw elements as typed values (what the same tensor looks like in typed contents or JSON `data`). */
function valuesOf(datatype: string, raw: Uint8Array): unknown[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: unknown[] = [];
  switch (datatype) {
    case 'FP32': for (let o = 0; o + 4 <= raw.length; o += 4) out.push(view.getFloat32(o, true)); break;
    case 'FP64': for (let o = 0; o + 8 <= raw.length; o += 8) out.push(view.getFloat64(o, true)); break;
    case 'INT64': for (let o = 0; o + 8 <= raw.length; o += 8) out.push(String(view.getBigInt64(o, true))); break;
    case 'UINT64': for (let o = 0; o + 8 <= raw.length; o += 8) out.push(String(view.getBigUint64(o, true))); break;
    case 'BOOL': for (const b of raw) out.push(b !== 0); break;
    case 'BYTES': {
      for (let o = 0; o + 4 <= raw.length; ) {
        const len = Math.min(view.getUint32(o, true), raw.length - o - 4);
        out.push(raw.subarray(o + 4, o + 4 + len));
        o += 4 + len;
      }
      break;
    }
    default: for (const b of raw) out.push(b);
  }
  return out;
}

export interface V2Tensor {
  name: string;
  datatype: string;
  shape: (number | string)[];
  /** Raw little-endian bytes for the binary forms (BYTES: length-prefixed elements). */
  raw: Uint8Array;
  /** The same elements as values, for the typed and JSON forms (may disagree with the shape on purpose). */
  values: unknown[];
}

/** BYTES raw contents: each element a 4-byte little-endian length (sometimes a lie), then its bytes. */
const bytesRawArb = (count: number) =>
  fc.array(fc.tuple(fc.uint8Array({ maxLength: 6 }), fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1, -1, 0x7fffffff, 0xffffffff) })), {
    minLength: Number.isFinite(count) ? Math.min(count, 64) : 0,
    maxLength: Number.isFinite(count) ? Math.min(count, 64) : 2,
  }).map((els) =>
    Buffer.concat(
      els.map(([b, lie]) => {
        const head = Buffer.alloc(4);
        head.writeUInt32LE((b.length + lie) >>> 0);
        return Buffer.concat([head, b]);
      }),
    ),
  );

function buildV2TensorArb(m: FuzzModel): fc.Arbitrary<V2Tensor> {
  return fc.record({ name: nameArb([m.input]), datatype: dtypeArb(m.dtype, V2_DTYPES), shape: shapeArb(m.shape) }).chain((t) => {
    const count = countOf(t.shape);
    const raw = t.datatype === 'BYTES' ? bytesRawArb(count) : elementBytesArb(t.datatype, count);
    return fc
      .tuple(
        fc.oneof({ weight: 30, arbitrary: raw }, { weight: 1, arbitrary: raw.chain(resizeArb) }),
        fc.oneof(
          { weight: 30, arbitrary: fc.constant<[string, number, unknown]>(['same', 0, 0]) },
          { weight: 1, arbitrary: fc.tuple(fc.constantFrom('drop', 'add', 'odd'), fc.nat(), fc.constantFrom(...ODD_VALUES)) },
        ),
      )
      .map(([rawBytes, [how, at, odd]]) => {
        const values = valuesOf(t.datatype, rawBytes);
        if (how === 'drop') values.pop();
        else if (how === 'add') values.push(values[0] ?? 0);
        else if (how === 'odd' && values.length) values[at % values.length] = odd;
        return { ...t, raw: rawBytes, values };
      });
  });
}

/** A v2 input tensor for model m (built once per model). */
export const v2TensorArb = perModel(TENSOR_MODELS, buildV2TensorArb);

export const outputsArb = (m: FuzzModel, parameterNames: readonly string[]) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.constant([]) },
    { weight: 2, arbitrary: fc.array(fc.record({ name: nameArb(m.outputs, 6), parameters: parametersArb(parameterNames) }), { minLength: 1, maxLength: 3 }) },
  );

/** One ModelInferRequest object (for protobufjs), raw or typed, with the faults above. */
function inferMessageArb(m: FuzzModel): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      model_name: nameArb([m.name]),
      model_version: fc.oneof({ weight: 10, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('1', '3', '-1', 'v1') }),
      id: fc.oneof(fc.string({ maxLength: 10 }), fc.constant(BAD_UTF8_MARK)),
      parameters: parametersArb(REQUEST_PARAMETER_NAMES),
      inputs: fc.oneof({ weight: 10, arbitrary: v2TensorArb(m).map((t) => [t]) }, { weight: 1, arbitrary: fc.array(v2TensorArb(m), { maxLength: 3 }) }),
      inputParameters: parametersArb(['binary_data_size', 'x']),
      outputs: outputsArb(m, ['binary_data', 'x']),
      form: fc.oneof(
        { weight: 6, arbitrary: fc.constant('raw') },
        { weight: 4, arbitrary: fc.constant('typed') },
        { weight: 1, arbitrary: fc.constantFrom('mixed', 'raw-extra', 'raw-missing', 'wrong-field') },
      ),
    })
    .map((r) => {
      const inputs = r.inputs.map((t) => {
        const right = typedField(t.datatype);
        const field = r.form === 'wrong-field' ? (right === 'fp32_contents' ? 'int_contents' : 'fp32_contents') : right;
        const typed = r.form !== 'raw' && r.form !== 'raw-extra' && r.form !== 'raw-missing';
        return {
          name: t.name,
          datatype: t.datatype,
          shape: t.shape,
          parameters: r.inputParameters,
          ...(typed ? { contents: { [field]: forField(field, t.values) } } : {}),
        };
      });
      let raw = r.form === 'typed' || r.form === 'wrong-field' ? [] : r.inputs.map((t) => t.raw);
      if (r.form === 'raw-extra') raw = [...raw, new Uint8Array(4)];
      if (r.form === 'raw-missing') raw = raw.slice(1);
      return { model_name: r.model_name, model_version: r.model_version, id: r.id, parameters: r.parameters, inputs, outputs: r.outputs, raw_input_contents: raw };
    });
}

/**
 * Values as protobufjs can encode them into `field` (odd values included: they are what the server must
 * refuse): bytes as bytes, 64-bit integers as decimal strings, the rest as numbers or booleans.
 */
function forField(field: string, values: unknown[]): unknown[] {
  if (field === 'bytes_contents') return values.map((v) => (v instanceof Uint8Array ? v : Buffer.from(String(v))));
  if (field === 'int64_contents' || field === 'uint64_contents') return values.map((v) => (typeof v === 'string' && /^-?\d+$/.test(v) ? v : String(Math.trunc(Number(v)) || 0)));
  if (field === 'bool_contents') return values.map((v) => (typeof v === 'boolean' ? v : Boolean(v)));
  return values.map((v) => (typeof v === 'number' ? v : Number(v)));
}

export const inferMessage = fc.constantFrom(...TENSOR_MODELS).chain(perModel(TENSOR_MODELS, inferMessageArb));

export const modelInferArb: fc.Arbitrary<Case> = fc
  .tuple(bodyArb('inference.ModelInferRequest', inferMessage), deadlineArb)
  .map(([body, deadlineMs]) => ({ kind: 'grpc-unary', path: '/inference.GRPCInferenceService/ModelInfer', body: b64(body), ...(deadlineMs !== undefined ? { deadlineMs } : {}) }));

/** 1-4 requests on one ModelStreamInfer stream, each encoded (and maybe mutated) on its own. */
export const streamInferArb: fc.Arbitrary<Case> = fc
  .tuple(fc.array(bodyArb('inference.ModelInferRequest', inferMessage), { minLength: 1, maxLength: 4 }), deadlineArb)
  .map(([bodies, deadlineMs]) => ({ kind: 'grpc-bidi', path: '/inference.GRPCInferenceService/ModelStreamInfer', bodies: bodies.map(b64), ...(deadlineMs !== undefined ? { deadlineMs } : {}) }));
