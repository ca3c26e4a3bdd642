/**
 * InferencePipeline: what every front door calls, once, so every protocol gets the same behaviour:
 *
 *   resolve model+version -> text pipeline encode -> validate
 *     -> result cache (deterministic models; concurrent identical requests coalesce into one run)
 *       -> circuit breaker (per version; only server faults count)
 *         -> scheduler (queue, dynamic batching, deadlines) -> execution pool (workers)
 */
import { recording } from '../telemetry/tracing';
import { hashRequest } from '../cache/input-hash';
import { loadedVersion } from '../core/model-key';
import { ATTR_CACHE_HIT, ATTR_MODEL, ATTR_MODEL_VERSION } from '../telemetry/semconv';
import type { ResultCache } from '../cache/result-cache';
import type { ModelEntry, ModelRepository, ModelVersionEntry } from '../repository/model-repository';
import type { BreakerRegistry } from '../resilience/circuit-breaker';
import type { RequestScheduler } from '../scheduling/scheduler';
import { invalidArgument, resourceExhausted, SERVER_ERROR_CODES, ServingError } from '../core/errors';
import type { CanaryRouter } from './canary-router';
import type { CancelSignal } from '../core/cancellation';
import type { InferenceRequest, InferenceResult } from '../core/request';
import type { InferTensor, TensorSpec } from '../core/tensor';
import { formatSpecs, validateInputs, validateOutputNames, type RequestLimits } from '../core/validate';

export interface PipelineParts {
  repository: ModelRepository;
  scheduler: RequestScheduler;
  breakers: BreakerRegistry;
  /** Undefined when the server runs without a result cache. */
  cache: ResultCache | undefined;
  limits: RequestLimits;
  /** Splits requests that name no version between versions by weight (config.yaml `canary`). */
  canary?: CanaryRouter;
  /** Told of every successful prediction, with the version that served it (live accuracy, src/feedback); must not throw. */
  observer?: PredictionObserver;
}

export type PredictionObserver = (request: InferenceRequest, result: InferenceResult, served: { entry: ModelEntry; version: ModelVersionEntry }) => void;

interface Prepared {
  entry: ModelEntry;
  version: ModelVersionEntry;
  inputs: InferTensor[];
  outputs: string[];
  text: boolean;
}

export class InferencePipeline {
  /** Requests in flight (past resolution, not yet answered) per version key, and who waits for none. */
  private readonly inflight = new Map<string, number>();
  private readonly drainWaiters = new Map<string, (() => void)[]>();

  constructor(private readonly parts: PipelineParts) {}

  async predict(request: InferenceRequest): Promise<InferenceResult> {
    // A request that names no version may be placed by the model's canary split; a named version always wins.
    const canary = this.parts.canary;
    const routed = !request.version && canary ? canary.pick(this.parts.repository.get(request.model), request.routingKey) : undefined;
    const prepared = this.prepare(routed ? { ...request, version: routed } : request);
    const key = prepared.version.key;
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    const started = performance.now();
    let outcome: 'ok' | 'server-fault' | 'client-error' = 'ok';
    try {
      const result = await this.predictPrepared(request, prepared);
      this.parts.observer?.(request, result, prepared);
      return result;
    } catch (err) {
      outcome = SERVER_ERROR_CODES.has(ServingError.from(err).code) ? 'server-fault' : 'client-error';
      throw err;
    } finally {
      const left = this.inflight.get(key)! - 1;
      if (left > 0) this.inflight.set(key, left);
      else this.released(key);
      // The canary's health is judged on what it did: client errors say nothing about it.
      if (routed && outcome !== 'client-error') canary!.observe(prepared.entry, routed, outcome === 'server-fault', performance.now() - started);
    }
  }

