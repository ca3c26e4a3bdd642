/**
 * NativeSession: one ONNX Runtime session as every thread that runs one uses it (the inference workers,
 * runtime/worker.ts, and main-thread execution, runtime/inline-sessions.ts), so both build the same feeds,
 * return the same bytes and time runs the same way.
 *
 * Why onnxruntime-node's binding session rather than `InferenceSession`: the public run() defers every
 * run to a setImmediate, so the time around it includes whatever else the thread's event loop does first
 * (measured: a 10 us `mlp` run timed at 60-170 us on a worker), and the placement decision
 * (scheduling/placement.ts) needs the run's own time; the deferral is also one more event-loop turn per
 * run. The binding is the package's own documented "simple synchronized inference session object wrap"
 * (dist/binding.d.ts), which InferenceSession wraps; the package version is pinned in package.json, and
 * tests compare inline and worker answers byte for byte and load every fixture model through it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { binding, initOrt, type Binding } from 'onnxruntime-node/dist/binding';
import { dataTypeByName, dataTypeByOrt } from '../core/dtype';
import type { InferTensor, TensorSpec } from '../core/tensor';
import type { SessionSettings } from './messages';

/**
 * ONNX TensorProto element type numbers, as the binding reports them, to onnxruntime-common type names
 * (the same table onnxruntime-node's backend uses; bfloat16 (16) is absent there too).
 */
const ONNX_ELEMENT_TYPES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64',
};

export function sessionOptions(settings: SessionSettings): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: settings.executionProviders,
    graphOptimizationLevel: settings.graphOptimizationLevel,
    executionMode: settings.executionMode,
    // 0 lets ONNX Runtime pick (all cores); the pool passes a per-worker share of the cores by default.
    ...(settings.intraOpThreads > 0 ? { intraOpNumThreads: settings.intraOpThreads } : {}),
    ...(settings.interOpThreads > 0 ? { interOpNumThreads: settings.interOpThreads } : {}),
    // Keys of onnxruntime_session_options_config_keys.h; the Node binding joins the nesting with dots.
    ...(settings.intraOpSpinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    // Failures reach the caller and our logs as errors; ORT printing its own non-JSON lines to stderr would only duplicate them.
    logSeverityLevel: 4,
  };
}

function specsFrom(metadata: readonly Binding.ValueMetadata[], kind: string): TensorSpec[] {
  return metadata.map((m) => {
    if (!m.isTensor) throw new Error(`${kind} '${m.name}' is not a tensor (sequences and maps are not supported)`);
    const ortType = ONNX_ELEMENT_TYPES[m.type];
    const info = ortType ? dataTypeByOrt(ortType) : undefined;
    if (!info) throw new Error(`${kind} '${m.name}' has ONNX element type ${m.type}${ortType ? ` (${ortType})` : ''}, which tensorgate cannot serve`);
    return {
      name: m.name,
      dtype: info.name,
      shape: m.shape.map((d) => (d >= 0 ? d : -1)),
      dimNames: m.shape.map((d, i) => (d >= 0 ? '' : (m.symbolicDimensions[i] ?? ''))),
    };
  });
}

/** An ort.Tensor over `t`'s bytes: no copy when they are aligned for the element type, one copy when not. */
function toOrtTensor(t: InferTensor): ort.Tensor {
  if (t.dtype === 'STRING') return new ort.Tensor('string', t.strings ?? [], t.shape);
  const info = dataTypeByName(t.dtype);
  if (!info?.arrayType) throw new Error(`input '${t.name}': dtype ${t.dtype} is not supported`);
  let bytes = t.data;
  // A typed array must start at a multiple of its element size; bytes sliced out of a protobuf message may not.
  // (new Uint8Array(view) copies; a Node Buffer's slice() would not.)
  if (bytes.byteOffset % info.byteSize !== 0) bytes = new Uint8Array(bytes);
  const data = new info.arrayType(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / info.byteSize);
  return new ort.Tensor(info.ort as 'float32', data as Float32Array, t.shape);
}

/** An output's bytes as a view over the tensor's own buffer (ONNX Runtime gives every output a fresh one). */
function fromOrtTensor(name: string, value: ort.OnnxValue): InferTensor {
  const tensor = value as ort.Tensor;
  const info = dataTypeByOrt(tensor.type);
  if (!info) throw new Error(`output '${name}' has element type '${tensor.type}', which tensorgate cannot serve`);
  const shape = [...tensor.dims];
  if (info.name === 'STRING') return { name, dtype: info.name, shape, data: new Uint8Array(0), strings: tensor.data as string[] };
  const view = tensor.data as ArrayBufferView;
  return { name, dtype: info.name, shape, data: new Uint8Array(view.buffer, view.byteOffset, view.byteLength) };
}

export class NativeSession {
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  private readonly outputNames: string[];
  private readonly session: Binding.InferenceSession;

  /** Loads synchronously (on a worker thread, or on the main thread for a model small enough to run there). */
  constructor(path: string, settings: SessionSettings) {
    initOrt(); // once per thread: hands the binding the Tensor class
    const session = new binding.InferenceSession();
    if (settings.sha256 === undefined) session.loadModel(path, sessionOptions(settings));
    else {
      // Pinned: hash the bytes and give ONNX Runtime those same bytes, so no file swapped after a check can load
      // (the repository checked the file before; a worker started later, after a crash, checks again here).
      const bytes = fs.readFileSync(path);
      const has = createHash('sha256').update(bytes).digest('hex');
      if (has !== settings.sha256) throw new Error(`the model file does not match its sha256: config says ${settings.sha256}, the file has ${has}`);
      session.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, sessionOptions(settings));
    }
    try {
      this.inputs = specsFrom(session.inputMetadata, 'input');
      this.outputs = specsFrom(session.outputMetadata, 'output');
    } catch (err) {
      session.dispose();
      throw err;
    }
    this.session = session;
    this.outputNames = this.outputs.map((o) => o.name);
  }

  /**
   * Runs synchronously; `outputs` empty = all. The results in ONNX Runtime's order, with the run's own
   * time. Throws whatever ONNX Runtime (or the tensor constructor, on a size mismatch) throws.
   */
  run(inputs: readonly InferTensor[], outputs: readonly string[]): { outputs: InferTensor[]; computeMs: number } {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = toOrtTensor(t);
    const fetches: Record<string, null> = {};
    for (const name of outputs.length > 0 ? outputs : this.outputNames) fetches[name] = null;
    const started = performance.now();
    const results = this.session.run(feeds, fetches, {});
    const computeMs = performance.now() - started;
    return { outputs: Object.keys(results).map((name) => fromOrtTensor(name, results[name]!)), computeMs };
  }

  dispose(): void {
    this.session.dispose();
  }
}
