/**
 * An inference worker: owns ONNX Runtime sessions and runs them. It exists because `session.run` in the
 * Node binding blocks the thread it is called on; on the main thread one inference would stall every
 * other request, health check and deadline. Each worker handles one message at a time.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { dataTypeByName, dataTypeByOrt } from '../core/dtype';
import type { TensorSpec } from '../core/tensor';
import type { SessionSettings, WireTensor, WorkerRequest, WorkerResponse, WorkerStats } from './messages';

if (!parentPort) throw new Error('runtime/worker must be started as a worker thread');
const port = parentPort;

const sessions = new Map<string, ort.InferenceSession>();
const stats: WorkerStats = { runs: {}, skippedExpired: 0 };
/** Session keys whose next run ends this thread instead (see 'exit-on-run'). */
const exitOnRun = new Set<string>();

function reply(message: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function specsFrom(metadata: readonly ort.InferenceSession.ValueMetadata[], kind: string): TensorSpec[] {
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

async function load(key: string, path: string, settings: SessionSettings): Promise<WorkerResponse & { type: 'loaded' }> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: settings.executionProviders,
    graphOptimizationLevel: settings.graphOptimizationLevel,
    executionMode: settings.executionMode,
    // 0 lets ONNX Runtime pick (all cores); the pool passes a per-worker share of the cores by default.
    ...(settings.intraOpThreads > 0 ? { intraOpNumThreads: settings.intraOpThreads } : {}),
    ...(settings.interOpThreads > 0 ? { interOpNumThreads: settings.interOpThreads } : {}),
    // Failures reach the caller and our logs as errors; ORT printing its own non-JSON lines to stderr would only duplicate them.
    logSeverityLevel: 4,
  };
  const session = await ort.InferenceSession.create(path, options);
  try {
    const inputs = specsFrom(session.inputMetadata, 'input');
    const outputs = specsFrom(session.outputMetadata, 'output');
    const previous = sessions.get(key);
    sessions.set(key, session);
    if (previous) await previous.release();
    return { type: 'loaded', id: 0, inputs, outputs };
  } catch (err) {
    await session.release();
    throw err;
  }
}

function toOrtTensor(t: WireTensor): ort.Tensor {
  if (t.dtype === 'STRING') return new ort.Tensor('string', t.strings ?? [], t.shape);
  const info = dataTypeByName(t.dtype);
  if (!info?.arrayType) throw new Error(`input '${t.name}': dtype ${t.dtype} is not supported`);
  // The buffer was copied to offset 0 by the pool, so every element type is aligned.
  const data = new info.arrayType(t.buffer, 0, t.buffer.byteLength / info.byteSize);
  return new ort.Tensor(info.ort as 'float32', data as Float32Array, t.shape);
}

function fromOrtTensor(name: string, value: ort.OnnxValue, transfer: ArrayBuffer[]): WireTensor {
  const tensor = value as ort.Tensor;
  const info = dataTypeByOrt(tensor.type);
  if (!info) throw new Error(`output '${name}' has element type '${tensor.type}', which tensorgate cannot serve`);
  const shape = [...tensor.dims];
  if (info.name === 'STRING') {
    return { name, dtype: info.name, shape, buffer: new ArrayBuffer(0), strings: tensor.data as string[] };
  }
  const view = tensor.data as ArrayBufferView;
  let buffer = view.buffer as ArrayBuffer;
  if (view.byteOffset !== 0 || view.byteLength !== buffer.byteLength || transfer.includes(buffer)) {
    // Only a buffer we own whole can be transferred; otherwise copy the exact bytes once.
    buffer = buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  }
  transfer.push(buffer);
  return { name, dtype: info.name, shape, buffer };
}

async function run(message: WorkerRequest & { type: 'run' }): Promise<void> {
  const session = sessions.get(message.key);
  if (!session) {
    reply({ type: 'error', id: message.id, kind: 'protocol', message: `session '${message.key}' is not loaded in this worker` });
    return;
  }
  if (message.deadline !== undefined && Date.now() >= message.deadline) {
    stats.skippedExpired++;
    reply({ type: 'error', id: message.id, kind: 'expired', message: 'deadline passed before execution started' });
    return;
  }
  if (exitOnRun.has(message.key)) process.exit(70); // ends this worker thread only, mid-run as the pool sees it
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of message.inputs) feeds[t.name] = toOrtTensor(t);
  const started = performance.now();
  stats.runs[message.key] = (stats.runs[message.key] ?? 0) + 1;
  const results = message.outputs.length > 0 ? await session.run(feeds, message.outputs) : await session.run(feeds);
  const computeMs = performance.now() - started;
  const transfer: ArrayBuffer[] = [];
  const outputs = Object.entries(results).map(([name, value]) => fromOrtTensor(name, value, transfer));
  for (const t of Object.values(feeds)) t.dispose();
  reply({ type: 'result', id: message.id, outputs, computeMs }, transfer);
}

async function handle(message: WorkerRequest): Promise<void> {
  switch (message.type) {
    case 'load':
      try {
        const loaded = await load(message.key, message.path, message.settings);
        reply({ ...loaded, id: message.id });
      } catch (err) {
        reply({ type: 'error', id: message.id, kind: 'load', message: errorMessage(err) });
      }
      return;
    case 'unload': {
      const session = sessions.get(message.key);
      sessions.delete(message.key);
      if (session) await session.release();
      reply({ type: 'unloaded', id: message.id });
      return;
    }
    case 'run':
      try {
        await run(message);
      } catch (err) {
        reply({ type: 'error', id: message.id, kind: 'run', message: errorMessage(err) });
      }
      return;
    case 'exit-on-run':
      exitOnRun.add(message.key);
      reply({ type: 'armed', id: message.id });
      return;
    case 'stats':
      reply({ type: 'stats', id: message.id, stats: { runs: { ...stats.runs }, skippedExpired: stats.skippedExpired } });
      return;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Messages are handled strictly one after another: ORT runs on one session serialise anyway, and
// ordering keeps load -> run -> unload sequences on one worker consistent.
let chain: Promise<void> = Promise.resolve();
port.on('message', (message: WorkerRequest) => {
  chain = chain.then(() => handle(message));
});
