/**
 * ExecutionPool: the worker threads that own the ONNX Runtime sessions, and the only way the main thread
 * runs a model. Each session key ("model@version") is loaded into every worker (an instance per worker), so
 * any free worker can run any request. A worker takes at most `slotsPerWorker` runs at a time: work waits
 * in the main-thread scheduler, where it can still be dropped when its caller goes away, instead of in a
 * worker's message queue, where it could not.
 *
 * A worker that dies (native abort, out of memory) fails its in-flight runs with UNAVAILABLE, is replaced,
 * and gets its sessions back; nothing else is lost.
 */
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { deadlineExceeded, internal, ServingError, unavailable } from '../core/errors';
import type { InferTensor, TensorSpec } from '../core/tensor';
import type { SessionSettings, WireTensor, WorkerRequest, WorkerResponse, WorkerStats } from './messages';

export interface ExecutionPoolOptions {
  /** Number of worker threads; default: one per core, at most 4. */
  workers?: number;
  /** Concurrent runs handed to one worker; more than 1 only pipelines message hops. Default 1. */
  slotsPerWorker?: number;
}

export interface LoadedSession {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface RunResult {
  outputs: InferTensor[];
  computeMs: number;
}

interface Pending {
  resolve: (message: WorkerResponse) => void;
  reject: (err: ServingError) => void;
}

interface WorkerHandle {
  index: number;
  worker: Worker;
  inflight: number;
  pending: Map<number, Pending>;
  /** Resolves once the worker is ready again after a respawn. */
  ready: Promise<void>;
}

const WORKER_SCRIPT = path.join(__dirname, 'worker.js');

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(os.availableParallelism(), 4));
}

/** Default intra-op threads per session so that workers x threads ~ cores. */
export function defaultIntraOpThreads(workers: number): number {
  return Math.max(1, Math.floor(os.availableParallelism() / workers));
}

export class ExecutionPool extends EventEmitter {
  readonly workerCount: number;
  readonly slotsPerWorker: number;
  private readonly handles: WorkerHandle[] = [];
  /** Sessions every worker must hold, replayed into a respawned worker. */
  private readonly sessions = new Map<string, { path: string; settings: SessionSettings }>();
  private nextId = 1;
  private closed = false;
  workerRestarts = 0;

  constructor(options: ExecutionPoolOptions = {}) {
    super();
    this.workerCount = options.workers ?? defaultWorkerCount();
    this.slotsPerWorker = options.slotsPerWorker ?? 1;
    for (let i = 0; i < this.workerCount; i++) this.handles.push(this.spawn(i));
  }

  private spawn(index: number): WorkerHandle {
    const worker = new Worker(WORKER_SCRIPT);
    const handle: WorkerHandle = { index, worker, inflight: 0, pending: new Map(), ready: Promise.resolve() };
    worker.on('message', (message: WorkerResponse) => {
      const pending = handle.pending.get(message.id);
      if (!pending) return;
      handle.pending.delete(message.id);
      pending.resolve(message);
    });
    worker.on('error', (err) => this.emit('worker-error', { index, error: err }));
    worker.on('exit', (code) => this.onExit(handle, code));
    return handle;
  }

  private onExit(handle: WorkerHandle, code: number): void {
    const failure = unavailable(`inference worker ${handle.index} exited (code ${code}) while running this request; retry`);
    for (const pending of handle.pending.values()) pending.reject(failure);
    handle.pending.clear();
    handle.inflight = 0;
    if (this.closed) return;
    // Replace the worker in place and give it every session back before it takes work again.
    this.workerRestarts++;
    const replacement = this.spawn(handle.index);
    this.handles[handle.index] = replacement;
    replacement.inflight = this.slotsPerWorker; // no work until sessions are back
    replacement.ready = (async () => {
      for (const [key, s] of this.sessions) {
        await this.request(replacement, { type: 'load', id: 0, key, path: s.path, settings: s.settings }).catch(() => undefined);
      }
      replacement.inflight = 0;
      this.emit('worker-restarted', handle.index);
      this.emit('slot-free');
    })();
  }

