/**
 * The scheduler's public shapes: what callers submit and get back, a model version's schedule, and the events
 * the scheduler emits (metrics, logs and the bench listen to them).
 */
import type { Span } from '@opentelemetry/api';
import type { CancelSignal } from '../core/cancellation';
import type { InferTensor } from '../core/tensor';
import type { RunResult } from '../runtime/execution-pool';
import type { BatchPolicy } from './model-queue';
import type { SoloState } from './solo-runs';

export interface ScheduledRun {
  /** Session key ("model@version"). */
  key: string;
  inputs: InferTensor[];
  outputs: string[];
  /** Epoch ms; undefined = no deadline. */
  deadline: number | undefined;
  signal: CancelSignal | undefined;
  /** 1 = highest; 0/undefined = the model's default. */
  priority?: number;
  /** Server-side queue timeout in ms; 0/undefined = the model's default. */
  timeoutMs?: number;
  /** Called once when the request leaves the queue for execution. */
  onDispatch?: () => void;
  /** The request's span (InferenceRequest.span): gets the queue outcome and wait, and a link from the execution's span. */
  span?: Span;
}

export interface ScheduledResult extends RunResult {
  /** Requests and rows in the execution that served this request. */
  batchRequests: number;
  batchRows: number;
  queueMs: number;
}

export interface ModelSchedule {
  policy: BatchPolicy;
  /** Concurrent executions of this model; 0 = as many as the pool has slots. */
  instanceCount: number;
  /** Execution time after which the caller gets DEADLINE_EXCEEDED; 0 = none. */
  executionTimeoutMs: number;
  /** Why this version must always run on the workers (never inline on the main thread); undefined = it may move. */
  inlineIneligible?: string;
}

/** A version moved between the workers and the main thread (placement.ts), and why. */
export interface PlacementEvent {
  key: string;
  where: 'worker' | 'main_thread';
  reason: string;
}

export interface BatchStarted {
  key: string;
  requests: number;
  rows: number;
}

export interface BatchDone extends BatchStarted {
  computeMs: number;
  ok: boolean;
  /** It ran on the version's solo session (solo-runs.ts). */
  solo?: boolean;
}

/** A version's solo session became ready, was measured (and kept or dropped), or could not be made (solo-runs.ts), and why. */
export interface SoloEvent {
  key: string;
  state: SoloState;
  reason: string;
  /** The session could not be made (rather than measured, kept or dropped). */
  failed?: boolean;
}

/**
 * queued/dropped: a request of `key` waits / left the queue without running (cancelled or expired);
 * batch: an execution starts (re-runs that isolate a failed batch included); batch-done: it returned;
 * merging-stopped: a model's merged outputs could not be split, so its requests run alone from then on;
 * placement: a version moved to or from inline execution on the main thread; solo: a version's solo session is
 * ready or could not be made.
 */
export interface SchedulerEvents {
  queued: [key: string];
  dropped: [key: string];
  batch: [batch: BatchStarted];
  'batch-done': [batch: BatchDone];
  'merging-stopped': [event: { key: string; reason: string }];
  placement: [event: PlacementEvent];
  solo: [event: SoloEvent];
}
