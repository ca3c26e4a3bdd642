/**
 * ExecutionLanes: where the scheduler's executions run.
 *
 * - The worker lane: the pool's worker slots, each version limited to its instance count.
 * - The inline lane: the main thread, one execution at a time, for versions placement.ts moved there.
 *   Inline executions start only from a setImmediate (the "inline turn"), after the event loop has read
 *   every request that arrived in the same turn, so they join one batch instead of running one by one.
 *
 * A version placed inline still sends a batch to the worker lane when the batch is bigger than what the
 * version has been measured to run within the limit (Placement.admits): one large request must not block
 * the main thread. Such a batch waits for a free worker slot.
 */
import { EventEmitter } from 'node:events';
import { ServingError } from '../core/errors';
import type { InferTensor } from '../core/tensor';
import type { ExecutionPool, RunResult } from '../runtime/execution-pool';
import type { KnownGood } from './failure-blame';
import type { Placement } from './placement';
import type { SoloRuns, SoloSessions } from './solo-runs';
import type { PlacementEvent } from './schedule-types';

/** What the lanes need to know of a model version's slot in the scheduler. */
export interface LaneSlot {
  key: string;
  placement: Placement;
  /** Whether its executions may run on a session with every core when nothing else runs (solo-runs.ts). */
  solo: SoloRuns;
  inflight: number;
  instanceCount: number;
  executionTimeoutMs: number;
  /** A small input the version is known to run (warms up a new main-thread session). */
  blame: { knownGoodInput: KnownGood | undefined };
}

/** Bytes of input an execution carries: the placement's measure of how big a run is. */
export function inputBytes(inputs: readonly InferTensor[]): number {
  let n = 0;
  for (const t of inputs) n += t.strings ? t.strings.reduce((a, s) => a + s.length, 0) : t.data.byteLength;
  return n;
}

/**
 * A merged batch of more requests than this goes to a free worker even when its version runs inline: many
 * requests queued means load, when the main thread's time is the transport's and the workers have a core
 * to spare (measured: `mlp` at c=64 inline 0.79-0.95x of the worker path, its batches 200-300 us on the
 * main thread; at c=1-4, where batches hold 1-4 requests, inline was 1.24-1.70x).
 */
export const INLINE_MAX_REQUESTS = 4;

export class ExecutionLanes extends EventEmitter<{ placement: [event: PlacementEvent] }> {
  /** Inline executions in progress (at most one: they share the main thread). */
  private inlineRunning = 0;
  private inlineTick: NodeJS.Immediate | undefined;
  /** True while the pump runs from the inline tick, the only place inline executions start. */
  private inlineTurn = false;
  /** Inline-placed batches too big to run inline, waiting for a worker slot (they get the next one). */
  private workerWaiters: { resolve: () => void; reject: (err: ServingError) => void }[] = [];
  private waitingForWorker = 0;
  private closed: ServingError | undefined;

  /**
   * `pump` is the scheduler's dispatch loop, run again from the inline turn; `othersWaiting` says whether any
   * execution waits in the scheduler (then none runs solo); `solo` makes solo sessions when they are due.
   */
  constructor(
    private readonly pool: ExecutionPool,
    private readonly pump: () => void,
    private readonly othersWaiting: () => boolean,
    private readonly solo: SoloSessions,
  ) {
    super();
    // Waiters re-check on every freed slot; until they have one, the worker lane starts nothing else.
    pool.on('slot-free', () => {
      for (const w of this.workerWaiters.splice(0)) w.resolve();
    });
  }

  /** Whether `slot` may start an execution now; an inline version with work and no turn asks for one. */
  canStart(slot: LaneSlot): boolean {
    if (this.closed) return false;
    if (slot.placement.where === 'worker') return this.waitingForWorker === 0 && slot.inflight < slot.instanceCount && this.pool.hasFreeSlot();
    if (this.inlineRunning > 0) return false;
    if (this.inlineTurn) return true;
    this.inlineTick ??= setImmediate(() => {
      this.inlineTick = undefined;
      this.inlineTurn = true;
      try {
        this.pump();
      } finally {
        this.inlineTurn = false;
      }
    });
    return false;
  }