  private request(handle: WorkerHandle, message: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerResponse> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      handle.pending.set(id, { resolve, reject });
      handle.worker.postMessage({ ...message, id }, transfer);
    });
  }

  /** Loads a session into every worker; rejects (and loads nothing) if any worker fails. */
  async load(key: string, modelPath: string, settings: SessionSettings): Promise<LoadedSession> {
    const replies = await Promise.all(
      this.handles.map((h) => this.request(h, { type: 'load', id: 0, key, path: modelPath, settings })),
    );
    const failed = replies.find((r) => r.type === 'error');
    if (failed && failed.type === 'error') {
      await this.unload(key);
      throw internal(failed.message);
    }
    this.sessions.set(key, { path: modelPath, settings });
    const first = replies[0];
    if (first?.type !== 'loaded') throw internal(`unexpected reply '${first?.type}' to load`);
    return { inputs: first.inputs, outputs: first.outputs };
  }

  async unload(key: string): Promise<void> {
    this.sessions.delete(key);
    await Promise.all(this.handles.map((h) => this.request(h, { type: 'unload', id: 0, key }).catch(() => undefined)));
  }

  /** A worker with a free slot, least busy first; undefined when all are busy. */
  private freeWorker(): WorkerHandle | undefined {
    let best: WorkerHandle | undefined;
    for (const h of this.handles) {
      if (h.inflight < this.slotsPerWorker && (!best || h.inflight < best.inflight)) best = h;
    }
    return best;
  }

  hasFreeSlot(): boolean {
    return this.freeWorker() !== undefined;
  }

  /**
   * Runs a session on a free worker. Callers (the scheduler) must check hasFreeSlot() first.
   * The input bytes are copied once into buffers that are then transferred, not cloned.
   */
  async run(key: string, inputs: InferTensor[], outputs: string[], deadline: number | undefined): Promise<RunResult> {
    const handle = this.freeWorker();
    if (!handle) throw internal('no free inference worker (scheduler bug: run() without a free slot)');
    const transfer: ArrayBuffer[] = [];
    const wire = inputs.map((t) => toWire(t, transfer));
    handle.inflight++;
    this.emit('run-start', key, handle.index);
    try {
      const reply = await this.request(handle, { type: 'run', id: 0, key, inputs: wire, outputs, deadline }, transfer);
      if (reply.type === 'result') {
        return { outputs: reply.outputs.map(fromWire), computeMs: reply.computeMs };
      }
      if (reply.type === 'error' && reply.kind === 'expired') throw deadlineExceeded('deadline passed before execution started');
      if (reply.type === 'error') throw internal(`ONNX Runtime failed: ${reply.message}`);
      throw internal(`unexpected reply '${reply.type}' to run`);
    } finally {
      handle.inflight = Math.max(0, handle.inflight - 1);
      this.emit('slot-free');
    }
  }

  /** Per-worker counters: executions per session and skipped expired runs. */
  async stats(): Promise<WorkerStats[]> {
    const replies = await Promise.all(this.handles.map((h) => this.request(h, { type: 'stats', id: 0 })));
    return replies.map((r) => (r.type === 'stats' ? r.stats : { runs: {}, skippedExpired: 0 }));
  }

  /** Terminates one worker as a crash would; for tests of recovery. */
  async crashWorkerForTest(index: number): Promise<void> {
    const handle = this.handles[index];
    if (!handle) throw new Error(`no worker ${index}`);
    const restarted = new Promise<void>((resolve) => {
      const onRestart = (i: number) => {
        if (i === index) {
          this.off('worker-restarted', onRestart);
          resolve();
        }
      };
      this.on('worker-restarted', onRestart);
    });
    await handle.worker.terminate();
    await restarted;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}

function toWire(t: InferTensor, transfer: ArrayBuffer[]): WireTensor {
  const buffer = new ArrayBuffer(t.data.byteLength);
  new Uint8Array(buffer).set(t.data);
  transfer.push(buffer);
  return { name: t.name, dtype: t.dtype, shape: t.shape, buffer, ...(t.strings ? { strings: t.strings } : {}) };
}

function fromWire(t: WireTensor): InferTensor {
  return { name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.buffer), ...(t.strings ? { strings: t.strings } : {}) };
}
