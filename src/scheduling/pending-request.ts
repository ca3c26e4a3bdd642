/**
 * A request as the scheduler holds it from submit() until it is settled, and the small pure helpers over
 * such requests (kept out of scheduler.ts, which is about the decisions).
 */
import type { Link, Span } from '@opentelemetry/api';
import type { CancelSignal } from '../core/cancellation';
import { cancelled, deadlineExceeded, type ServingError } from '../core/errors';
import type { LongTimer } from '../core/timers';
import { inputBytes } from './execution-lanes';
import type { KnownGood } from './failure-blame';
import type { QueuedRequest } from './model-queue';
import type { ScheduledResult } from './schedule-types';

export interface Pending extends QueuedRequest {
  key: string;
  dispatched: boolean;
  /** Answered (resolved or rejected); a request is settled exactly once. */
  settled: boolean;
  /**
   * The request's span when it records (its SERVER span; undefined without tracing or when not sampled). It
   * gets the queue outcome and wait as attributes: a span per request for the wait alone doubled the spans
   * exported per request (measured: 2.06 per request with it) for one number.
   */
  span: Span | undefined;
  resolve: (result: ScheduledResult) => void;
  reject: (err: ServingError) => void;
  onAbort?: () => void;
  timer?: LongTimer;
  /** The caller's wish to hear when it leaves the queue (ScheduledRun.onDispatch). */
  onDispatch?: () => void;
}

export type Rerun =
  | { members: Pending[] }
  | { probe: KnownGood; resolve: (value: unknown) => void; reject: (err: ServingError) => void };


export function requestLinks(members: Pending[]): Link[] {
  const links: Link[] = [];
  for (const r of members) if (r.span) links.push({ context: r.span.spanContext() });
  return links;
}

export function membersBytes(members: Pending[]): number {
  let n = 0;
  for (const r of members) n += inputBytes(r.inputs);
  return n;
}

export function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

export function whyNotRunnable(signal: CancelSignal | undefined, deadline: number | undefined): ServingError | undefined {
  if (signal?.aborted) return cancelled('request cancelled by the client before execution');
  if (deadline !== undefined && Date.now() >= deadline) return deadlineExceeded('deadline passed before execution started; nothing was run');
  return undefined;
}
