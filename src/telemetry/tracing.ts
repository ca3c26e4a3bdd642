/**
 * OpenTelemetry tracing: the SDK setup (export through the standard OTEL_* variables, off unless
 * configured) and the tracer every stage uses. Spans are created by hand at the places that matter (RPC,
 * cache, queue, batch) rather than by auto-instrumentation, so both front doors and the batch links are
 * described the same way; W3C trace context is read from gRPC metadata / HTTP headers.
 */
import { context, propagation, trace, type Context, type Span, type TextMapGetter, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { SynchronousContextManager } from './sync-context';

export const TRACER_NAME = 'tensorgate';

let tracerOf: { provider: TracerProvider; tracer: Tracer } | undefined;

/**
 * Our tracer. Kept, not asked of the API per call: without an SDK the API makes a new proxy tracer on each
 * getTracer(). The global provider object changes only when the API is reset (trace.disable(), in tests), and
 * then a new tracer is taken from the new one; a proxy tracer follows an SDK registered after it was made.
 */
export function tracer(): Tracer {
  const provider = trace.getTracerProvider();
  if (tracerOf?.provider !== provider) tracerOf = { provider, tracer: provider.getTracer(TRACER_NAME) };
  return tracerOf.tracer;
}

/**
 * `span` when it records. The request path sets attributes only then: attribute objects built for a
 * non-recording span (no SDK, or not sampled) are garbage the span ignores.
 */
export function recording(span: Span | undefined): Span | undefined {
  return span?.isRecording() ? span : undefined;
}

/**
 * True when the environment asks for trace export: OTEL_TRACES_EXPORTER names an exporter other than
 * "none", or an OTLP endpoint is set. OTEL_SDK_DISABLED=true always wins.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporter) return exporter !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export interface TelemetryHandle {
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry Node SDK when the environment asks for it (OTLP http/protobuf by default;
 * OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER... all
 * apply). Call before anything loads @grpc/grpc-js. Returns undefined when tracing is off.
 */
export function startTracing(env: NodeJS.ProcessEnv = process.env): TelemetryHandle | undefined {
  if (!tracingRequested(env)) return undefined;
  // Required lazily: the SDK and its exporters are only loaded when tracing is on.
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || 'tensorgate',
    // Metrics go to Prometheus (GET /metrics) and logs to stdout; only traces are exported.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
    // Requests carry their span by hand; see sync-context.ts for what async context propagation would cost.
    contextManager: new SynchronousContextManager(),
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

/** Reads W3C traceparent/tracestate from gRPC metadata (values are strings or Buffers). */
export const metadataGetter: TextMapGetter<{ get(key: string): (string | Buffer)[] }> = {
  get(carrier, key) {
    const values = carrier.get(key);
    if (values.length === 0) return undefined;
    return values.map((v) => (typeof v === 'string' ? v : v.toString('utf8')));
  },
  keys() {
    return ['traceparent', 'tracestate'];
  },
};

export function extractContext<C>(carrier: C, getter: TextMapGetter<C>): Context {
  return propagation.extract(context.active(), carrier, getter);
}
