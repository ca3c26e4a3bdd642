/**
 * The REST v2 infer body (KServe v2 / Triton HTTP) <-> the shared V2InferRequest / V2InferResponse, with
 * Triton's binary tensor extension: the HTTP twin of src/api/grpc/infer-codec.ts.
 *
 *   request   JSON {id?, parameters?, inputs: [{name, shape, datatype, parameters?, data?}], outputs?: [{name, parameters?}]}
 *             or, with header `Inference-Header-Content-Length: N`, the first N bytes of the body are that
 *             JSON and the rest are the binary inputs back to back, in the order of the inputs that carry
 *             `parameters.binary_data_size` (their sizes must add up to the rest exactly).
 *   response  JSON {model_name, model_version, id?, outputs: [{name, datatype, shape, data}]} (float NaN and
 *             infinities as "NaN", "Infinity", "-Infinity", as inputs may send them); when any output
 *             is binary (its `binary_data: true`, or the request's `binary_data_output: true`), an
 *             application/octet-stream body: the JSON header (its length in Inference-Header-Content-Length),
 *             binary outputs carrying `parameters.binary_data_size` instead of `data`, then their bytes in order.
 *
 * Binary elements are little-endian, row-major; BYTES elements each a 4-byte little-endian length, then the bytes
 * (src/api/v2/v2-tensors.ts decodes and encodes them for every door).
 */
import { z } from 'zod';
import { clip, echo, invalidArgument } from '../../core/errors';
import { booleanParameter, type FrontDoorParameters, type V2InferRequest, type V2InferResponse, type V2Parameters } from '../v2/v2-infer';
import { outputToRaw, outputValues, v2Datatype } from '../v2/v2-tensors';

/**
 * Parameters only the REST door gives meaning to:
 *   request  binary_data_output  bool, default false: every output in the binary section
 *   input    binary_data_size    int: the input's elements are this many bytes of the binary section
 *   output   binary_data         bool, default the request's binary_data_output: this output in the binary section
 */
export const REST_PARAMETERS: FrontDoorParameters = { request: ['binary_data_output'], input: ['binary_data_size'], output: ['binary_data'] };

/** The header that splits a body into its JSON part and its binary part (Triton's binary tensor extension). */
export const HEADER_LENGTH = 'inference-header-content-length';

const parameterValue = z.union([z.boolean(), z.number(), z.string()]);
const parameters = z.record(z.string(), parameterValue).nullish();

const inferBodySchema = z.strictObject({
  id: z.string().nullish(),
  parameters,
  inputs: z.array(
    z.strictObject({
      name: z.string(),
      shape: z.array(z.number()),
      datatype: z.string(),
      parameters,
      data: z.unknown().optional(),
    }),
  ),
  outputs: z.array(z.strictObject({ name: z.string(), parameters })).nullish(),
});

/** `inputs[0].shape[1]` from zod's path. */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${clip(String(p), 40)}`;
  return out;
}

/** A body (or header) validated against `schema`; the first fault, named by its field, as INVALID_ARGUMENT. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument(`${what} must be a JSON object`);
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const where = fieldPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.slice(0, 3).map((k) => echo(k, 40));
    throw invalidArgument(`${where ? `${where}: ` : `${what}: `}unknown field${keys.length > 1 ? 's' : ''} ${keys.join(', ')}; tensorgate refuses fields it would otherwise ignore`);
  }
  if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) throw invalidArgument(`${where || what} is missing`);
  throw invalidArgument(`${where || what}: ${clip(issue.message, 160)}`);
}

/**
 * JSON text -> value, refusing the keys that poison prototypes when merged (as the front door's own JSON
 * parser does); `what` names the text in the message ("the request body", "the inference header").
 */
export function parseJsonText(bytes: Buffer, what: string): unknown {
  const text = bytes.toString('utf8');
  try {
    if (!/__proto__|constructor|\\u/.test(text)) return JSON.parse(text);
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__' || (key === 'constructor' && value !== null && typeof value === 'object' && 'prototype' in value)) {
        throw new Error(`the key "${key}" is not allowed`);
      }
      return value;
    });
  } catch (err) {
    throw invalidArgument(`${what} is not valid JSON: ${clip((err as Error).message, 128)}`);
  }
}

/** The Inference-Header-Content-Length value: a decimal byte count within the body. */
function headerLength(value: string | string[] | undefined, bodyBytes: number): number | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  const n = /^[0-9]{1,15}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > bodyBytes) {
    throw invalidArgument(
      `Inference-Header-Content-Length is ${echo(text, 24)}; expected the byte length of the JSON header at the start of the body, from 1 to the body's ${bodyBytes} bytes`,
    );
  }
  return n;
}

/**
 * An infer request's body (already read within the route's limit) -> the shared v2 request. `headerValue` is the
 * Inference-Header-Content-Length header, if the request has one.
 */
