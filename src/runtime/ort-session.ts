/**
 * What every thread that runs ONNX Runtime does the same way: create a session from our settings, read its
 * tensor metadata, and convert tensors between our little-endian element bytes and ort.Tensor. Used by the
 * inference workers (runtime/worker.ts) and by main-thread execution (runtime/inline-sessions.ts), so both
 * paths build the same feeds and return the same bytes.
 */
import * as ort from 'onnxruntime-node';
import { dataTypeByName, dataTypeByOrt, type DataTypeName } from '../core/dtype';
import type { TensorSpec } from '../core/tensor';
import type { SessionSettings } from './messages';

export function sessionOptions(settings: SessionSettings): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: settings.executionProviders,
    graphOptimizationLevel: settings.graphOptimizationLevel,
    executionMode: settings.executionMode,
    // 0 lets ONNX Runtime pick (all cores); the pool passes a per-worker share of the cores by default.
    ...(settings.intraOpThreads > 0 ? { intraOpNumThreads: settings.intraOpThreads } : {}),
    ...(settings.interOpThreads > 0 ? { interOpNumThreads: settings.interOpThreads } : {}),
    // Failures reach the caller and our logs as errors; ORT printing its own non-JSON lines to stderr would only duplicate them.
    logSeverityLevel: 4,
  };
}

export function createSession(path: string, settings: SessionSettings): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, sessionOptions(settings));
}

export function specsFrom(metadata: readonly ort.InferenceSession.ValueMetadata[], kind: string): TensorSpec[] {
  return metadata.map((m) => {
    if (!m.isTensor) throw new Error(`${kind} '${m.name}' is not a tensor (sequences and maps are not supported)`);
    const info = dataTypeByOrt(m.type);
    if (!info) throw new Error(`${kind} '${m.name}' has element type '${m.type}', which tensorgate cannot serve`);
    return {
      name: m.name,
      dtype: info.name,
      shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
      dimNames: m.shape.map((d) => (typeof d === 'string' ? d : '')),
    };
  });
}

/** A tensor as either side holds it: element bytes (any offset) or strings. */
export interface TensorBytes {
  name: string;
  dtype: DataTypeName;
  shape: number[];
  bytes: Uint8Array;
  strings?: string[];
}

/** An ort.Tensor over `t`'s bytes: no copy when they are aligned for the element type, one copy when not. */
export function toOrtTensor(t: TensorBytes): ort.Tensor {
  if (t.dtype === 'STRING') return new ort.Tensor('string', t.strings ?? [], t.shape);
  const info = dataTypeByName(t.dtype);
  if (!info?.arrayType) throw new Error(`input '${t.name}': dtype ${t.dtype} is not supported`);
  let bytes = t.bytes;
  // A typed array must start at a multiple of its element size; bytes sliced out of a protobuf message may not.
  // (new Uint8Array(view) copies; a Node Buffer's slice() would not.)
  if (bytes.byteOffset % info.byteSize !== 0) bytes = new Uint8Array(bytes);
  const data = new info.arrayType(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / info.byteSize);
  return new ort.Tensor(info.ort as 'float32', data as Float32Array, t.shape);
}

/** An output's bytes as a view over the tensor's own buffer (ONNX Runtime gives every output a fresh one). */
export function fromOrtTensor(name: string, value: ort.OnnxValue): TensorBytes {
  const tensor = value as ort.Tensor;
  const info = dataTypeByOrt(tensor.type);
  if (!info) throw new Error(`output '${name}' has element type '${tensor.type}', which tensorgate cannot serve`);
  const shape = [...tensor.dims];
  if (info.name === 'STRING') return { name, dtype: info.name, shape, bytes: new Uint8Array(0), strings: tensor.data as string[] };
  const view = tensor.data as ArrayBufferView;
  return { name, dtype: info.name, shape, bytes: new Uint8Array(view.buffer, view.byteOffset, view.byteLength) };
}

/** Runs `session` on `inputs`; the results in the order ONNX Runtime returns them, with the run's time. */
export async function runSession(
  session: ort.InferenceSession,
  inputs: readonly TensorBytes[],
  outputs: readonly string[],
): Promise<{ outputs: TensorBytes[]; computeMs: number }> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of inputs) feeds[t.name] = toOrtTensor(t);
  const started = performance.now();
  try {
    const results = outputs.length > 0 ? await session.run(feeds, outputs as string[]) : await session.run(feeds);
    const computeMs = performance.now() - started;
    return { outputs: Object.entries(results).map(([name, value]) => fromOrtTensor(name, value)), computeMs };
  } finally {
    for (const t of Object.values(feeds)) t.dispose();
  }
}
