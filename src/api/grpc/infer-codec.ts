/**
 * inference.ModelInferRequest / ModelInferResponse (the v2 gRPC messages, as the server's decoder gives them:
 * int64 as decimal strings, oneofs named, maps as objects) <-> the shared V2InferRequest / V2InferResponse.
 */
import { echo, invalidArgument } from '../../core/errors';
import type { V2InferRequest, V2InferResponse, V2Parameters } from '../v2/v2-infer';
import { booleanParameter } from '../v2/v2-infer';
import { outputToRaw, outputToTyped, v2Datatype, type TypedContents } from '../v2/v2-tensors';

export interface InferParameterMessage {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  bool_param?: boolean;
  int64_param?: string | number;
  string_param?: string;
  double_param?: number;
  uint64_param?: string | number;
}

export interface ModelInferRequestMessage {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameterMessage>;
  inputs: {
    name: string;
    datatype: string;
    shape: (string | number)[];
    parameters: Record<string, InferParameterMessage>;
    contents: TypedContents | null;
  }[];
  outputs: { name: string; parameters: Record<string, InferParameterMessage> }[];
  raw_input_contents: Buffer[];
}

/**
 * Request parameters only the gRPC door gives meaning to:
 *   binary_data_output  bool, default true: outputs in raw_output_contents; false: in each output's typed contents
 */
export const GRPC_PARAMETERS = { request: ['binary_data_output'], input: [], output: [] } as const;

/** Shared by every message without parameters (most of them): never written to. */
const NO_PARAMETERS: V2Parameters = Object.freeze({});

export function parametersFromProto(parameters: Record<string, InferParameterMessage> | undefined, where: string | (() => string)): V2Parameters {
  let out: V2Parameters | undefined;
  for (const name in parameters) {
    const p = parameters[name]!;
    out ??= {};
    const choice = p.parameter_choice;
    if (!choice) throw invalidArgument(`parameter ${echo(name)} of ${typeof where === 'string' ? where : where()} has no value set`);
    const value = p[choice]!;
    if (choice === 'int64_param' || choice === 'uint64_param') {
      const n = Number(value);
      if (!Number.isSafeInteger(n)) throw invalidArgument(`parameter ${echo(name)} of ${typeof where === 'string' ? where : where()} is ${echo(String(value), 24)}, beyond 2^53`);
      out[name] = n;
    } else {
      out[name] = value as boolean | string | number;
    }
  }
  return out ?? NO_PARAMETERS;
}

const hasElements = (c: TypedContents | null) => c !== null && Object.values(c).some((v) => Array.isArray(v) && v.length > 0);

export function inferRequestFromProto(msg: ModelInferRequestMessage): V2InferRequest {
  const raw = msg.raw_input_contents;
  if (raw.length > 0) {
    const typed = msg.inputs.findIndex((t) => hasElements(t.contents));
    if (typed >= 0) {
      throw invalidArgument(
        `input ${echo(msg.inputs[typed]!.name)} has typed contents while raw_input_contents is set; send every input one way: all raw (one raw_input_contents entry per input) or all typed`,
      );
    }
    if (raw.length !== msg.inputs.length) {
      throw invalidArgument(`raw_input_contents has ${raw.length} entries for ${msg.inputs.length} inputs; send exactly one per input, in the order of inputs`);
    }
  }
  return {
    model: msg.model_name,
    version: msg.model_version,
    id: msg.id,
    parameters: parametersFromProto(msg.parameters, 'the request'),
    inputs: msg.inputs.map((t, i) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      parameters: parametersFromProto(t.parameters, () => `input ${echo(t.name || `#${i}`)}`),
      data: raw.length > 0 ? { kind: 'raw', bytes: raw[i]! } : { kind: 'typed', contents: t.contents ?? {} },
    })),
    outputs: msg.outputs.map((o, i) => ({ name: o.name, parameters: parametersFromProto(o.parameters, () => `output ${echo(o.name || `#${i}`)}`) })),
  };
}

/** Whether the outputs go in raw_output_contents (the default) or typed contents. */
export const rawOutputs = (req: V2InferRequest) => booleanParameter(req.parameters, 'binary_data_output', true);

export function inferResponseToProto(res: V2InferResponse, raw: boolean) {
  return {
    model_name: res.model_name,
    model_version: res.model_version,
    id: res.id,
    outputs: res.outputs.map((t) => ({
      name: t.name,
      datatype: v2Datatype(t.dtype),
      shape: t.shape,
      ...(raw ? {} : { contents: outputToTyped(t) }),
    })),
    raw_output_contents: raw ? res.outputs.map(outputToRaw) : [],
  };
}
