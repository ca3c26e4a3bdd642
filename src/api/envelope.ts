/**
 * RequestEnvelope: what every call gets, whatever its protocol, written once:
 *
 * - a SERVER span continuing the caller's W3C trace context, with the protocol's attributes, and an error
 *   status only for server-side codes (SERVER_ERROR_CODES);
 * - one RequestRecord (method, model, version, our status code, duration, cache and batch figures) that
 *   reaches the access log and the metrics exactly once, with the in-flight gauge around it;
 * - registration with the drain (InflightCalls), so a call still unanswered when the grace period ends is
 *   answered UNAVAILABLE;
 * - the same record for a call refused before its handler ran (an interceptor's refusal: authentication,
 *   limits, an undecodable message), so refused calls are logged and counted too.
 *
 * A front door only translates: it describes the call in a CallStart (trace carrier already extracted, its
 * semantic-convention attributes), runs its body, and writes the Outcome in its wire format.
 *
 * @example
 *   envelope.serve(grpcCallStart(call, MODEL_SERVICE_NAME, record), async () => lookUp(name), answerUnary(callback));
 */
import { context, isSpanContextValid, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { SERVER_ERROR_CODES, ServingError, unavailable, type Code } from '../core/errors';
import { tracer } from '../telemetry/tracing';
import type { InflightCalls } from './inflight-calls';
import type { RequestObserver, RequestRecord } from './request-record';
import type { AccessGuard } from '../security/access-guard';
import type { Principal } from '../security/principal';

export interface CallStart {
  /** The record the call fills in as it learns things (model, version, result figures); method and protocol set. */
  record: RequestRecord;
  /** "tensorgate.v1.ModelService/Predict", "POST /v2/models/{name}/infer"... */
  spanName: string;
  /** The caller's trace context, extracted from the protocol's carrier (metadata, headers). */
  parent: Context;
  /** The protocol's semantic-convention attributes for the span. */
  attributes: Attributes;
  /** The protocol's status attributes for a finished call (e.g. rpc.grpc.status_code, http.response.status_code). */
  statusAttributes: (code: Code) => Attributes;
  /** Who the call is from, as authenticated at the door (src/security); undefined without an access policy. */
  principal?: Principal;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ServingError };

export interface EnvelopeParts {
  observe: RequestObserver;
  inflight: (protocol: RequestRecord['protocol'], delta: number) => void;
  calls: InflightCalls;
}

export class RequestEnvelope {
  /**
   * The access policy (--auth-config), set once it has loaded: every call served here is checked against it
   * (permission for its action on its model, rate limits) before its body runs; refusals are answered,
   * logged and counted like any outcome. Authentication itself happened at the door.
   */
  guard: AccessGuard | undefined;

  constructor(private readonly parts: EnvelopeParts) {}

  /** The models a listing shows `who` (the policy's metadata permission); undefined: all of them. */
  visibleTo(who: Principal | undefined): ((model: string) => boolean) | undefined {
    return this.guard?.visibleTo(who);
  }

  /**
   * Runs `body` inside the call's SERVER span and hands the outcome to `answer` exactly once: the body's
   * result, or earlier a drain's UNAVAILABLE (the body's later outcome is then dropped). `answer` writes the
   * wire; the record is observed right after it.
   */
  serve<T>(start: CallStart, body: (span: Span, who: Principal | undefined) => Promise<T>, answer: (outcome: Outcome<T>) => void): void {
    this.run(start, body, answer, true);
  }

  /** A call refused before its handler: answered with `error`, and logged, counted and traced like any other. */
  refuse(start: CallStart, error: ServingError, answer: (outcome: Outcome<never>) => void): void {
    this.run<never>(start, () => Promise.reject(error), answer, false);
  }

  private run<T>(start: CallStart, body: (span: Span, who: Principal | undefined) => Promise<T>, answer: (outcome: Outcome<T>) => void, checkAccess: boolean): void {
    const { record } = start;
    if (start.principal) record.principal = start.principal.label;
    const started = performance.now();
    this.parts.inflight(record.protocol, 1);
    const span = tracer().startSpan(start.spanName, { kind: SpanKind.SERVER, attributes: start.attributes }, start.parent);
    // Without a tracing SDK a new trace has no id; a caller's traceparent still gives one worth logging.
    if (isSpanContextValid(span.spanContext())) record.traceId = span.spanContext().traceId;
    let answered = false;
    const finish = (outcome: Outcome<T>) => {
      if (answered) return;
      answered = true;
      forget();
      const code: Code = outcome.ok ? 'OK' : outcome.error.code;
      record.code = code;
      if (!outcome.ok) record.details = outcome.error.message;
      if (span.isRecording()) {
        span.setAttributes(start.statusAttributes(code));
        // Per the RPC conventions, server spans are errors only for server-side codes.
        if (!outcome.ok && SERVER_ERROR_CODES.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.message });
      }
      span.end();
      this.parts.inflight(record.protocol, -1);
      answer(outcome);
      record.seconds = (performance.now() - started) / 1000;
      // The model and version are the ones asked for until a result names them; the metrics keep only
      // loaded ones as label values, so made-up names cannot blow up cardinality.
      this.parts.observe(record);
    };
    const forget = this.parts.calls.track((error) => finish({ ok: false, error }));
    let running: Promise<T>;
    try {
      if (checkAccess) this.guard?.admit(start.principal, record.method, record.model);
      // A span that neither records nor carries a trace (no SDK, no traceparent) has no context worth making active.
      running = span.isRecording() || record.traceId ? context.with(trace.setSpan(start.parent, span), () => body(span, start.principal)) : body(span, start.principal);
    } catch (err) {
      running = Promise.reject(err);
    }
    running.then(
      (value) => finish({ ok: true, value }),
      (err: unknown) => finish({ ok: false, error: ServingError.from(err ?? new Error('handler failed without a reason')) }),
    );
  }
}

/** A drain's answer, for front doors that need one outside serve(). */
export const shuttingDown = (graceMs: number) =>
  unavailable(`the server is shutting down and its drain period of ${graceMs} ms ran out; retry on another replica`);
