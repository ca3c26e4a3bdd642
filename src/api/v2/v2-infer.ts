/**
 * A v2 inference request, as every v2 front door parses it, -> the pipeline's InferenceRequest; and the
 * pipeline's result -> the v2 response's fields. The front doors (gRPC GRPCInferenceService, REST /v2) only
 * decode their wire format into V2InferRequest and encode V2InferResponse back.
 *
 * Parameters: each front door names the ones its wire format gives meaning to (e.g. REST's binary_data);
 * the ones every door understands are below. Anything else is refused by name, never silently ignored.
 */
import type { Span } from '@opentelemetry/api';
import { randomUUID } from 'node:crypto';
import { echo, invalidArgument } from '../../core/errors';
import type { CancelSignal } from '../../core/cancellation';
import type { InferenceRequest, InferenceResult, TextClassification } from '../../core/request';
import type { InferTensor } from '../../core/tensor';
import { inputFromV2, type V2InputTensor } from './v2-tensors';

export type V2ParameterValue = boolean | number | string;
export type V2Parameters = Record<string, V2ParameterValue>;

export interface V2InferRequest {
  model: string;
  version: string;
  id: string;
  parameters: V2Parameters;
  inputs: (V2InputTensor & { parameters: V2Parameters })[];
  outputs: { name: string; parameters: V2Parameters }[];
}

export interface V2InferResponse {
  model_name: string;
  model_version: string;
  id: string;
  /** In the order the request asked for them, or the model's order when it asked for none. */
  outputs: InferTensor[];
}

/** The parameters a front door gives meaning to besides the common ones, per place. */
export interface FrontDoorParameters {
  request: readonly string[];
  input: readonly string[];
  output: readonly string[];
}

/**
 * Understood by every v2 front door, at request level:
 *   priority      int, 1 = highest (the model's priority levels); 0 = the model's default
 *   timeout       int microseconds the request may wait in the queue; 0 = the model's default
 *   bypass_cache  bool, tensorgate's: neither read nor fill the result cache
 */
const COMMON_REQUEST_PARAMETERS = ['priority', 'timeout', 'bypass_cache'];

/** Parameters Triton defines for features tensorgate does not have: refused with the reason. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  sequence_id: 'sequence batching is not supported',
  sequence_start: 'sequence batching is not supported',
  sequence_end: 'sequence batching is not supported',
  classification: 'the classification extension is not supported; ask for the output tensor and take its top k',
  shared_memory_region: 'the shared-memory extension is not supported; send the tensor in the request',
  shared_memory_byte_size: 'the shared-memory extension is not supported; send the tensor in the request',
  shared_memory_offset: 'the shared-memory extension is not supported; send the tensor in the request',
};

export interface CallContext {
  deadline?: number;
  signal?: CancelSignal;
  /** The call's span (InferenceRequest.span). */
  span?: Span;
}

/** Each front door's request-level names with the common ones, computed once per front door. */
const requestParameterNames = new WeakMap<FrontDoorParameters, readonly string[]>();

export function toInferenceRequest(req: V2InferRequest, allowed: FrontDoorParameters, call: CallContext): InferenceRequest {
  let requestNames = requestParameterNames.get(allowed);
  if (!requestNames) requestParameterNames.set(allowed, (requestNames = [...COMMON_REQUEST_PARAMETERS, ...allowed.request]));
  checkParameters(req.parameters, requestNames, 'the request');
  for (let i = 0; i < req.inputs.length; i++) checkParameters(req.inputs[i]!.parameters, allowed.input, () => `input ${echo(req.inputs[i]!.name || `#${i}`)}`);
  const outputs = new Array<string>(req.outputs.length);
  for (let i = 0; i < req.outputs.length; i++) {
    const o = req.outputs[i]!;
    checkParameters(o.parameters, allowed.output, () => `output ${echo(o.name || `#${i}`)}`);
    if (!o.name) throw invalidArgument(`outputs[${i}] has no name; name the output you want, or ask for none to get them all`);
    outputs[i] = o.name;
  }
  return {
    model: req.model,
    version: req.version,
    inputs: req.inputs.map(inputFromV2),
    outputs,
    deadline: call.deadline,
    signal: call.signal,
    span: call.span,
    requestId: req.id || randomUUID(),
    ...(req.id ? { routingKey: req.id, feedbackId: req.id } : {}),
    priority: integerParameter(req.parameters, 'priority'),
    timeoutMs: integerParameter(req.parameters, 'timeout') / 1000,
    bypassCache: booleanParameter(req.parameters, 'bypass_cache', false),
  };
}

export function toV2Response(result: InferenceResult, req: V2InferRequest): V2InferResponse {
  if (result.text) return { model_name: result.model, model_version: result.version, id: req.id, outputs: textOutputs(result.text) };
  let outputs = result.outputs;
  if (req.outputs.length > 1) {
    const byName = new Map(outputs.map((t) => [t.name, t]));
    outputs = req.outputs.map((o) => byName.get(o.name)!).filter(Boolean);
  }
  return { model_name: result.model, model_version: result.version, id: req.id, outputs };
}

/** `where` names the place in a message; a function when building it would cost every request. */
function checkParameters(parameters: V2Parameters, allowed: readonly string[], place: string | (() => string)): void {
  for (const name in parameters) {
    if (allowed.includes(name)) continue;
    const where = typeof place === 'string' ? place : place();
    const why = Object.hasOwn(UNSUPPORTED, name) ? UNSUPPORTED[name] : undefined;
    if (why) throw invalidArgument(`parameter ${echo(name)} of ${where}: ${why}`);
    throw invalidArgument(
      `parameter ${echo(name)} of ${where} is not understood; ${allowed.length ? `understood here: ${allowed.join(', ')}` : 'none are understood there'}`,
    );
  }
}

/** A non-negative integer parameter; 0 when absent. */
export function integerParameter(parameters: V2Parameters, name: string): number {
  const v = parameters[name];
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalidArgument(`parameter '${name}' is ${echo(v, 24)}; expected a non-negative integer`);
  }
  return v;
}

export function booleanParameter(parameters: V2Parameters, name: string, fallback: boolean): boolean {
  const v = parameters[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw invalidArgument(`parameter '${name}' is ${echo(v, 24)}; expected true or false`);
  return v;
}

/**
 * A text request's answer in v2 tensors, which have no label fields: `label` (BYTES [1]) the best label,
 * `confidence` (FP32 [1]) its score, `labels` (BYTES [n]) every label in the model's order and `probabilities`
 * (FP32 [1, n]) their scores, what ModelService Predict answers as output_text, confidence and labels.
 */
export function textOutputs(text: TextClassification): InferTensor[] {
  const f32 = (values: number[], shape: number[]): InferTensor => ({ name: '', dtype: 'FP32', shape, data: new Uint8Array(Float32Array.from(values).buffer) });
  return [
    { name: 'label', dtype: 'STRING', shape: [1], data: new Uint8Array(0), strings: [text.label] },
    { ...f32([text.confidence], [1]), name: 'confidence' },
    { name: 'labels', dtype: 'STRING', shape: [text.labels.length], data: new Uint8Array(0), strings: text.labels.map((l) => l.label) },
    { ...f32(text.labels.map((l) => l.score), [1, text.labels.length]), name: 'probabilities' },
  ];
}
