/**
 * JobRunner: runs async jobs (POST .../infer?async=true, POST /v1/completions?async=true...) through the same
 * pipelines as the synchronous calls, and keeps their outcomes in a JobStore.
 *
 * A submission is one call through the request envelope (authorised, rate limited, logged and counted by
 * the front door that received it); inside it, submit() creates the job and starts its work at once, with:
 * - the same request options as the synchronous call (priority, queue timeout, cache choice...), the
 *   creator's principal and limits, the job's Cancellation as the request's signal (DELETE and the drain
 *   abort it, as a client going away aborts a synchronous call) and a deadline of the job TTL from now;
 * - its own INTERNAL span, a child of the submission's SERVER span (same trace), active while the work
 *   starts, so the pipeline's attributes (model, cache, queue wait) land on it when tracing is on;
 * - its own RequestRecord (method "job <submission route>"), reported through the server's observer when
 *   the job finishes: the access log line and the metrics of the work itself, figures included.
 *
 * A request the synchronous call would refuse before queueing anything (unknown model, inputs that do not
 * fit, bad generation parameters) is refused by the submission, and no job exists: the pipelines resolve
 * and validate before their first await (InferencePipeline.prepare, the start of GenerationPipeline.generate),
 * so the promise `start` returns is already rejected when it returns. submit() checks exactly that, with a
 * race against an already resolved promise (reactions run in the order they were registered): a failure
 * that comes later (queue full, deadline, the model failing) is the job's outcome instead.
 */
