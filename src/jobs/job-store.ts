/**
 * JobStore: the async jobs of this process and their results, bounded three ways:
 *
 * - count: at most `maxJobs` jobs, unfinished and finished together; a new job evicts the oldest finished
 *   one, and when every job held is unfinished it is refused (RESOURCE_EXHAUSTED, retry later);
 * - bytes: finished jobs' results (the answer bodies, JSON text) take at most `maxResultBytes`, the oldest
 *   finished evicted first; a single result over the bound is not kept (its job fails, saying so);
 * - time: a finished job is kept `ttlMs` after it finished, then forgotten.
 *
 * Unfinished jobs hold their request in the pipeline's queue, as a synchronous call in flight does; their
 * number is bounded by `maxJobs`, and each is bounded by the server's message size limit.
 *
 * Finished jobs live in an lru-cache (bytes through `maxSize`, expiry through `ttl`), read with peek() only, so
 * its least recently used entry is always the oldest finished one. Its clock is the store's `clock`, which a
 * test may replace to pass time without sleeping. Nothing here survives the process.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import { Cancellation } from '../core/cancellation';
import { RetryLaterError, resourceExhausted, unavailable, type Code } from '../core/errors';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

/** What a job does: an inference (POST /v2/models/{m}/infer?async=true) or a generation (POST /v1/...?async=true). */
export type JobKind = 'infer' | 'generate';

export interface JobError {
  code: Code;
  message: string;
}

export interface Job {
  readonly id: string;
  readonly kind: JobKind;
  /** The label of the principal that created it (only it may see the job); undefined without an access policy. */
  readonly owner: string | undefined;
  /** As asked for until the answer names the model that served it. */
  model: string;
  version?: string;
  status: JobStatus;
  /** Epoch ms, by the store's clock. */
  readonly created: number;
  finished?: number;
  /** The answer body the synchronous call would have sent (JSON text), once succeeded. */
  result?: string;
  error?: JobError;
  /** Aborted on cancellation (DELETE, drain): the work is cancelled through it like a caller gone away. */
  readonly cancellation: Cancellation;
}

export interface JobLimits {
  ttlMs: number;
  maxJobs: number;
  maxResultBytes: number;
}

/** How long a client told the store is full should wait: jobs finish at times nothing here can foresee. */
const FULL_RETRY_MS = 1000;

export const isFinal = (status: JobStatus) => status === 'succeeded' || status === 'failed' || status === 'cancelled';

/**
 * Events: 'finished' (job) once, when a job reaches succeeded, failed or cancelled (before it can be evicted).
 */
export class JobStore extends EventEmitter {
  /** Epoch ms now; tests replace it to move time (TTL expiry) without waiting. */
  clock: () => number = Date.now;
  private readonly unfinished = new Map<string, Job>();
  private readonly finished: LRUCache<string, Job>;
  private closedWith: Error | undefined;

  constructor(readonly limits: JobLimits) {
    super();
    this.finished = new LRUCache<string, Job>({
      maxSize: limits.maxResultBytes,
      sizeCalculation: (job) => Math.max(1, resultBytes(job)),
      ttl: limits.ttlMs,
      // Every check reads the clock (no cached "now"), so a replaced clock takes effect at once.
      ttlResolution: 0,
      perf: { now: () => this.clock() },
    });
  }

  /** Jobs held (finished ones past their TTL may still count until the next look). */
  get size(): number {
    return this.unfinished.size + this.finished.size;
  }

  /**
   * A new queued job, after making room: throws UNAVAILABLE once closed, RESOURCE_EXHAUSTED (retry later) when
   * every job held is unfinished.
   */
  create(kind: JobKind, owner: string | undefined, model: string): Job {
    if (this.closedWith) throw this.closedWith;
    this.finished.purgeStale();
    while (this.size >= this.limits.maxJobs && this.finished.size > 0) this.finished.pop();
    if (this.size >= this.limits.maxJobs) {
      throw new RetryLaterError(
        'RESOURCE_EXHAUSTED',
        `this server already holds ${this.unfinished.size} unfinished async jobs, its limit (--max-jobs ${this.limits.maxJobs}); retry once some have finished, or call synchronously`,
        FULL_RETRY_MS,
      );
    }
    const job: Job = { id: randomUUID(), kind, owner, model, status: 'queued', created: this.clock(), cancellation: new Cancellation() };
    this.unfinished.set(job.id, job);
    return job;
  }

  /** The job with `id` if `owner` may see it: it exists, has not expired, and `owner` created it. */
  get(id: string, owner: string | undefined): Job | undefined {
    const job = this.unfinished.get(id) ?? this.finished.peek(id);
    return job && job.owner === owner ? job : undefined;
  }

  /** When a finished job will be forgotten (epoch ms). */
  expiresAt(job: Job): number | undefined {
    return job.finished === undefined ? undefined : job.finished + this.limits.ttlMs;
  }

  /** Drops a job that never started (its submission was refused): as if it had never existed. */
  discard(job: Job): void {
    this.unfinished.delete(job.id);
  }

  /** Forgets a finished job (DELETE of a finished job). */
  forget(job: Job): void {
    this.finished.delete(job.id);
  }

  markRunning(job: Job): void {
    if (job.status === 'queued') job.status = 'running';
  }

  /** The job's answer; a result over the byte bound by itself is not kept, and the job fails saying so. */
  succeed(job: Job, result: string, model: string, version: string): boolean {
    const bytes = Buffer.byteLength(result, 'utf8');
    if (bytes > this.limits.maxResultBytes) {
      return this.fail(
        job,
        resourceExhausted(
          `the job's result is ${bytes} bytes, more than the ${this.limits.maxResultBytes} bytes kept for all results (--max-job-result-bytes); ask for fewer outputs or rows, or call synchronously`,
        ),
      );
    }
    if (!this.unfinished.has(job.id)) return false;
    Object.assign(job, { result, model, version });
    return this.settle(job, 'succeeded');
  }

  fail(job: Job, error: JobError, status: 'failed' | 'cancelled' = 'failed'): boolean {
    if (!this.unfinished.has(job.id)) return false;
    job.error = { code: error.code, message: error.message };
    return this.settle(job, status);
  }

  /** Cancels an unfinished job: its work is cancelled (queued work dropped, a generation stopped) and it is kept as cancelled. */
  cancel(job: Job, error: JobError): boolean {
    const changed = this.fail(job, error, 'cancelled');
    if (changed) job.cancellation.abort();
    return changed;
  }

  /** No new jobs from now on (a drain); every unfinished one is cancelled with `error`. */
  close(error: JobError & Error = unavailable('the server is shutting down; async jobs do not survive it: submit the job again to another replica')): number {
    this.closedWith ??= error;
    const open = [...this.unfinished.values()];
    for (const job of open) this.cancel(job, error);
    return open.length;
  }

  /** Jobs held per status (expired ones dropped first): the tensorgate_jobs gauge. */
  counts(): Record<JobStatus, number> {
    this.finished.purgeStale();
    const counts: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const job of this.unfinished.values()) counts[job.status]++;
    for (const job of this.finished.values()) counts[job.status]++;
    return counts;
  }

  /** Result bytes held (the byte bound's measure). */
  get resultBytes(): number {
    return this.finished.calculatedSize;
  }

  private settle(job: Job, status: JobStatus): boolean {
    this.unfinished.delete(job.id);
    job.status = status;
    job.finished = this.clock();
    this.finished.set(job.id, job);
    this.emit('finished', job);
    return true;
  }
}

const resultBytes = (job: Job) => (job.result === undefined ? 0 : Buffer.byteLength(job.result, 'utf8'));
