/**
 * RequestScheduler: the queues between the pipeline and the execution pool. Requests wait here, on the
 * main thread, until a worker slot is free; only then is a batch formed (so queued requests keep
 * merging while the workers are busy), and a request whose caller cancelled or whose deadline passed is
 * dropped at that point and never runs (a running inference cannot be cancelled in the Node binding, so
 * this is the last place where dropping is possible).
 *
 * One ModelQueue per model version; model versions take turns (round robin) for free slots, each limited
 * to its instance count of concurrent executions.
 *
 * A version whose runs take microseconds runs inline on the main thread instead (placement.ts decides,
 * from measured run times): one inline execution at a time, started from a setImmediate so that every
 * request decoded in the same event-loop turn joins its batch.
 */
import { ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import { EventEmitter } from 'node:events';
import { cancelled, deadlineExceeded, invalidArgument, ModelRunError, ServingError, unavailable } from '../core/errors';
import { clampDelay, setTimerAt } from '../core/timers';
import type { InferTensor } from '../core/tensor';
import type { ExecutionPool, RunResult } from '../runtime/execution-pool';
import { batchRows, batchSignature, mergeInputs, splitOutputs } from './batch';
import { FailureBlame, type KnownGood } from './failure-blame';
import { ModelQueue, NO_BATCHING } from './model-queue';
import { ExecutionLanes, inputBytes } from './execution-lanes';
import { membersBytes, minDefined, requestLinks, whyNotRunnable, type Pending, type Rerun } from './pending-request';
import { Placement } from './placement';
import { SoloSessions, type SoloRuns } from './solo-runs';
import type { ModelSchedule, ScheduledResult, ScheduledRun, SchedulerEvents } from './schedule-types';
import { ATTR_BATCH_REQUESTS, ATTR_BATCH_ROWS, ATTR_QUEUE_OUTCOME, ATTR_QUEUE_WAIT_MS, SPAN_BATCH } from '../telemetry/semconv';
import { recording, tracer } from '../telemetry/tracing';

export type { BatchDone, BatchStarted, ModelSchedule, PlacementEvent, ScheduledResult, ScheduledRun, SchedulerEvents, SoloEvent } from './schedule-types';

export interface PlacementView {
  where: string;
  reason: string;
  typicalRunUs: number;
  solo: { state: string; reason: string; runs: number };
}

export interface SchedulerOptions {
  /** Longest run (µs) a version may take to be placed on the main thread; 0 = always on the workers. */
  inlineMaxRunUs?: number;
}

interface ModelSlot {
  /** The version's session key (also the queue's key). */
  key: string;
  queue: ModelQueue<Pending>;
  instanceCount: number;
  executionTimeoutMs: number;
  inflight: number;
  /** Executions of already-dispatched requests (isolating a failed batch) and blame probes: run before the queue. */
  reruns: Rerun[];
  blame: FailureBlame;
  /** Worker or main thread, from the version's measured run times. */
  placement: Placement;
  solo: SoloRuns;
}

export class RequestScheduler extends EventEmitter<SchedulerEvents> {
  private readonly models = new Map<string, ModelSlot>();
  /** models' keys for pump()'s round robin, made again only when a version is added or removed (not per call). */
  private keys: readonly string[] | undefined;
  private turn = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly inlineMaxRunUs: number;
  private readonly lanes: ExecutionLanes;
  /** Every version's solo state; the sequence scheduler shares it (solo-runs.ts). */
  readonly solo: SoloSessions;

  constructor(
    private readonly pool: ExecutionPool,
    options: SchedulerOptions = {},
  ) {
    super();
    this.inlineMaxRunUs = options.inlineMaxRunUs ?? 0;
    // Before the pump's own listener: a batch waiting for a worker slot gets the next one.
    this.solo = new SoloSessions(pool);
    this.solo.on('solo', (e) => this.emit('solo', e));
    this.lanes = new ExecutionLanes(pool, () => this.pump(), () => this.othersWaiting(), this.solo);
    this.lanes.on('placement', (e) => this.emit('placement', e));
    pool.on('slot-free', () => this.pump());
  }

  /** Where `key` runs now and why, and whether it runs solo when alone (GetModel and metrics report it). */
  placementOf(key: string): PlacementView | undefined {
    const slot = this.models.get(key);
    if (!slot) return undefined;
    const { placement: p, solo } = slot;
    return { where: p.where, reason: p.reason, typicalRunUs: p.typicalRunUs, solo: { state: solo.state, reason: solo.reason, runs: solo.runs } };
  }

  /** Sets (or replaces) a model version's batching and queue policy. */
  configure(key: string, schedule: ModelSchedule): void {
    const existing = this.models.get(key);
    const queue = new ModelQueue<Pending>(key, schedule.policy);
    const instanceCount = schedule.instanceCount || Infinity;
    // Requests already waiting move to the new queue (a reload keeps them), within its new limits.
    for (const r of existing?.queue.drain() ?? []) {
      r.priority = Math.min(r.priority, schedule.policy.priorityLevels);
      try {
        queue.push(r);
      } catch (err) {
        this.settle(r, ServingError.from(err));
      }
    }
    if (existing) {
      // Changed in place: running executions hold this slot and release their instance on it.
      Object.assign(existing, { queue, instanceCount, executionTimeoutMs: schedule.executionTimeoutMs });
      return;
    }
    if (!this.models.has(key)) this.keys = undefined;
    this.models.set(key, {
      key,
      queue,
      instanceCount,
      executionTimeoutMs: schedule.executionTimeoutMs,
      inflight: 0,
      reruns: [],
      blame: new FailureBlame(key, (probe) => this.probe(key, probe)),
      placement: new Placement({ maxRunUs: this.inlineMaxRunUs, ineligible: schedule.inlineIneligible }),
      solo: this.solo.of(key),
    });
  }

  /** Forgets a model version; its queued requests fail with UNAVAILABLE. */
  remove(key: string): void {
    const slot = this.models.get(key);
    if (!slot) return;
    this.models.delete(key);
    this.keys = undefined;
    this.solo.forget(key);
    for (const r of slot.queue.drain()) this.settle(r, unavailable(`model version '${key}' was unloaded while the request was queued`));
    this.failReruns(slot, unavailable(`model version '${key}' was unloaded while the request was being retried`));
  }

  /** Shutdown: every waiting request (and every re-run not yet started) fails with `err`; nothing new is dispatched after. */
  close(err: ServingError): void {
    for (const key of [...this.models.keys()]) {
      const slot = this.models.get(key)!;
      this.models.delete(key);
      this.keys = undefined;
      for (const r of slot.queue.drain()) this.settle(r, err);
      this.failReruns(slot, err);
    }
    if (this.timer) clearTimeout(this.timer);
    this.lanes.close(err);
  }

  private failReruns(slot: ModelSlot, err: ServingError): void {
    for (const rerun of slot.reruns.splice(0)) {
      if ('members' in rerun) for (const r of rerun.members) this.settle(r, err);
      else rerun.reject(err);
    }
  }

  /** Any request queued, or any re-run not yet started, for any version. */
  private othersWaiting(): boolean {
    for (const m of this.models.values()) if (m.queue.size > 0 || m.reruns.length > 0) return true;
    return false;
  }

  get queueDepth(): number {
    let n = 0;
    for (const m of this.models.values()) n += m.queue.size;
    return n;
  }

  queueDepthOf(key: string): number {
    return this.models.get(key)?.queue.size ?? 0;
  }

  submit(run: ScheduledRun): Promise<ScheduledResult> {
    if (!this.models.has(run.key)) this.configure(run.key, { policy: NO_BATCHING, instanceCount: 0, executionTimeoutMs: 0, inlineIneligible: 'not configured' });
    const slot = this.models.get(run.key)!;
    const policy = slot.queue.policy;
    const priority = run.priority || policy.defaultPriority;
    if (!Number.isInteger(priority) || priority < 1 || priority > policy.priorityLevels) {
      return Promise.reject(invalidArgument(`priority ${run.priority} is out of range; '${run.key}' has priority levels 1 (highest) to ${policy.priorityLevels}`));
    }
    const batched = policy.maxBatchSize > 0 || policy.maxRowsPerRequest > 0;
    // Rows are counted for every model (for batch metrics); they must agree only where batches merge.
    const rows = batched ? batchRows(run.inputs) : (batchRows(run.inputs) ?? 1);
    if (rows === undefined) {
      return Promise.reject(invalidArgument(`inputs disagree on dim 0 (the batch dimension): ${run.inputs.map((t) => `${t.name} [${t.shape.join(', ')}]`).join(', ')}`));
    }
    if (policy.maxRowsPerRequest > 0 && rows > policy.maxRowsPerRequest) {
      return Promise.reject(invalidArgument(`request has ${rows} rows (dim 0) but '${run.key}' accepts at most max_batch_size ${policy.maxRowsPerRequest} per request; split it`));
    }
    const timeoutMs = run.timeoutMs || policy.defaultTimeoutMs;
    const deadline = minDefined(run.deadline, timeoutMs > 0 ? Date.now() + timeoutMs : undefined);
    const refusal = whyNotRunnable(run.signal, deadline);
    if (refusal) return Promise.reject(refusal);

    return new Promise<ScheduledResult>((resolve, reject) => {
      const pending: Pending = {
        span: recording(run.span),
        key: run.key,
        inputs: run.inputs,
        outputs: run.outputs,
        rows,
        signature: policy.maxBatchSize > 0 ? batchSignature(run.inputs, run.outputs) : '',
        priority,
        enqueuedAt: performance.now(),
        deadline,
        signal: run.signal,
        onDispatch: run.onDispatch,
        dispatched: false,
        settled: false,
        resolve,
        reject,
      };
      slot.queue.push(pending); // throws RESOURCE_EXHAUSTED when full: caught by the Promise constructor
      this.pump();
      if (pending.dispatched) return;
      this.watch(slot, pending);
      this.emit('queued', run.key);
    });
  }

  /**
   * While queued: answer a cancelled caller or an expired request at once rather than at its turn.
   *
   * The abort listener is a bound method, not an arrow function closing over the request: stored on the
   * request, such a closure made V8 keep every queued request's whole graph (the gRPC call included) through
   * a second scavenge, promoting ~1.3 MB per scavenge into the old generation at mlp c=64 (`--trace-gc-nvp`);
   * a bound function does not (~0.1 MB, like a server that queues nothing). Measured before the process's
   * first mark-compacts; after them Node's HTTP/2 layer promotes about as much on its own
   * (bench/results/gc-after-mark-compact-2026-12-03.md).
   */
  private watch(slot: ModelSlot, r: Pending): void {
    if (r.signal) {
      r.onAbort = this.cancelQueued.bind(this, slot, r);
      r.signal.addEventListener('abort', r.onAbort, { once: true });
    }
    if (r.deadline !== undefined) {
      r.timer = setTimerAt(r.deadline, () => {
        if (slot.queue.remove(r)) this.drop(r, deadlineExceeded('deadline or queue timeout passed while queued; the request was not run'));
      });
    }
  }

  private cancelQueued(slot: ModelSlot, r: Pending): void {
    if (slot.queue.remove(r)) this.drop(r, cancelled('request cancelled by the client while queued; it was not run'));
  }

  private settle(r: Pending, outcome: ServingError | ScheduledResult): void {
    if (r.settled) return;
    r.settled = true;
    if (r.onAbort) r.signal?.removeEventListener('abort', r.onAbort);
    r.timer?.clear();
    if (!r.dispatched) r.span?.setAttributes({ [ATTR_QUEUE_OUTCOME]: 'dropped', [ATTR_QUEUE_WAIT_MS]: performance.now() - r.enqueuedAt });
    if (outcome instanceof ServingError) r.reject(outcome);
    else r.resolve(outcome);
  }

  private drop(r: Pending, err: ServingError): void {
    this.settle(r, err);
    this.emit('dropped', r.key);
  }

  private pump(): void {
    let wakeAt = Infinity;
    const keys = (this.keys ??= [...this.models.keys()]);
    let idle = 0;
    // Round robin over model versions: each turn dispatches at most one batch of one model.
    while (keys.length > 0 && idle < keys.length) {
      const k = keys[this.turn++ % keys.length]!;
      const slot = this.models.get(k);
      // (A version removed during this pass, by something a dispatch ran, has no slot left.)
      if (!slot || (slot.queue.size === 0 && slot.reruns.length === 0) || !this.lanes.canStart(slot)) {
        idle++;
        continue;
      }
      const rerun = slot.reruns.shift();
      if (rerun) {
        idle = 0;
        if ('members' in rerun) this.lanes.start(slot, membersBytes(rerun.members), rerun.members.length, (inline) => this.execute(slot, rerun.members, inline));
        else this.lanes.start(slot, inputBytes(rerun.probe.inputs), 1, (inline) => this.runProbe(slot, rerun, inline));
        continue;
      }
      for (const r of slot.queue.removeDead(Date.now())) {
        this.drop(r, r.signal?.aborted ? cancelled('request cancelled by the client before execution; it was not run') : deadlineExceeded('deadline passed before execution started; nothing was run'));
      }
      const decision = slot.queue.next(performance.now());
      if (!decision) {
        idle++;
        continue;
      }
      if ('wakeAt' in decision) {
        wakeAt = Math.min(wakeAt, decision.wakeAt);
        idle++;
        continue;
      }
      idle = 0;
      this.dispatch(slot, decision.batch);
    }
    this.scheduleWake(wakeAt);
  }

  /**
   * Wakes the pump when the oldest waiting request reaches its delay. Node timers have 1 ms granularity,
   * so a shorter remaining delay waits 1 ms: measured, re-checking on every loop turn (setImmediate)
   * instead cost ~1 ms of main-thread CPU per request at low load.
   */
  private scheduleWake(at: number): void {
    if (at === Infinity || at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, clampDelay(Math.max(1, at - performance.now())));
  }

  /** Hands a batch from the queue to the pool; from here on, `execute` owns settling every member. */
  private dispatch(slot: ModelSlot, batch: Pending[]): void {
    const now = performance.now();
    for (const r of batch) {
      r.dispatched = true;
      if (r.onAbort) r.signal?.removeEventListener('abort', r.onAbort);
      r.timer?.clear();
      r.span?.setAttributes({ [ATTR_QUEUE_OUTCOME]: 'dispatched', [ATTR_QUEUE_WAIT_MS]: now - r.enqueuedAt });
      r.onDispatch?.();
    }
    this.lanes.start(slot, membersBytes(batch), batch.length, (inline) => this.execute(slot, batch, inline));
  }

  /** Settles every member exactly once, even if something unexpected throws after dispatch. */
  private async execute(slot: ModelSlot, members: Pending[], inline: boolean): Promise<void> {
    try {
      await this.executeOnce(slot, members, inline);
    } catch (err) {
      for (const r of members) this.settle(r, ServingError.from(err));
    }
  }

  /**
   * One execution of `members` (merged when more than one). Every member is settled exactly once, whatever
   * fails: a merged batch that fails inside ONNX Runtime is split in halves and re-run until the inputs
   * that cause the failure are isolated, so no request fails because of another's input; a model whose
   * outputs turn out not to be batched along dim 0 re-runs its members one by one and stops merging.
   */
  private async executeOnce(slot: ModelSlot, members: Pending[], inline: boolean): Promise<void> {
    const live = members.filter((r) => !this.settleIfDead(r));
    if (live.length === 0) return;
    const key = live[0]!.key;
    const started = performance.now();
    const rows = live.reduce((n, r) => n + r.rows, 0);
    // One execution serves several traces: it is a child of the first traced request's span and links to
    // every traced request's span (the OpenTelemetry pattern for batch processing). With no member's span
    // recording (no SDK, or none sampled) there is no trace to put it in, and no span is made.
    const traced = live.find((r) => r.span)?.span;
    const batchSpan = traced
      ? tracer().startSpan(
          SPAN_BATCH,
          {
            attributes: { 'tensorgate.session': key, [ATTR_BATCH_REQUESTS]: live.length, [ATTR_BATCH_ROWS]: rows },
            links: requestLinks(live),
          },
          trace.setSpan(ROOT_CONTEXT, traced),
        )
      : undefined;
    const single = live.length === 1;
    this.emit('batch', { key, requests: live.length, rows });
    let result: RunResult;
    try {
      const inputs = single ? live[0]!.inputs : mergeInputs(live.map((r) => r.inputs));
      const deadline = single ? live[0]!.deadline : undefined;
      result = await this.lanes.run(slot, inline, inputs, live[0]!.outputs, { deadline, transferInputs: !single, rows });
    } catch (err) {
      const e = ServingError.from(err);
      this.emit('batch-done', { key, requests: live.length, rows, computeMs: performance.now() - started, ok: false });
      batchSpan?.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      batchSpan?.end();
      this.failed(slot, live, e);
      return;
    }
    this.emit('batch-done', { key, requests: live.length, rows, computeMs: result.computeMs, ok: true, ...(result.solo ? { solo: true } : {}) });
    batchSpan?.setAttribute('tensorgate.compute_ms', result.computeMs);
    batchSpan?.end();
    slot.blame.succeeded(live[0]!.inputs, live[0]!.outputs);
    let parts: InferTensor[][];
    try {
      parts = single ? [result.outputs] : splitOutputs(result.outputs, live.map((r) => r.rows));
    } catch (err) {
      this.stopMerging(key, ServingError.from(err).message);
      for (const r of live) this.rerun(slot, [r]);
      return;
    }
    live.forEach((r, i) =>
      this.settle(r, { outputs: parts[i]!, computeMs: result.computeMs, batchRequests: live.length, batchRows: rows, queueMs: started - r.enqueuedAt }),
    );
  }

  /** A failed execution: isolate input-caused failures in merged batches, judge single ones, else fail all. */
  private failed(slot: ModelSlot, members: Pending[], err: ServingError): void {
    if (!(err instanceof ModelRunError)) {
      for (const r of members) this.settle(r, err);
      return;
    }
    if (members.length > 1) {
      const half = Math.ceil(members.length / 2);
      this.rerun(slot, members.slice(0, half));
      this.rerun(slot, members.slice(half));
      return;
    }
    // Not awaited: the judgement may need a probe run, which needs the execution slot this job holds.
    const r = members[0]!;
    void slot.blame.judge(err).then((verdict) => this.settle(r, verdict));
  }

  /** Queues an execution of already-dispatched requests ahead of the model's queue (pump() starts it). */
  private rerun(slot: ModelSlot, members: Pending[]): void {
    slot.reruns.push({ members });
  }

  /** Runs the version's known-good input once (FailureBlame's probe), ahead of the queue. */
  private probe(key: string, probe: KnownGood): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const slot = this.models.get(key);
      if (!slot) return reject(unavailable(`model version '${key}' was unloaded`));
      slot.reruns.push({ probe, resolve, reject });
      this.pump();
    });
  }

  private async runProbe(slot: ModelSlot, rerun: Extract<Rerun, { probe: KnownGood }>, inline: boolean): Promise<void> {
    try {
      rerun.resolve(await this.lanes.run(slot, inline, rerun.probe.inputs, rerun.probe.outputs, { rows: 1 }));
    } catch (err) {
      rerun.reject(ServingError.from(err));
    }
  }

  /** Settles a dispatched request that must not run again (its caller left or its deadline passed). */
  private settleIfDead(r: Pending): boolean {
    if (r.settled) return true;
    const refusal = whyNotRunnable(r.signal, r.deadline);
    if (refusal) this.settle(r, refusal);
    return refusal !== undefined;
  }

  /** A model whose merged outputs cannot be split back: from now on each request runs alone. */
  private stopMerging(key: string, reason: string): void {
    const slot = this.models.get(key);
    if (!slot || slot.queue.policy.maxBatchSize === 0) return;
    this.configure(key, { policy: { ...slot.queue.policy, maxBatchSize: 0 }, instanceCount: slot.instanceCount, executionTimeoutMs: slot.executionTimeoutMs });
    // (configure() kept the slot, and with it its placement.)
    this.emit('merging-stopped', { key, reason });
  }
}
