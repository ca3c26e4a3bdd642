/**
 * ModelQueue: the waiting requests of one model version and the decision of what to run next, as
 * Triton's dynamic batcher defines it: send at once when the max batch size or a preferred size can be
 * filled, otherwise when the oldest request has waited `maxQueueDelayMs` (a cap on any request's wait).
 * Priority levels (1 = highest) are served in order, FIFO within a level. Pure logic over an injected
 * `now`, so the policy is testable without timers.
 */
import { resourceExhausted } from '../core/errors';
import type { CancelSignal } from '../core/cancellation';
import type { InferTensor } from '../core/tensor';

export interface BatchPolicy {
  /** Most rows in one merged execution; 0 = no merging (one request per execution). */
  maxBatchSize: number;
  /** Most rows one request may carry; 0 = unlimited. */
  maxRowsPerRequest: number;
  /** Batch sizes sent as soon as they can be formed, ascending. */
  preferredBatchSizes: number[];
  maxQueueDelayMs: number;
  /** Most waiting requests; 0 = unbounded. */
  maxQueueSize: number;
  priorityLevels: number;
  defaultPriority: number;
  /** Server-side queue timeout for requests that set none; 0 = none (the gRPC deadline still applies). */
  defaultTimeoutMs: number;
}

export const NO_BATCHING: BatchPolicy = {
  maxBatchSize: 0,
  maxRowsPerRequest: 0,
  preferredBatchSizes: [],
  maxQueueDelayMs: 0,
  maxQueueSize: 0,
  priorityLevels: 1,
  defaultPriority: 1,
  defaultTimeoutMs: 0,
};

export interface QueuedRequest {
  inputs: InferTensor[];
  outputs: string[];
  rows: number;
  signature: string;
  priority: number;
  /** performance.now() at arrival. */
  enqueuedAt: number;
  /** Epoch ms after which the request must not run. */
  deadline: number | undefined;
  signal: CancelSignal | undefined;
}

export type QueueDecision<R> = { batch: R[] } | { wakeAt: number } | undefined;

export class ModelQueue<R extends QueuedRequest = QueuedRequest> {
  /** One FIFO per priority level, index 0 = level 1 (highest). */
  private readonly levels: R[][];
  private count = 0;

  constructor(
    readonly key: string,
    readonly policy: BatchPolicy,
  ) {
    this.levels = Array.from({ length: policy.priorityLevels }, () => []);
  }

  get size(): number {
    return this.count;
  }

  /** Adds a request or throws RESOURCE_EXHAUSTED when the queue is full (nothing already queued is affected). */
  push(request: R): void {
    if (this.policy.maxQueueSize > 0 && this.count >= this.policy.maxQueueSize) {
      throw resourceExhausted(
        `the queue of '${this.key}' is full (${this.count} requests waiting, queue.max_size ${this.policy.maxQueueSize}); retry later or raise queue.max_size`,
      );
    }
    this.levels[request.priority - 1]!.push(request);
    this.count++;
  }

  remove(request: R): boolean {
    const level = this.levels[request.priority - 1]!;
    const i = level.indexOf(request);
    if (i < 0) return false;
    level.splice(i, 1);
    this.count--;
    return true;
  }

  /** Removes and returns every request. */
  drain(): R[] {
    const all = this.levels.flat();
    for (const level of this.levels) level.length = 0;
    this.count = 0;
    return all;
  }

  /** Removes requests that must not run (cancelled, past their deadline) and returns them. */
  removeDead(nowEpochMs: number): R[] {
    const dead: R[] = [];
    for (const level of this.levels) {
      for (let i = level.length - 1; i >= 0; i--) {
        const r = level[i]!;
        if (r.signal?.aborted || (r.deadline !== undefined && nowEpochMs >= r.deadline)) {
          dead.push(r);
          level.splice(i, 1);
          this.count--;
        }
      }
    }
    return dead.reverse();
  }

  /**
   * What to run now: a batch (removed from the queue), or when to look again, or nothing queued.
   * `now` is performance.now(); call removeDead() first. One pass, no intermediate arrays: this runs on
   * every dispatch, on the main thread.
   */
  next(now: number): QueueDecision<R> {
    if (this.count === 0) return undefined;
    let head: R | undefined;
    for (const level of this.levels) {
      if (level.length > 0) {
        head = level[0];
        break;
      }
    }
    if (this.policy.maxBatchSize === 0) return { batch: this.takeAll([head!]) };

    // The head's compatible requests, in priority order, while they fit in one batch.
    const group: R[] = [];
    const prefixRows: number[] = [];
    let rows = 0;
    let overflow = false;
    let oldest = Infinity;
    for (const level of this.levels) {
      for (const r of level) {
        if (r.enqueuedAt < oldest) oldest = r.enqueuedAt;
        if (overflow || r.signature !== head!.signature) continue;
        if (rows + r.rows > this.policy.maxBatchSize) {
          overflow = true; // more compatible work than one batch holds: the batch is full
          continue;
        }
        group.push(r);
        rows += r.rows;
        prefixRows.push(rows);
      }
    }
    if (overflow || rows >= this.policy.maxBatchSize) return { batch: this.takeAll(group) };

    // The largest preferred size some prefix fills exactly is sent at once.
    const preferred = this.policy.preferredBatchSizes;
    if (preferred.length > 0) {
      for (let i = prefixRows.length - 1; i >= 0; i--) {
        if (preferred.includes(prefixRows[i]!)) return { batch: this.takeAll(group.slice(0, i + 1)) };
      }
    }

    const wakeAt = oldest + this.policy.maxQueueDelayMs;
    if (now >= wakeAt) return { batch: this.takeAll(group) };
    return { wakeAt };
  }

  /** Removes the given requests (in one pass per level) and returns them. */
  private takeAll(batch: R[]): R[] {
    if (batch.length === 1) {
      this.remove(batch[0]!);
      return batch;
    }
    const taken = new Set(batch);
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i]!;
      if (level.length > 0) this.levels[i] = level.filter((r) => !taken.has(r));
    }
    this.count -= batch.length;
    return batch;
  }

}
