/**
 * Request validation against a model version's tensor specs, before anything is queued or run. Every
 * message names the tensor, what came and what was expected, so a client can fix its request from the
 * error alone.
 */
import { dataTypeByName, elementCount } from './dtype';
import { echo, invalidArgument, resourceExhausted } from './errors';
import type { InferTensor, TensorSpec } from './tensor';

export interface RequestLimits {
  /** Most elements (summed over all inputs) one request may carry. */
  maxElements: number;
  /** Most UTF-8 bytes of input_text one request may carry. */
  maxTextBytes: number;
}

/** Most dimensions a tensor may have: far above any real model, low enough to keep messages short. */
export const MAX_RANK = 32;
/** Dims shown in a message before the rest are summarised. */
const SHOWN_DIMS = 8;

/** A shape for a message: every dim when short, else the first few and the rank. */
export function formatShape(shape: readonly (number | string)[]): string {
  if (shape.length <= SHOWN_DIMS) return `[${shape.join(', ')}]`;
  return `[${shape.slice(0, SHOWN_DIMS).join(', ')}, ... (${shape.length} dims)]`;
}

export function formatSpec(spec: TensorSpec): string {
  return `${spec.name} ${spec.dtype} [${spec.shape.map((d, i) => (d === -1 ? spec.dimNames[i] || '-1' : String(d))).join(', ')}]`;
}

export function formatSpecs(specs: TensorSpec[]): string {
  return specs.map(formatSpec).join(', ') || '(none)';
}

export function validateInputs(inputs: InferTensor[], specs: TensorSpec[], limits: RequestLimits, where: string): void {
  if (inputs.length === 0) {
    throw invalidArgument(`no inputs sent; ${where} expects: ${formatSpecs(specs)}`);
  }
  const seen = new Set<string>();
  let total = 0;
  for (const t of inputs) {
    const spec = specs.find((s) => s.name === t.name);
    if (!spec) {
      throw invalidArgument(`unknown input ${echo(t.name)}; ${where} expects inputs: ${formatSpecs(specs)}`);
    }
    if (seen.has(t.name)) throw invalidArgument(`input '${t.name}' is sent more than once`);
    seen.add(t.name);
    total += validateTensor(t, spec, limits);
    if (total > limits.maxElements) {
      throw resourceExhausted(
        `request carries more than ${limits.maxElements} elements (limit reached at input '${t.name}'); ` +
          `split the request or raise the server's limit with --max-elements / TENSORGATE_MAX_ELEMENTS`,
      );
    }
  }
  const missing = specs.filter((s) => !seen.has(s.name));
  if (missing.length > 0) {
    throw invalidArgument(`missing input${missing.length > 1 ? 's' : ''} ${missing.map(formatSpec).join(', ')}; ${where} needs every input`);
  }
}

/** Checks one tensor against its spec and returns its element count. */
function validateTensor(t: InferTensor, spec: TensorSpec, limits: RequestLimits): number {
  const info = dataTypeByName(t.dtype);
  if (!info) throw invalidArgument(`input '${t.name}': dtype ${echo(t.dtype)} is unknown; expected ${spec.dtype}`);
  if (info.unsupported) throw invalidArgument(`input '${t.name}': ${info.unsupported}`);
  if (t.dtype !== spec.dtype) throw invalidArgument(`input '${t.name}': dtype ${t.dtype} sent, the model expects ${spec.dtype}`);
  if (t.shape.length > MAX_RANK) {
    throw invalidArgument(`input '${t.name}': shape has ${t.shape.length} dims; at most ${MAX_RANK} are accepted, and the model expects ${formatSpec(spec)}`);
  }
  t.shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw invalidArgument(`input '${t.name}': shape ${formatShape(t.shape)} has an invalid dim ${i} (${d}); dims are non-negative integers`);
    }
  });
  if (spec.shape.length > 0) {
    if (t.shape.length !== spec.shape.length) {
      throw invalidArgument(
        `input '${t.name}': rank ${t.shape.length} shape ${formatShape(t.shape)} sent, the model expects rank ${spec.shape.length}: ${formatSpec(spec)}`,
      );
    }
    spec.shape.forEach((want, i) => {
      if (want !== -1 && t.shape[i] !== want) {
        throw invalidArgument(`input '${t.name}': dim ${i} is ${t.shape[i]}, the model expects ${want} (${formatSpec(spec)})`);
      }
    });
  }
  const count = elementCount(t.shape);
  if (count > limits.maxElements) {
    throw resourceExhausted(
      `input '${t.name}' has ${count} elements, more than the limit of ${limits.maxElements} per request; ` +
        `split the request or raise the limit with --max-elements / TENSORGATE_MAX_ELEMENTS`,
    );
  }
  // An empty tensor (a 0 dim) may still carry a dim no tensor could have; ONNX Runtime would fail on it.
  const huge = t.shape.findIndex((d) => d > limits.maxElements);
  if (huge >= 0) {
    throw invalidArgument(
      `input '${t.name}': dim ${huge} is ${t.shape[huge]}, more than the ${limits.maxElements} elements a request may carry (--max-elements), so no tensor can have it`,
    );
  }
  if (info.name === 'STRING') {
    const n = t.strings?.length ?? 0;
    if (n !== count) throw invalidArgument(`input '${t.name}': ${n} strings in string_data, shape ${formatShape(t.shape)} needs ${count}`);
    if (t.data.byteLength > 0) throw invalidArgument(`input '${t.name}': STRING tensors carry their elements in string_data, not data`);
    return count;
  }
  if (t.strings && t.strings.length > 0) {
    throw invalidArgument(`input '${t.name}': string_data is only for STRING tensors; send ${t.dtype} elements as little-endian bytes in data`);
  }
  const expected = count * info.byteSize;
  if (t.data.byteLength !== expected) {
    throw invalidArgument(
      `input '${t.name}': data has ${t.data.byteLength} bytes, shape ${formatShape(t.shape)} of ${t.dtype} needs ${expected} ` +
        `(${count} elements x ${info.byteSize} bytes, little-endian row-major)`,
    );
  }
  if (info.name === 'BOOL') {
    for (let i = 0; i < t.data.length; i++) {
      if (t.data[i]! > 1) throw invalidArgument(`input '${t.name}': BOOL element ${i} is ${t.data[i]}; BOOL elements are bytes 0 or 1`);
    }
  }
  return count;
}

export function validateOutputNames(requested: string[], specs: TensorSpec[], where: string): void {
  const seen = new Set<string>();
  for (const name of requested) {
    if (!specs.some((s) => s.name === name)) {
      throw invalidArgument(`unknown output ${echo(name)}; ${where} has outputs: ${specs.map((s) => s.name).join(', ')}`);
    }
    if (seen.has(name)) throw invalidArgument(`output '${name}' is requested more than once`);
    seen.add(name);
  }
}
