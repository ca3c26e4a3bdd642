/**
 * An inference worker: owns ONNX Runtime sessions and runs them. It exists because `session.run` in the
 * Node binding blocks the thread it is called on; on the main thread one inference would stall every
 * other request, health check and deadline. Each worker handles one message at a time.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { SessionSettings, WireTensor, WorkerRequest, WorkerResponse, WorkerStats } from './messages';
import { createSession, runSession, specsFrom, type TensorBytes } from './ort-session';

if (!parentPort) throw new Error('runtime/worker must be started as a worker thread');
const port = parentPort;

const sessions = new Map<string, ort.InferenceSession>();
const stats: WorkerStats = { runs: {}, skippedExpired: 0 };
/** Session keys whose next run ends this thread instead (see 'exit-on-run'). */
const exitOnRun = new Set<string>();

function reply(message: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

async function load(key: string, path: string, settings: SessionSettings): Promise<WorkerResponse & { type: 'loaded' }> {
  const session = await createSession(path, settings);
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

/** An output as it crosses back: its own buffer is transferred when the output owns it whole, else its bytes are copied once. */
function toWire(t: TensorBytes, transfer: ArrayBuffer[]): WireTensor {
  if (t.strings) return { name: t.name, dtype: t.dtype, shape: t.shape, buffer: new ArrayBuffer(0), strings: t.strings };
  let buffer = t.bytes.buffer as ArrayBuffer;
  if (t.bytes.byteOffset !== 0 || t.bytes.byteLength !== buffer.byteLength || transfer.includes(buffer)) {
    buffer = buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.byteLength);
  }
  transfer.push(buffer);
  return { name: t.name, dtype: t.dtype, shape: t.shape, buffer };
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
  stats.runs[message.key] = (stats.runs[message.key] ?? 0) + 1;
  // The pool copied every input to its own buffer at offset 0, so every element type is aligned.
  const inputs = message.inputs.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(t.buffer), strings: t.strings }));
  const result = await runSession(session, inputs, message.outputs);
  const transfer: ArrayBuffer[] = [];
  const outputs = result.outputs.map((t) => toWire(t, transfer));
  reply({ type: 'result', id: message.id, outputs, computeMs: result.computeMs }, transfer);
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
