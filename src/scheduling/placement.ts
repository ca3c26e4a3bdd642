/**
 * Placement: where one model version's executions run, on an inference worker thread or inline on the
 * main thread, decided from its measured run times.
 *
 * A worker hand-off costs the main thread more than a run of a small model (postMessage, waking the
 * worker, the reply; ~100-200 us at low load on a 2-core VM, against ~10 us for an `mlp` run), so a
 * version whose runs take microseconds is faster and cheaper inline. But an inline run blocks every other
 * request, health check and timer for its duration, so:
 *
 * - every version starts on the workers, and moves inline once the median of its last WINDOW worker runs
 *   is within `maxRunUs` (batch sizes vary with load, so the window sees big batches too; a worker's
 *   timing includes a little of its own overhead, which only makes the move more cautious);
 * - inline, every run is timed; a median over the last WINDOW / 2 runs above `maxRunUs`, or one run
 *   above HARD_CAP_FACTOR x `maxRunUs`, moves the version back to the workers, and it may move inline
 *   again only after a back-off that doubles with each demotion (up to MAX_BACKOFF_MS), so a model whose
 *   cost changes with its input costs the event loop little. Medians, not single runs, because the wall
 *   clock of one run includes any preemption of the thread (a noisy 2-core VM shows 0.5 ms spikes on a
 *   10 us run);
 * - inline, an execution runs there only when its input is no bigger than what the version has been
 *   measured to run within the limit (admits()); a much bigger request goes to a worker and teaches it;
 * - a version the caller marks ineligible (config `execution.placement: worker`, a non-CPU execution
 *   provider, a large model file) never moves.
 */

/** Worker runs whose median decides a move inline (the inline window is half as long). */
export const WINDOW = 32;
/** One inline run this many times over the limit moves the version back to the workers at once. */
export const HARD_CAP_FACTOR = 50;
const EWMA_WEIGHT = 1 / 16;
const FIRST_BACKOFF_MS = 10_000;
const MAX_BACKOFF_MS = 10 * 60_000;

/** The last `size` runs, as over/within a limit: "median over the limit" is "more than half over". */
class OverLimitWindow {
  private readonly over: Uint8Array;
  private next = 0;
  private filled = 0;
  private overCount = 0;

  constructor(readonly size: number) {
    this.over = new Uint8Array(size);
  }

  add(isOver: boolean): void {
    if (this.filled === this.size) this.overCount -= this.over[this.next]!;
    else this.filled++;
    this.over[this.next] = isOver ? 1 : 0;
    this.overCount += this.over[this.next]!;
    this.next = (this.next + 1) % this.size;
  }

  get full(): boolean {
    return this.filled === this.size;
  }

  get medianOver(): boolean {
    return this.overCount * 2 > this.filled;
  }

  clear(): void {
    this.over.fill(0);
    this.next = this.filled = this.overCount = 0;
  }
}

export type Where = 'worker' | 'main_thread';

export interface PlacementPolicy {
  /** Longest run (µs) that may execute on the main thread; 0 = never inline. */
  maxRunUs: number;
  /** Why this version may never run inline; undefined when it may. */
  ineligible?: string;
}

export type PlacementChange = { to: Where; reason: string };

export class Placement {
  where: Where = 'worker';
  reason: string;
  /** Moving average of the version's run time where it runs now, µs (0 before any run). */
  typicalRunUs = 0;
  private readonly workerRuns = new OverLimitWindow(WINDOW);
  private readonly inlineRuns = new OverLimitWindow(WINDOW / 2);
  private demotions = 0;
  private retryAt = 0;
  /** Largest input (bytes) this version may run inline: what it has been measured to run within the limit. */
  private allowanceBytes = 0;

  constructor(
    private policy: PlacementPolicy,
    private readonly now: () => number = Date.now,
  ) {
    this.reason = this.fixedReason() ?? `on the workers until the median of ${WINDOW} runs shows at most ${policy.maxRunUs} µs`;
  }

  private fixedReason(): string | undefined {
    if (this.policy.ineligible) return `on the workers: ${this.policy.ineligible}`;
    if (this.policy.maxRunUs <= 0) return 'on the workers: main-thread execution is off (--inline-max-run-us 0)';
    return undefined;
  }

  /** The version may never run inline (its session cannot be created on the main thread): back to the workers for good. */
  forbid(why: string): void {
    this.policy = { ...this.policy, ineligible: why };
    this.where = 'worker';
    this.reason = `on the workers: ${why}`;
  }

  /**
   * Whether an execution with `bytes` of input runs inline: the version is placed there, and a run this
   * big has been measured within the limit (or one half as big within half of it: cost grows at most
   * linearly with input). So a request far bigger than usual goes to a worker, where its time is learnt.
   */
  admits(bytes: number): boolean {
    return this.where === 'main_thread' && bytes <= this.allowanceBytes;
  }

  private average(us: number, bytes: number): void {
    this.typicalRunUs = this.typicalRunUs === 0 ? us : this.typicalRunUs + (us - this.typicalRunUs) * EWMA_WEIGHT;
    if (us <= this.policy.maxRunUs / 2) this.allowanceBytes = Math.max(this.allowanceBytes, 2 * bytes);
    else if (us <= this.policy.maxRunUs) this.allowanceBytes = Math.max(this.allowanceBytes, bytes);
  }

  /** A successful run on a worker took `ms`; returns the change when the version should now run inline. */
  observeWorkerRun(ms: number, bytes: number): PlacementChange | undefined {
    const us = ms * 1000;
    this.average(us, bytes);
    if (this.where !== 'worker' || this.fixedReason()) return undefined;
    this.workerRuns.add(us > this.policy.maxRunUs);
    if (!this.workerRuns.full || this.workerRuns.medianOver || this.now() < this.retryAt) return undefined;
    this.where = 'main_thread';
    this.inlineRuns.clear();
    this.reason = `on the main thread: the median of its last ${WINDOW} runs on a worker was at most ${this.policy.maxRunUs} µs (average ${this.typicalRunUs.toFixed(0)} µs), less than a hand-off to a worker costs`;
    return { to: this.where, reason: this.reason };
  }

  /** A run on the main thread took `ms`; returns the change when the version must go back to the workers. */
  observeInlineRun(ms: number, bytes: number): PlacementChange | undefined {
    const us = ms * 1000;
    this.average(us, bytes);
    if (this.where !== 'main_thread') return undefined;
    this.inlineRuns.add(us > this.policy.maxRunUs);
    const tooLong = us > HARD_CAP_FACTOR * this.policy.maxRunUs;
    if (!tooLong && !(this.inlineRuns.full && this.inlineRuns.medianOver)) return undefined;
    this.demotions++;
    const backoff = Math.min(FIRST_BACKOFF_MS * 2 ** (this.demotions - 1), MAX_BACKOFF_MS);
    this.retryAt = this.now() + backoff;
    this.workerRuns.clear();
    this.allowanceBytes = 0;
    this.where = 'worker';
    const why = tooLong ? `a run took ${us.toFixed(0)} µs` : `the median of its last ${WINDOW / 2} runs was over ${this.policy.maxRunUs} µs`;
    this.reason = `on the workers: ${why} on the main thread (limit ${this.policy.maxRunUs} µs); may try again in ${backoff / 1000} s`;
    return { to: this.where, reason: this.reason };
  }
}
