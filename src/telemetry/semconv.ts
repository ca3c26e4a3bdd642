/**
 * Attribute names used on our spans. The RPC ones are copied from the OpenTelemetry semantic conventions
 * (the semconv package marks several as incubating/deprecated, so we keep our own constants, as the
 * opentelemetry-js packages do in their own semconv.ts files); the tensorgate.* ones are ours.
 */
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';

export const ATTR_MODEL = 'tensorgate.model';
export const ATTR_MODEL_VERSION = 'tensorgate.model.version';
export const ATTR_REQUEST_ID = 'tensorgate.request_id';
export const ATTR_CACHE_HIT = 'tensorgate.cache.hit';
export const ATTR_BATCH_REQUESTS = 'tensorgate.batch.requests';
export const ATTR_BATCH_ROWS = 'tensorgate.batch.rows';
/** On the request's span: 'dispatched' (it ran) or 'dropped' (cancelled or expired while queued). */
export const ATTR_QUEUE_OUTCOME = 'tensorgate.queue.outcome';
/** On the request's span: how long it waited in the scheduler's queue, in ms. */
export const ATTR_QUEUE_WAIT_MS = 'tensorgate.queue.wait_ms';

export const SPAN_BATCH = 'tensorgate.batch';

/** Generate: on the stream's span, and its events (first token, finish). */
export const ATTR_GEN_PROMPT_TOKENS = 'tensorgate.generate.prompt_tokens';
export const ATTR_GEN_COMPLETION_TOKENS = 'tensorgate.generate.completion_tokens';
export const ATTR_GEN_FINISH_REASON = 'tensorgate.generate.finish_reason';
export const ATTR_GEN_SEED = 'tensorgate.generate.seed';
export const EVENT_GEN_FIRST_TOKEN = 'tensorgate.generate.first_token';