  /**
   * Starts `job` for an execution of `requests` requests and `bytes` input bytes in `slot`, inline when
   * the slot's placement admits it and the server is lightly loaded (a batch of at most
   * INLINE_MAX_REQUESTS requests, or no worker free); `job` gets that choice, settles what it runs and
   * never rejects.
   */
  start(slot: LaneSlot, bytes: number, requests: number, job: (inline: boolean) => Promise<void>): void {
    const inline = slot.placement.admits(bytes) && (requests <= INLINE_MAX_REQUESTS || !this.pool.hasFreeSlot());
    slot.inflight++;
    if (inline) this.inlineRunning++;
    void job(inline).finally(() => {
      slot.inflight--;
      if (inline) this.inlineRunning--;
      this.pump();
    });
  }

  /**
   * One run in the chosen lane. Inline runs synchronously (no execution timeout can interrupt the
   * thread; placement keeps such runs to microseconds). Every successful run's time feeds the placement.
   */
  async run(slot: LaneSlot, inline: boolean, inputs: InferTensor[], outputs: string[], options: { deadline?: number; transferInputs?: boolean; rows: number }): Promise<RunResult> {
    const bytes = inputBytes(inputs);
    if (inline) {
      const result = this.pool.runInline(slot.key, inputs, outputs);
      this.changed(slot, slot.placement.observeInlineRun(result.computeMs, bytes));
      return result;
    }
    // Only awaited when no slot is free: the pump relies on pool.run() taking the slot synchronously.
    if (!this.pool.hasFreeSlot()) await this.workerSlot();
    const solo = slot.solo.wants(slot.placement.typicalRunUs, this.othersWaiting());
    const result = await this.pool.run(slot.key, inputs, outputs, { ...options, timeoutMs: slot.executionTimeoutMs, solo });
    const usPerRow = (result.computeMs * 1000) / Math.max(1, options.rows);
    if (result.solo) {
      // Not a measure of where the version should run: inline and ordinary worker runs use one thread.
      this.solo.observeSolo(slot.key, usPerRow);
      return result;
    }
    this.changed(slot, slot.placement.observeWorkerRun(result.computeMs, bytes));
    if (result.alone) slot.solo.observeLone(result.computeMs * 1000, options.rows);
    this.solo.observe(slot.key, slot.placement.typicalRunUs, slot.blame.knownGoodInput);
    return result;
  }

  /** Shutdown: nothing starts any more; batches waiting for a worker slot fail with `err`. */
  close(err: ServingError): void {
    this.closed = err;
    if (this.inlineTick) clearImmediate(this.inlineTick);
    for (const w of this.workerWaiters.splice(0)) w.reject(err);
  }

  /** Resolves when a worker slot is free, in the same microtask as the caller takes it. */
  private async workerSlot(): Promise<void> {
    this.waitingForWorker++;
    try {
      while (!this.pool.hasFreeSlot()) {
        if (this.closed) throw this.closed;
        await new Promise<void>((resolve, reject) => this.workerWaiters.push({ resolve, reject }));
      }
    } finally {
      this.waitingForWorker--;
    }
  }

  private changed(slot: LaneSlot, change: ReturnType<Placement['observeInlineRun']>): void {
    if (!change) return;
    if (change.to === 'main_thread') {
      try {
        this.pool.loadInline(slot.key, slot.blame.knownGoodInput);
      } catch (err) {
        slot.placement.forbid(`its session cannot be created on the main thread: ${ServingError.from(err).message}`);
        this.emit('placement', { key: slot.key, where: 'worker', reason: slot.placement.reason });
        return;
      }
    }
    this.emit('placement', { key: slot.key, where: change.to, reason: change.reason });
  }
}
