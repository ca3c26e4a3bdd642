/**
 * ExecutionPool: the worker threads that own the ONNX Runtime sessions, and the only way the main thread
 * runs a model: on a worker, or (for versions the scheduler's placement moved there) inline on the main
 * thread through InlineSessions. Each session key ("model@version") is loaded into every worker (an instance per worker), so
 * any free worker can run any request. A worker takes at most `slotsPerWorker` runs at a time: work waits
 * in the main-thread scheduler, where it can still be dropped when its caller goes away, instead of in a
 * worker's message queue, where it could not.
 *
 * A worker thread that exits (an uncaught error, its heap limit) fails its in-flight runs with UNAVAILABLE,
 * is replaced, and gets its sessions back; nothing else is lost. A worker stuck in a run far beyond its
 * execution timeout is retired: a replacement takes its place at once, and the old thread is terminated
 * when its run returns. Why not terminate it at once: terminating (or exiting the process) while ONNX
 * Runtime is inside a run aborts the whole process (measured: `terminate called after throwing an
 * instance of 'Napi::Error'`), so a busy worker is only ever terminated once idle. For the same reason a
 * native crash inside ONNX Runtime takes the process down; a supervisor (Kubernetes) restarts it.
 */
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { deadlineExceeded, internal, markServerFault, ModelRunError, ServingError, unavailable } from '../core/errors';
import { clampDelay } from '../core/timers';
import type { InferTensor } from '../core/tensor';
import { InlineSessions } from './inline-sessions';
import type { SessionSettings, WarmupRun, WorkerRequest, WorkerResponse, WorkerStats } from './messages';
import { fromWire, toWire } from './wire-tensors';
import type { GenDrop, GenJoin } from '../generation/step-messages';
import { STUCK_FACTOR, type ExecutionPoolEvents, type ExecutionPoolOptions, type LoadedSession, type RunOptions, type RunResult } from './pool-types';

export { STUCK_FACTOR, type ExecutionPoolEvents, type ExecutionPoolOptions, type LoadedSession, type RunOptions, type RunResult } from './pool-types';

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
  /** Replaced because it was stuck: takes no work, and is terminated once its run finally returns. */
  retired: boolean;
  /** Called whenever `pending` becomes empty. */
  onIdle: (() => void)[];
  /** Sequences the worker is decoding, per session key (from its last step of each): it steps on its own meanwhile. */
  decoding: Map<string, number>;
}

const WORKER_SCRIPT = path.join(__dirname, 'worker.js');
/** The worker has a run in flight or sequences it decodes. */
const busy = (h: WorkerHandle) => h.inflight > 0 || h.decoding.size > 0;
/** The worker that holds the solo sessions (any would do: solo runs happen only when every worker is idle). */
const SOLO_WORKER = 0;

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(os.availableParallelism(), 4));
}

/** Default intra-op threads per session so that workers x threads ~ cores. */
export function defaultIntraOpThreads(workers: number): number {
  return Math.max(1, Math.floor(os.availableParallelism() / workers));
}

export class ExecutionPool extends EventEmitter<ExecutionPoolEvents> {
  readonly workerCount: number;
  readonly slotsPerWorker: number;
  private readonly handles: WorkerHandle[] = [];
  /** Sessions every worker must hold, replayed into a respawned worker. */
  private readonly sessions = new Map<string, { path: string; settings: SessionSettings; warmup: WarmupRun[] }>();
  /** Keys with a solo session on worker 0 (ready), or one being made there, and the warm-up it was made with. */
  private readonly solo = new Map<string, { ready: boolean; warmup: WarmupRun[] }>();
  readonly soloThreads: number;
  /** What the solo worker was last told by hintSolo(). */
  private soloHint = false;
  private readonly retired = new Set<WorkerHandle>();
  private readonly inline = new InlineSessions();
  /** Main-thread executions per session key (reported by stats() after the workers'). */
  private readonly inlineRuns: Record<string, number> = {};
  private nextId = 1;
  private closed = false;
  workerRestarts = 0;