  /** Resolves once no request for the version is in flight: an unload waits for it after stopping new ones. */
  drained(key: string): Promise<void> {
    if (!this.inflight.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.drainWaiters.get(key) ?? [];
      waiters.push(resolve);
      this.drainWaiters.set(key, waiters);
    });
  }

  private released(key: string): void {
    this.inflight.delete(key);
    const waiters = this.drainWaiters.get(key);
    if (!waiters) return;
    this.drainWaiters.delete(key);
    for (const w of waiters) w();
  }

  private async predictPrepared(request: InferenceRequest, prepared: Prepared): Promise<InferenceResult> {
    const { entry, version } = prepared;
    // The request's span (the front door's SERVER span) carries the model, the cache outcome and, from
    // the scheduler, the queue wait: attributes rather than child spans of their own, which doubled the
    // spans exported per request for a few numbers.
    const span = recording(request.span);
    span?.setAttributes({ [ATTR_MODEL]: entry.name, [ATTR_MODEL_VERSION]: version.version });
    const config = entry.config!;
    const compute = (signal: CancelSignal | undefined) => this.execute(prepared, request, signal);
    const cache = this.parts.cache;
    let result: InferenceResult;
    if (!cache || request.bypassCache || !config.deterministic || !config.result_cache.enabled) {
      result = await compute(request.signal);
    } else {
      // The key covers what the model computes (inputs, outputs); the text pipeline's labels are
      // derived below on every path, so a text request and the same token_ids share one entry and
      // each caller gets the answer its own path needs.
      // Keyed by the load (generation) too: during a reload, the previous load's results never answer the new one.
      const key = hashRequest({ model: entry.name, version: loadedVersion(version.key), inputs: prepared.inputs, outputs: prepared.outputs });
      const { result: found, cached } = await cache.getOrCompute(key, config.result_cache.ttl_ms, compute, { signal: request.signal });
      span?.setAttribute(ATTR_CACHE_HIT, cached);
      result = found;
    }
    if (!prepared.text) return result;
    return { ...result, text: entry.textPipeline!.decode(result.outputs) };
  }

  /** Resolves, encodes text and validates: everything that can refuse a request before it costs anything. */
  private prepare(request: InferenceRequest): Prepared {
    const { entry, version } = this.parts.repository.resolve(request.model, request.version || undefined);
    const where = `model '${entry.name}' version ${version.version}`;
    let inputs = request.inputs;
    let outputs = request.outputs;
    const pipeline = entry.textPipeline;
    const tensorText = pipeline && !request.text ? textInput(inputs, version.inputs) : undefined;
    const requestText = tensorText ?? request.text;
    if (tensorText !== undefined) inputs = [];
    const text = requestText !== undefined && requestText !== '';
    if (text) {
      if (!pipeline) {
        throw invalidArgument(`${where} has no text pipeline, so input_text cannot be used; send tensors in inputs: ${formatSpecs(version.inputs)}`);
      }
      if (inputs.length > 0) throw invalidArgument('send either input_text or inputs, not both');
      if (outputs.length > 0) throw invalidArgument('outputs cannot be chosen with input_text; the text pipeline returns labels');
      const bytes = Buffer.byteLength(requestText!, 'utf8');
      if (bytes > this.parts.limits.maxTextBytes) {
        throw resourceExhausted(
          `input_text is ${bytes} bytes, more than the limit of ${this.parts.limits.maxTextBytes}; ${where} reads only its first ` +
            `${pipeline.config.tokenizer.max_tokens} words, so send less text (or raise --max-text-bytes / TENSORGATE_MAX_TEXT_BYTES)`,
        );
      }
      inputs = [pipeline.encode(requestText!)];
      outputs = [pipeline.config.output];
    } else if (inputs.length === 0 && pipeline) {
      throw invalidArgument(`no inputs sent; ${where} takes input_text, or tensors: ${formatSpecs(version.inputs)}`);
    }
    validateInputs(inputs, version.inputs, this.parts.limits, where);
    if (pipeline && !text) for (const t of inputs) pipeline.checkTokenIds(t);
    validateOutputNames(outputs, version.outputs, where);
    return { entry, version, inputs, outputs, text };
  }

  /** One execution through the version's breaker and the scheduler; the text pipeline decodes its result. */
  private async execute(p: Prepared, request: InferenceRequest, signal: CancelSignal | undefined): Promise<InferenceResult> {
    const breaker = this.parts.breakers.get(p.version.key, p.entry.name, p.version.version, p.entry.config!.circuit_breaker);
    const run = await breaker.fire(() =>
      this.parts.scheduler.submit({
        key: p.version.key,
        inputs: p.inputs,
        outputs: p.outputs,
        deadline: request.deadline,
        signal,
        priority: request.priority,
        timeoutMs: request.timeoutMs,
        onDispatch: request.onDispatch,
        span: request.span,
      }),
    );
    const result: InferenceResult = {
      model: p.entry.name,
      version: p.version.version,
      outputs: run.outputs,
      cached: false,
      computeMs: run.computeMs,
      batchRequests: run.batchRequests,
      batchRows: run.batchRows,
      queueMs: run.queueMs,
    };
    return result;
  }
}

/** The input name that carries text in the v2 protocols, which have no text field: a BYTES tensor of one element. */
export const TEXT_INPUT = 'input_text';

/**
 * The text of a v2 request to a model with a text pipeline: its only input, a one-element BYTES tensor named
 * input_text (unless the model itself has an input of that name, which then gets the tensor as sent).
 */
function textInput(inputs: readonly InferTensor[], modelInputs: readonly TensorSpec[]): string | undefined {
  if (inputs.length !== 1) return undefined;
  const t = inputs[0]!;
  if (t.name !== TEXT_INPUT || t.dtype !== 'STRING' || t.strings?.length !== 1 || modelInputs.some((i) => i.name === TEXT_INPUT)) return undefined;
  return t.strings[0];
}