export function inferRequestFromRest(body: Buffer, headerValue: string | string[] | undefined, model: string, version: string): V2InferRequest {
  if (body.length === 0) throw invalidArgument('the request body is empty; send the inference request as JSON {"inputs": [...]}');
  const split = headerLength(headerValue, body.length);
  const json = split === undefined ? body : body.subarray(0, split);
  const binary = split === undefined ? undefined : body.subarray(split);
  const what = split === undefined ? 'the request body' : 'the inference header';
  const parsed = parseWith(inferBodySchema, parseJsonText(json, what), what);

  const rawSizes = parsed.inputs.map((t, i) => binarySize(t.parameters ?? {}, t.name, i, t.data !== undefined));
  const wanted = rawSizes.reduce<number>((n, s) => n + (s ?? 0), 0);
  if (binary === undefined && rawSizes.some((s) => s !== undefined)) {
    const i = rawSizes.findIndex((s) => s !== undefined);
    throw invalidArgument(
      `input ${label(parsed.inputs[i]!.name, i)} has parameters.binary_data_size but the request has no Inference-Header-Content-Length header; ` +
        'send the JSON header length in it, the JSON header, then the binary inputs',
    );
  }
  if (binary !== undefined && binary.length !== wanted) {
    const parts = rawSizes.flatMap((s, i) => (s === undefined ? [] : [`${label(parsed.inputs[i]!.name, i)} ${s}`]));
    throw invalidArgument(
      `the body has ${binary.length} bytes after the ${split}-byte inference header; the inputs' binary_data_size add up to ${wanted}` +
        `${parts.length ? ` (${clip(parts.join(', '), 200)})` : ' (no input has binary_data_size)'}; the binary section must hold exactly the binary inputs, in order`,
    );
  }

  let at = 0;
  return {
    model,
    version,
    id: parsed.id ?? '',
    parameters: parsed.parameters ?? {},
    inputs: parsed.inputs.map((t, i) => {
      const size = rawSizes[i];
      let data: V2InferRequest['inputs'][number]['data'];
      if (size !== undefined) {
        data = { kind: 'raw', bytes: binary!.subarray(at, at + size) };
        at += size;
      } else {
        data = { kind: 'json', data: t.data };
      }
      return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: t.parameters ?? {}, data };
    }),
    outputs: (parsed.outputs ?? []).map((o) => ({ name: o.name, parameters: o.parameters ?? {} })),
  };
}

const label = (name: string, i: number) => (name ? echo(name) : `inputs[${i}]`);

/** An input's binary_data_size, or undefined when its elements are in `data`; exactly one of the two. */
function binarySize(p: V2Parameters, name: string, i: number, hasData: boolean): number | undefined {
  const size = p.binary_data_size;
  if (size === undefined) {
    if (!hasData) {
      throw invalidArgument(`input ${label(name, i)} has no data; send its elements in data, or in the binary section with parameters.binary_data_size`);
    }
    return undefined;
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalidArgument(`input ${label(name, i)}: parameters.binary_data_size is ${echo(String(size), 24)}; expected a non-negative integer byte count`);
  }
  if (hasData) throw invalidArgument(`input ${label(name, i)} has both data and parameters.binary_data_size; send its elements one way`);
  return size;
}

/**
 * Which outputs go in the binary section: each output's `binary_data`, else the request's `binary_data_output`.
 * Checked before the request runs, so a bad value costs no inference.
 */
export function binaryOutputChoice(req: V2InferRequest): (name: string) => boolean {
  const all = booleanParameter(req.parameters, 'binary_data_output', false);
  const per = new Map(req.outputs.map((o) => [o.name, booleanParameter(o.parameters, 'binary_data', all)]));
  return (name) => per.get(name) ?? all;
}

const FLOATS = new Set(['FP16', 'FP32', 'FP64']);

/** JSON has no NaN or infinities (JSON.stringify writes null): written as the strings the inputs accept for them. */
const jsonFloat = (v: number | boolean | string) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);

export interface RestInferAnswer {
  contentType: string;
  /** Inference-Header-Content-Length, for a binary answer. */
  headerLength?: number;
  payload: string | Buffer;
}

export function inferResponseToRest(res: V2InferResponse, binary: (name: string) => boolean): RestInferAnswer {
  const raws: Buffer[] = [];
  const outputs = res.outputs.map((t) => {
    const head = { name: t.name, datatype: v2Datatype(t.dtype), shape: t.shape };
    if (!binary(t.name)) return { ...head, data: FLOATS.has(t.dtype) ? outputValues(t).map(jsonFloat) : outputValues(t) };
    const bytes = outputToRaw(t);
    raws.push(bytes);
    return { ...head, parameters: { binary_data_size: bytes.length } };
  });
  const text = JSON.stringify({ model_name: res.model_name, model_version: res.model_version, ...(res.id ? { id: res.id } : {}), outputs });
  if (raws.length === 0) return { contentType: 'application/json', payload: text };
  const header = Buffer.from(text, 'utf8');
  return { contentType: 'application/octet-stream', headerLength: header.length, payload: Buffer.concat([header, ...raws]) };
}