import { isSpanContextValid, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { CancelSignal } from '../core/cancellation';
import { cancelled, SERVER_ERROR_CODES, ServingError, unimplemented } from '../core/errors';
import type { RequestObserver, RequestRecord } from '../api/request-record';
import type { Principal } from '../security/principal';
import { tracer } from '../telemetry/tracing';
import { isFinal, JobStore, type Job, type JobKind, type JobLimits } from './job-store';

export const ATTR_JOB_ID = 'tensorgate.job.id';
export const ATTR_JOB_STATUS = 'tensorgate.job.status';

/** What a job's work gets when it starts. */
export interface JobContext {
  readonly id: string;
  /** The request's signal: aborted when the job is cancelled. */
  readonly signal: CancelSignal;
  /** Epoch ms by which the work must be done (the job TTL after submission). */
  readonly deadline: number;
  /** The job's own record, for the pipeline's figures (tokens, finish reason...). */
  readonly record: RequestRecord;
  /** The work has left the queue: an inference dispatched (InferenceRequest.onDispatch), a generation's first token. */
  running(): void;
  /** The job's span: the work's requests carry it (InferenceRequest.span). */
  readonly span: Span;
}

export interface JobWork<R> {
  kind: JobKind;
  /** The model the request names. */
  model: string;
  /** Who submitted it (the envelope's principal); undefined without an access policy. */
  who: Principal | undefined;
  /** The submission's route, as its record names it: "POST /v2/models/{name}/infer". */
  route: string;
  requestId: string;
  /** The submitting call's span: the job's span is its child. */
  parent?: Span;
  /**
   * Starts the work in the pipeline; called once, synchronously. Return the pipeline's
   * own promise (not one derived from it with then()), so that a refusal at validation is seen as one.
   */
  start(job: JobContext): Promise<R>;
  /** The body the synchronous call would have answered for `result` (JSON text); fills `record` with its figures. */
  answer(result: R, record: RequestRecord): { body: string; model: string; version: string };
}

export interface JobRunnerOptions {
  limits: JobLimits;
  /** Where finished jobs' records go: the server's access log and metrics. */
  observe: RequestObserver;
  /** Why async jobs are off, if they are (refused with UNIMPLEMENTED). */
  disabled?: string;
}

interface Execution {
  record: RequestRecord;
  span: Span;
  started: number;
}

export class JobRunner {
  readonly store: JobStore;
  private readonly executions = new Map<string, Execution>();

  constructor(private readonly options: JobRunnerOptions) {
    this.store = new JobStore(options.limits);
    this.store.on('finished', (job: Job) => this.finished(job));
  }

  get ttlSecs(): number {
    return this.options.limits.ttlMs / 1000;
  }

  /**
   * Creates the job and starts its work; resolves with the job (queued, or further along), or rejects with the
   * submission's refusal: the store full (RESOURCE_EXHAUSTED), closed (UNAVAILABLE), jobs off (UNIMPLEMENTED),
   * or the request refused by the pipeline before anything was queued.
   */
  async submit<R>(work: JobWork<R>): Promise<Job> {
    if (this.options.disabled) throw unimplemented(this.options.disabled);
    const job = this.store.create(work.kind, work.who?.label, work.model);
    const parent = work.parent ? trace.setSpan(ROOT_CONTEXT, work.parent) : ROOT_CONTEXT;
    const span = tracer().startSpan(`job ${work.route}`, { kind: SpanKind.INTERNAL, attributes: { [ATTR_JOB_ID]: job.id } }, parent);
    const record: RequestRecord = { protocol: 'http', method: `job ${work.route}`, model: work.model, version: '', code: 'OK', seconds: 0, requestId: work.requestId };
    // An inference job counts in the v2 statistics as the inference it is (its submission does not).
    if (work.kind === 'infer') record.inference = true;
    if (work.who) record.principal = work.who.label;
    if (isSpanContextValid(span.spanContext())) record.traceId = span.spanContext().traceId;
    const running = () => this.store.markRunning(job);
    this.executions.set(job.id, { record, span, started: performance.now() });
    const ctx: JobContext = { id: job.id, signal: job.cancellation, deadline: Date.now() + this.options.limits.ttlMs, record, running, span };
    let outcome: Promise<R>;
    try {
      outcome = work.start(ctx);
    } catch (err) {
      outcome = Promise.reject(err);
    }
    const refusal = await refusedAtOnce(outcome);
    if (refusal) {
      this.executions.delete(job.id);
      this.store.discard(job);
      span.end();
      throw refusal;
    }
    outcome.then(
      (result) => {
        if (isFinal(job.status)) return; // cancelled meanwhile: the result is dropped
        try {
          const answer = work.answer(result, record);
          this.store.succeed(job, answer.body, answer.model, answer.version);
        } catch (err) {
          this.store.fail(job, ServingError.from(err));
        }
      },
      (err: unknown) => this.store.fail(job, ServingError.from(err ?? new Error('the job failed without a reason'))),
    );
    return job;
  }

  /** DELETE of an unfinished job: cancelled, its work dropped from the queue or stopped at the next step. */
  cancel(job: Job): boolean {
    return this.store.cancel(job, cancelled(`job ${job.id} was cancelled by DELETE /v2/jobs/${job.id}`));
  }

  /** The drain: no new jobs; unfinished ones are cancelled (UNAVAILABLE). Returns how many were. */
  close(): number {
    return this.store.close();
  }

  /** A job reached its final status: its record is reported and its span ends. */
  private finished(job: Job): void {
    const execution = this.executions.get(job.id);
    if (!execution) return;
    this.executions.delete(job.id);
    const { record, span } = execution;
    record.seconds = (performance.now() - execution.started) / 1000;
    record.model = job.model;
    if (job.version) record.version = job.version;
    record.code = job.error?.code ?? 'OK';
    if (job.error) record.details = job.error.message;
    span.setAttribute(ATTR_JOB_STATUS, job.status);
    if (job.error && SERVER_ERROR_CODES.has(job.error.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: job.error.message });
    span.end();
    this.options.observe(record);
  }
}

const PENDING = Promise.resolve(undefined);

/**
 * The error `work` was already rejected with when it was handed over, else undefined. Promise.race registers
 * its reactions in order: an already rejected `work` rejects the race before the resolved PENDING can win it.
 */
async function refusedAtOnce(work: Promise<unknown>): Promise<ServingError | undefined> {
  try {
    await Promise.race([work, PENDING]);
    return undefined;
  } catch (err) {
    return ServingError.from(err ?? new Error('the request was refused without a reason'));
  }
}