  constructor(options: ExecutionPoolOptions = {}) {
    super();
    this.workerCount = options.workers ?? defaultWorkerCount();
    this.slotsPerWorker = options.slotsPerWorker ?? 1;
    this.soloThreads = options.soloThreads ?? 1;
    for (let i = 0; i < this.workerCount; i++) this.handles.push(this.spawn(i));
  }

  private spawn(index: number): WorkerHandle {
    const worker = new Worker(WORKER_SCRIPT);
    const handle: WorkerHandle = { index, worker, inflight: 0, pending: new Map(), ready: Promise.resolve(), retired: false, onIdle: [], decoding: new Map() };
    worker.on('message', (message: WorkerResponse) => {
      if (message.type === 'gen-tokens') {
        if (message.active > 0) handle.decoding.set(message.key, message.active);
        else handle.decoding.delete(message.key);
        this.hintSolo();
        this.emit('gen-tokens', index, message);
        return;
      }
      const pending = handle.pending.get(message.id);
      if (!pending) return;
      handle.pending.delete(message.id);
      pending.resolve(message);
      if (handle.pending.size === 0) for (const f of handle.onIdle.splice(0)) f();
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
    handle.decoding.clear();
    for (const f of handle.onIdle.splice(0)) f();
    this.hintSolo();
    if (handle.retired) return;
    // After replace(), so that what listeners send to this index goes to the replacement (once it is ready).
    if (!this.closed) this.replace(handle);
    this.emit('worker-exit', handle.index);
  }

  /** Puts a fresh worker in `handle`'s place and gives it every session back before it takes work. */
  private replace(handle: WorkerHandle): void {
    this.workerRestarts++;
    const replacement = this.spawn(handle.index);
    this.handles[handle.index] = replacement;
    if (handle.index === SOLO_WORKER) this.soloHint = false; // what a new worker starts with
    replacement.inflight = this.slotsPerWorker; // no work until sessions are back
    replacement.ready = (async () => {
      for (const [key, s] of this.sessions) {
        // A session that no longer loads (its pinned file changed since) stays off this worker, said once.
        const reply = await this.request(replacement, { type: 'load', id: 0, key, path: s.path, settings: s.settings, warmup: s.warmup }).catch((err: Error) => ({ type: 'error' as const, message: err.message }));
        if (reply.type === 'error') this.emit('session-restore-failed', { index: handle.index, key, reason: reply.message });
      }
      for (const [key, solo] of handle.index === SOLO_WORKER ? this.solo : []) {
        const s = this.sessions.get(key);
        const reply = s && solo.ready ? await this.request(replacement, { type: 'load-solo', id: 0, key, path: s.path, settings: this.soloSettings(s.settings), warmup: solo.warmup }).catch(() => undefined) : undefined;
        if (reply?.type !== 'loaded') this.solo.delete(key); // its runs use the ordinary sessions again
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

  /**
   * Loads a session into every worker, each running the warm-up runs before it answers; rejects (and loads
   * nothing) if any worker fails. A replacement worker loads and warms the session up the same way.
   */
  async load(key: string, modelPath: string, settings: SessionSettings, warmup: WarmupRun[] = []): Promise<LoadedSession> {
    const replies = await Promise.all(
      this.handles.map((h) => this.request(h, { type: 'load', id: 0, key, path: modelPath, settings, ...(warmup.length ? { warmup } : {}) })),
    );
    const failed = replies.find((r) => r.type === 'error');
    if (failed && failed.type === 'error') {
      await this.unload(key);
      throw internal(failed.message);
    }
    this.sessions.set(key, { path: modelPath, settings, warmup });
    this.solo.delete(key); // the workers dropped a solo session made for what was loaded before
    const first = replies[0];
    if (first?.type !== 'loaded') throw internal(`unexpected reply '${first?.type}' to load`);
    return { inputs: first.inputs, outputs: first.outputs };
  }

  async unload(key: string): Promise<void> {
    this.sessions.delete(key);
    this.solo.delete(key);
    this.inline.unload(key);
    await Promise.all(this.handles.map((h) => this.request(h, { type: 'unload', id: 0, key }).catch(() => undefined)));
  }

  /** A worker with a free slot, least busy first; undefined when all are busy or the pool is closing. */
  private freeWorker(): WorkerHandle | undefined {
    // Closing: no new run may start, since a worker is terminated once idle and terminating one inside a run aborts the process.
    if (this.closed) return undefined;
    // A worker decoding sequences steps them between other runs: it takes work, but one that is not decoding goes first.
    const load = (h: WorkerHandle) => h.inflight * 2 + (h.decoding.size > 0 ? 1 : 0);
    let best: WorkerHandle | undefined;
    for (const h of this.handles) {
      if (h.inflight < this.slotsPerWorker && (!best || load(h) < load(best))) best = h;
    }
    return best;
  }

  hasFreeSlot(): boolean {
    return this.freeWorker() !== undefined;
  }

  /**
   * Runs a session on a free worker. Callers (the scheduler) must check hasFreeSlot() first.
   * Inputs are copied once into buffers that are transferred, not cloned; with `transferInputs` the
   * caller hands over buffers it owns whole (a freshly merged batch) and they move without a copy.
   *
   * With `timeoutMs`, the caller gets DEADLINE_EXCEEDED (a server fault) when the run takes longer; the
   * run itself cannot be stopped, so its worker stays busy until it answers, and is replaced when it is
   * still busy long after (see STUCK_FACTOR).
   */
  async run(key: string, inputs: InferTensor[], outputs: string[], options: RunOptions = {}): Promise<RunResult> {
    if (this.closed) throw unavailable('the server is shutting down; retry on another replica');
    const alone = this.allIdle();
    const solo = options.solo === true && alone && this.solo.get(key)?.ready === true;
    const handle = solo ? this.handles[SOLO_WORKER] : this.freeWorker();
    if (!handle) throw internal('no free inference worker (scheduler bug: run() without a free slot)');
    const transfer: ArrayBuffer[] = [];
    const wire = inputs.map((t) => toWire(t, transfer, options.transferInputs === true));
    handle.inflight++;
    this.hintSolo();
    this.emit('run-start', key, handle.index);
    const reply = this.request(handle, { type: 'run', id: 0, key, inputs: wire, outputs, deadline: options.deadline, ...(solo ? { solo } : {}) }, transfer);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      handle.inflight = Math.max(0, handle.inflight - 1);
      this.hintSolo();
      this.emit('slot-free');
    };
    reply.then(release, release);
    const timeoutMs = options.timeoutMs ?? 0;
    const answer = timeoutMs > 0 ? this.withExecutionTimeout(handle, key, reply, timeoutMs) : reply;
    const message = await answer;
    if (message.type === 'result') return { outputs: message.outputs.map(fromWire), computeMs: message.computeMs, ...(solo ? { solo } : {}), ...(alone ? { alone } : {}) };
    if (message.type === 'error' && message.kind === 'expired') throw deadlineExceeded('deadline passed before execution started; nothing was run');
    if (message.type === 'error' && message.kind === 'run') throw new ModelRunError(`ONNX Runtime failed: ${message.message}`);
    if (message.type === 'error') throw internal(`ONNX Runtime failed: ${message.message}`);
    throw internal(`unexpected reply '${message.type}' to run`);
  }

  /** Why `key` cannot have a solo session; undefined when it can. */
  soloIneligibility(key: string): string | undefined {
    if (this.soloThreads <= 1) return 'solo runs are off (--solo-threads 1)';
    const settings = this.sessions.get(key)?.settings;
    if (settings?.soloIneligible) return settings.soloIneligible;
    const threads = settings?.intraOpThreads ?? 0;
    if (threads === 0 || threads >= this.soloThreads) return `its sessions already use ${threads || 'all'} intra-op threads, no fewer than a solo run's ${this.soloThreads}`;
    return undefined;
  }

  /**
   * Makes `key`'s solo session on worker SOLO_WORKER (why: scheduling/solo-runs.ts): a second session of the
   * same file with `soloThreads` intra-op threads, warmed up with `warmup` (or, when empty, the key's own
   * warm-ups). A run asking for it (RunOptions.solo) uses it only while no worker has anything to do. Its
   * threads sleep between parallel sections (intraOpSpinning false), so a run another worker starts meanwhile
   * is not slowed by them. The worker takes no runs while it loads.
   */
  async loadSolo(key: string, warmup: WarmupRun[]): Promise<void> {
    const s = this.sessions.get(key);
    if (!s) throw internal(`session '${key}' is not loaded`);
    const ineligible = this.soloIneligibility(key);
    if (ineligible) throw internal(ineligible);
    const handle = this.handles[SOLO_WORKER]!;
    const entry = { ready: false, warmup };
    this.solo.set(key, entry);
    handle.inflight += this.slotsPerWorker;
    try {
      const reply = await this.request(handle, { type: 'load-solo', id: 0, key, path: s.path, settings: this.soloSettings(s.settings), warmup: warmup.length > 0 ? warmup : s.warmup });
      if (reply.type !== 'loaded') throw internal(reply.type === 'error' ? reply.message : `unexpected reply '${reply.type}' to load-solo`);
      // Not when the key was reloaded or unloaded meanwhile: that dropped this session in the worker.
      if (this.solo.get(key) === entry) entry.ready = true;
      this.hintSolo();
    } catch (err) {
      if (this.solo.get(key) === entry) this.solo.delete(key);
      throw err;
    } finally {
      handle.inflight = Math.max(0, handle.inflight - this.slotsPerWorker);
      this.emit('slot-free');
    }
  }

  /** Drops `key`'s solo session (measured not clearly faster than its ordinary one); its runs use the ordinary sessions. */
  unloadSolo(key: string): void {
    if (!this.solo.delete(key) || this.closed) return;
    this.hintSolo();
    this.post(SOLO_WORKER, { type: 'unload-solo', id: 0, key });
  }

  /** No worker other than `index` runs or decodes anything. */
  othersIdle(index: number): boolean {
    return this.handles.every((h) => h.index === index || !busy(h));
  }

  private soloSettings(settings: SessionSettings): SessionSettings {
    return { ...settings, intraOpThreads: this.soloThreads, interOpThreads: 1, intraOpSpinning: false };
  }

  /**
   * Tells the solo worker whether its decode loop may step on its solo sessions: it decodes, and no other
   * worker has a run or sequences (so its threads take cores that would idle). Sent only when that changes;
   * the worker applies it from its next step.
   */
  private hintSolo(): void {
    const soloWorker = this.handles[SOLO_WORKER]!;
    // (Called on every run's start and end: with no solo session, or no sequences there, it stops at the first test.)
    const alone = this.solo.size > 0 && soloWorker.decoding.size > 0 && this.retired.size === 0 && !this.closed && this.othersIdle(SOLO_WORKER);
    if (alone === this.soloHint) return;
    this.soloHint = alone;
    soloWorker.worker.postMessage({ type: 'solo-hint', id: 0, alone } satisfies WorkerRequest);
  }

  /** No worker runs or decodes anything (a retired worker still in its run counts as busy). */
  private allIdle(): boolean {
    return !this.closed && this.retired.size === 0 && !this.handles.some(busy);
  }

  /**
   * Sequences join the batch worker `index` decodes for `key`; they stay on that worker (their KV caches live
   * there), which steps them on its own and reports each step as a 'gen-tokens' event. Throws UNAVAILABLE
   * while the pool closes.
   */
  joinSequences(index: number, join: GenJoin): void {
    this.post(index, { type: 'gen-join', id: 0, ...join });
  }

  /** Sequences leave `key`'s batch on worker `index` before its next step. */
  dropSequences(index: number, drop: GenDrop): void {
    this.post(index, { type: 'gen-drop', id: 0, ...drop });
  }

  /** A message with no reply; a worker being replaced gets it once its sessions are back. */
  private post(index: number, message: WorkerRequest): void {
    if (this.closed) throw unavailable('the server is shutting down; retry on another replica');
    const handle = this.handles[index];
    if (!handle) throw internal(`no inference worker ${index}`);
    void handle.ready.then(() => handle.worker.postMessage(message));
  }

  /**
   * Prepares `key` for main-thread runs (loads its session here, once, and warms it up with `warmup`;
   * blocks for both). Throws when the session cannot be created or run on this thread.
   */
  loadInline(key: string, warmup?: { inputs: InferTensor[]; outputs: string[] }): void {
    const s = this.sessions.get(key);
    if (!s) throw internal(`session '${key}' is not loaded`);
    this.inline.load(key, s.path, s.settings, warmup);
  }

  /**
   * Runs `key` synchronously on the calling (main) thread: loadInline() first. No execution timeout
   * applies (nothing can interrupt the thread); the scheduler only places versions here whose runs take
   * microseconds, and moves them back when one does not.
   */
  runInline(key: string, inputs: InferTensor[], outputs: string[]): RunResult {
    if (this.closed) throw unavailable('the server is shutting down; retry on another replica');
    this.inlineRuns[key] = (this.inlineRuns[key] ?? 0) + 1;
    return this.inline.run(key, inputs, outputs);
  }

  private withExecutionTimeout(handle: WorkerHandle, key: string, reply: Promise<WorkerResponse>, timeoutMs: number): Promise<WorkerResponse> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(markServerFault(deadlineExceeded(`execution of '${key}' exceeded its execution_timeout_ms of ${timeoutMs} ms; the result will be discarded`)));
        this.emit('execution-timeout', key, handle.index);
        // The worker cannot be interrupted; if it is still busy long after the timeout, retire it.
        const stuck = setTimeout(() => {
          if (this.handles[handle.index] === handle && handle.pending.size > 0) {
            this.emit('worker-stuck', handle.index, key);
            this.retire(handle);
          }
        }, clampDelay(timeoutMs * (STUCK_FACTOR - 1)));
        stuck.unref();
        reply.finally(() => clearTimeout(stuck)).catch(() => undefined);
      }, clampDelay(timeoutMs));
      reply.then(
        (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /** Replaces a stuck worker now and terminates it once its run returns (never while it is in one). */
  private retire(handle: WorkerHandle): void {
    handle.retired = true;
    handle.inflight = Infinity; // takes no more work
    this.retired.add(handle);
    this.replace(handle);
    void this.whenIdle(handle).then(async () => {
      await this.haltDecoding(handle);
      await handle.worker.terminate();
      this.retired.delete(handle);
    });
  }

  /**
   * Stops the worker's decode loop and resolves once it has (the worker answers between steps, never
   * inside one, and steps no more): after that, and with no run in flight, terminating it is safe.
   */
  private async haltDecoding(handle: WorkerHandle): Promise<void> {
    await this.request(handle, { type: 'gen-halt', id: 0 }).catch(() => undefined);
  }

  private whenIdle(handle: WorkerHandle): Promise<void> {
    if (handle.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => handle.onIdle.push(resolve));
  }

  /** Counters per worker (executions per session, skipped expired runs), then the main thread's inline executions last. */
  async stats(): Promise<WorkerStats[]> {
    const replies = await Promise.all(this.handles.map((h) => this.request(h, { type: 'stats', id: 0 })));
    const workers = replies.map((r) => (r.type === 'stats' ? r.stats : { runs: {}, skippedExpired: 0, warmupRuns: {} }));
    return [...workers, { runs: { ...this.inlineRuns }, skippedExpired: 0, warmupRuns: {} }];
  }

  /**
   * For tests of recovery: every worker thread exits, as a crash of that thread would, when it next
   * starts a run of `key` (so the run is in flight when the thread dies). Resolves once all are armed.
   */
  async exitOnNextRunForTest(key: string): Promise<void> {
    await Promise.all(this.handles.map((h) => this.request(h, { type: 'exit-on-run', id: 0, key })));
  }

  /** Stops every worker, each once its current run (if any) has returned. */
  async close(): Promise<void> {
    this.closed = true;
    this.inline.close();
    await Promise.all([...this.handles, ...this.retired].map(async (h) => {
      await this.haltDecoding(h);
      await this.whenIdle(h);
      await h.worker.terminate();
    }));
  }
}
