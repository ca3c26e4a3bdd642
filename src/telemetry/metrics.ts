/**
 * ServerMetrics: the server's Prometheus metrics on prom-client, in a Registry of its own (never the global
 * one: a process, or a test file, may run several servers, and each must expose only its own numbers).
 *
 * Where the numbers come from:
 * - front doors call observeRequest() once per finished call and inflight() around it;
 * - bind() subscribes to the scheduler (batches, drops), the pool (execution timeouts, stuck workers) and
 *   the breakers (transitions), which only announce these as events;
 * - state (model states, breaker states, queue depths, cache size) and counters the components already keep
 *   (cache hits/misses/coalesced, worker restarts) are read at scrape time (scrape-gauges.ts), so a scrape is
 *   never out of date and no event can be missed;
 * - the request path's counters and histograms are cells resolved once per label set (cell-metrics.ts).
 *
 * Label cardinality is bounded by what is loaded: model/version labels only ever name models and versions
 * the repository knows. A request for an unknown model is counted with model="" and version="" (and an
 * unknown version of a known model with version=""), so clients cannot mint series by sending names.
 */
import type { RequestRecord } from '../api/request-record';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { EventEmitter } from 'node:events';
import type { ResultCache } from '../cache/result-cache';
import type { ModelRepository } from '../repository/model-repository';
import type { BreakerRegistry, BreakerTransition } from '../resilience/circuit-breaker';
import type { ExecutionPool } from '../runtime/execution-pool';
import type { BatchDone, RequestScheduler } from '../scheduling/scheduler';
import type { SequenceScheduler } from '../generation/sequence-scheduler';
import type { GenTokens } from '../generation/step-messages';
import type { GenerationObserver } from '../serving/generation-pipeline';
import { ModelStatistics } from './model-statistics';
import { CellCounter, CellGauge, CellHistogram, CellIndex, type HistogramCell, type ValueCell } from './cell-metrics';
import { registerScrapeGauges, splitKey } from './scrape-gauges';

export { splitKey };

/** End-to-end, queue and compute latencies: 100 us (a cache hit) to 10 s (a big batch on a slow model). */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Rows or requests per execution; powers of two because max_batch_size and preferred sizes usually are. */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
/** Loading a version: a small ONNX file in tens of ms, a large one with graph optimisation in minutes. */
export const LOAD_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Generate: time to first token includes prompt processing; gaps between tokens are one decode step. */
export const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
export const INTER_TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];
/** A classifier's confidence: steps of 0.05 from 0.5, where most answers fall, and coarse ones below (many-class models). */
export const CONFIDENCE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1];

/**
 * Live accuracy's metrics (src/feedback). The hot path (every classification prediction) holds the children
 * it gets here per version and label, so a prediction costs an increment and an observe, no label lookups.
 */
export interface ClassificationMetrics {
  predictedLabel(model: string, version: string, label: string): { inc(): void };
  confidence(model: string, version: string): { observe(value: number): void };
  feedback(model: string, version: string, label: string, predicted: string): void;
  /** Where the accuracy gauges read the sliding windows at scrape time. */
  readAccuracyFrom(read: () => Iterable<AccuracyReading>): void;
}

export interface AccuracyReading {
  model: string;
  version: string;
  /** Feedbacks in the window and the share of them the prediction got right. */
  feedback: number;
  accuracy: number;
}


export interface MetricsParts {
  scheduler: RequestScheduler;
  pool: ExecutionPool;
  repository: ModelRepository;
  cache?: ResultCache | undefined;
  breakers: BreakerRegistry;
  sequences?: SequenceScheduler;
}

/** What a front door reports per finished request (model/version normalised here, see the file comment). */
export type RequestObservation = RequestRecord;


export class ServerMetrics {
  readonly registry = new Registry();
  /** The v2 statistics extension's view of the same observations (ModelStatistics, GET /v2/models/stats). */
  readonly statistics = new ModelStatistics();
  private parts: MetricsParts | undefined;
  private unsubscribe: (() => void)[] = [];

  private readonly requests = this.cellCounter('tensorgate_requests_total', 'Finished requests by protocol, method, model, version and status code.', ['protocol', 'method', 'model', 'version', 'code']);
  private readonly requestSeconds = this.cellHistogram('tensorgate_request_duration_seconds', 'End-to-end request latency.', ['protocol', 'method', 'model', 'code'], LATENCY_BUCKETS);
  private readonly queueSeconds = this.cellHistogram('tensorgate_request_queue_seconds', 'Time a request waited in the scheduler queue before its execution started (executed requests only).', ['model', 'version'], LATENCY_BUCKETS);
  private readonly computeSeconds = this.cellHistogram('tensorgate_request_compute_seconds', 'Inference time of the execution that served a request (executed requests only).', ['model', 'version'], LATENCY_BUCKETS);
  private readonly inflightGauge = new CellGauge(this.registry, 'tensorgate_inflight_requests', 'Requests received and not yet answered.', ['protocol']);
  private readonly requestRows = this.cellHistogram('tensorgate_request_rows', 'Rows (dim 0) per request, cache hits included.', ['protocol', 'model'], BATCH_BUCKETS);
  private readonly rows = this.cellCounter('tensorgate_rows_total', 'Rows inferred by successful executions (each row once, however many callers shared it).', ['model', 'version']);
  private readonly batchRows = this.cellHistogram('tensorgate_batch_size_rows', 'Rows per execution (dynamic batching merges requests).', ['model', 'version'], BATCH_BUCKETS);
  private readonly batchRequests = this.cellHistogram('tensorgate_batch_requests', 'Requests merged into one execution.', ['model', 'version'], BATCH_BUCKETS);
  private readonly batchSeconds = this.cellHistogram('tensorgate_batch_compute_seconds', 'Inference time per execution.', ['model', 'version'], LATENCY_BUCKETS);
  private readonly soloExecutions = this.cellCounter('tensorgate_solo_executions_total', 'Executions and decode steps that ran solo: on a session with every core of the process, while no worker had anything else to do (GetModel placement.solo).', ['model', 'version']);
  private readonly batchFailures = this.cellCounter('tensorgate_batch_failures_total', 'Executions that failed (every request in them failed).', ['model', 'version']);
  private readonly dropped = this.counter('tensorgate_dropped_requests_total', 'Requests dropped from the queue without running: cancelled or deadline passed.', ['model', 'version']);
  private readonly evictions = this.counter('tensorgate_cache_evictions_total', 'Result cache entries that left the cache: evict (size bound), expire (TTL), invalidate (version reloaded/unloaded).', ['reason']);
  private readonly breakerTransitions = this.counter('tensorgate_breaker_transitions_total', 'Circuit breaker state changes by the state entered.', ['model', 'version', 'to']);
  private readonly timeouts = this.counter('tensorgate_execution_timeouts_total', 'Executions that exceeded execution_timeout_ms.', ['model', 'version']);
  private readonly stuck = this.counter('tensorgate_worker_stuck_total', 'Workers retired because an execution ran far past its timeout.', ['model', 'version']);
  private readonly reloadFailures = this.counter('tensorgate_model_reload_failures_total', 'Reloads of a model (or of one of its versions) that failed to load; the previous load kept serving.', ['model']);
  private readonly canaryTransitions = this.counter('tensorgate_canary_transitions_total', 'Canary transitions: to="rolled_back" (by the rules of config.yaml canary, or by command), to="promoted" (by command).', ['model', 'version', 'to']);
  private readonly jobsFinished = this.counter('tensorgate_jobs_total', 'Async jobs by the status they ended in (succeeded, failed, cancelled).', ['model', 'status']);
  private jobCounts: (() => Record<string, number>) | undefined;
  private readonly modelLoad = this.histogram('tensorgate_model_load_duration_seconds', 'Time to load a model (all its versions).', ['model'], LOAD_BUCKETS);
  private readonly ttft = this.histogram('tensorgate_generate_time_to_first_token_seconds', 'Generate: time from request to the first streamed token.', ['model'], TTFT_BUCKETS);
  private readonly interToken = this.histogram('tensorgate_generate_inter_token_seconds', 'Generate: time between consecutive streamed tokens.', ['model'], INTER_TOKEN_BUCKETS);
  private readonly tokens = this.counter('tensorgate_generate_tokens_total', 'Generate: tokens in (prompt) and out (generated).', ['model', 'direction']);
  private readonly finishes = this.counter('tensorgate_generate_finished_total', 'Generate: finished sequences by finish reason (length, eos, stop, cancelled).', ['model', 'reason']);
  // Live accuracy (src/feedback). Labels are the classifier's own label names, bounded by the model.
  private readonly predictedLabels = this.cellCounter('tensorgate_predicted_labels_total', 'Classification predictions by predicted label (text classifiers, and tensor models with one [batch, classes] output: every row).', ['model', 'version', 'label']);
  private readonly predictionConfidence = this.cellHistogram('tensorgate_prediction_confidence', "Classification predictions' confidence: the predicted label's score (softmax of the row when it is not already a distribution).", ['model', 'version'], CONFIDENCE_BUCKETS);
  private readonly feedbacks = this.counter('tensorgate_feedback_total', 'Feedback on remembered predictions: label is the true label the feedback gave, predicted the one the model gave.', ['model', 'version', 'label', 'predicted']);
  private accuracyReadings: (() => Iterable<AccuracyReading>) | undefined;
  /** The request path's cells (cell-metrics.ts): per protocol, method, model, version and code; per protocol; per version key. */
  private readonly requestCells = new CellIndex<RequestCells>();
  private readonly inflightCells = new Map<string, ValueCell>();
  private readonly batchCells = new Map<string, BatchCells>();

  constructor() {
    // Prefix "tensorgate_": tensorgate_process_cpu_seconds_total, tensorgate_process_resident_memory_bytes,
    // tensorgate_nodejs_eventloop_lag_seconds (+ _p50/_p90/_p99), heap, GC. (A "tensorgate_process_" prefix
    // would read tensorgate_process_process_cpu_... and put event-loop lag under process_.)
    collectDefaultMetrics({ register: this.registry, prefix: 'tensorgate_' });
    // These three are gauges named *_total, which promtool rejects; the same values are exported without
    // the suffix (tensorgate_nodejs_active_handles etc.).
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      this.registry.removeSingleMetric(`tensorgate_nodejs_${name}`);
    }
    registerScrapeGauges(this.registry, {
      parts: () => this.parts,
      jobCounts: () => this.jobCounts?.(),
      accuracy: () => this.accuracyReadings?.() ?? [],
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text for GET /metrics (runs the scrape-time collectors first). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Subscribes to the components' events and reads their state on scrape. Binding again replaces the old parts. */
  bind(parts: MetricsParts): void {
    this.unbind();
    this.parts = parts;
    const key = (k: string) => splitKey(k);
    this.listen(parts.scheduler, 'batch', (b: { key: string; requests: number; rows: number }) => {
      const cells = this.batchCellsOf(b.key);
      cells.rows.observe(b.rows);
      cells.requests.observe(b.requests);
    });
    this.listen(parts.scheduler, 'batch-done', (b: BatchDone) => {
      const cells = this.batchCellsOf(b.key);
      this.statistics.observeExecution(cells.labels.model, cells.labels.version, b.rows, b.computeMs, b.ok);
      cells.seconds.observe(b.computeMs / 1000);
      if (b.solo) this.countSolo(cells);
      if (b.ok) cells.rowsDone.inc(b.rows);
      else (cells.failures ??= this.batchFailures.cell(cells.labels)).inc();
    });
    this.listen(parts.pool, 'gen-tokens', (_index: number, step: GenTokens) => {
      if (!step.solo) return;
      this.countSolo(this.batchCellsOf(step.key));
    });
    this.listen(parts.scheduler, 'dropped', (k: string) => this.dropped.inc(key(k)));
    this.listen(parts.pool, 'execution-timeout', (k: string) => this.timeouts.inc(key(k)));
    this.listen(parts.pool, 'worker-stuck', (_index: number, k: string) => this.stuck.inc(key(k)));
    this.listen(parts.breakers, 'state', (t: BreakerTransition) => this.breakerTransitions.inc({ ...key(t.key), to: t.to }));
    this.statistics.bind({
      servedVersion: (model, version) => {
        const entry = parts.repository.get(model);
        if (!entry) return undefined;
        if (!version) return parts.repository.defaultVersion(entry)?.version;
        return entry.versions.some((v) => v.version === version && v.state === 'READY') ? version : undefined;
      },
      cached: (model) => {
        const config = parts.repository.get(model)?.config;
        return parts.cache !== undefined && config !== undefined && config.deterministic && config.result_cache.enabled;
      },
    });
    if (parts.cache) {
      const off = parts.cache.onEvict((_key, reason) => this.evictions.inc({ reason }));
      this.unsubscribe.push(off);
    }
  }

  /** Removes every listener bind() added (the metrics keep their values). */
  unbind(): void {
    for (const off of this.unsubscribe.splice(0)) off();
    this.parts = undefined;
    this.statistics.bind(undefined);
  }

  observeRequest(r: RequestObservation): void {
    this.statistics.observeRequest(r);
    const { model, version } = this.bounded(r.model, r.version);
    const cells = this.requestCells.get(r.protocol, r.method, model, version, r.code) ?? this.requestCells.set({}, r.protocol, r.method, model, version, r.code);
    (cells.requests ??= this.requests.cell({ protocol: r.protocol, method: r.method, model, version, code: r.code })).inc();
    (cells.seconds ??= this.requestSeconds.cell({ protocol: r.protocol, method: r.method, model, code: r.code })).observe(r.seconds);
    if (r.rows !== undefined) (cells.rows ??= this.requestRows.cell({ protocol: r.protocol, model })).observe(r.rows);
    // A cache hit carries the original computation's timings; counting them again would invent work.
    if (r.cached) return;
    if (r.queueSeconds !== undefined) (cells.queue ??= this.queueSeconds.cell({ model, version })).observe(r.queueSeconds);
    if (r.computeSeconds !== undefined) (cells.compute ??= this.computeSeconds.cell({ model, version })).observe(r.computeSeconds);
  }

  inflight(protocol: 'grpc' | 'http', delta: number): void {
    let cell = this.inflightCells.get(protocol);
    if (!cell) this.inflightCells.set(protocol, (cell = this.inflightGauge.cell({ protocol })));
    cell.inc(delta);
  }

  /** An execution or decode step of the version ran solo (scheduling/solo-runs.ts). */
  private countSolo(cells: BatchCells): void {
    (cells.solo ??= this.soloExecutions.cell(cells.labels)).inc();
  }

  private batchCellsOf(versionKey: string): BatchCells {
    let cells = this.batchCells.get(versionKey);
    if (!cells) {
      const labels = splitKey(versionKey);
      cells = {
        labels,
        rows: this.batchRows.cell(labels),
        requests: this.batchRequests.cell(labels),
        seconds: this.batchSeconds.cell(labels),
        rowsDone: this.rows.cell(labels),
      };
      this.batchCells.set(versionKey, cells);
    }
    return cells;
  }

  observeCanaryTransition(model: string, version: string, to: string): void {
    this.canaryTransitions.inc({ ...this.bounded(model, version), to });
  }

  /** A reload that failed while the previous load kept serving (ModelRepository 'reload-failed'). */
  observeReloadFailure(model: string): void {
    this.reloadFailures.inc({ model: this.bounded(model, '').model });
  }

  /** Async jobs (src/jobs): where the tensorgate_jobs gauge reads the store's counts at scrape time. */
  readJobsFrom(counts: () => Record<string, number>): void {
    this.jobCounts = counts;
  }

  /** An async job reached its final status. */
  observeJobFinished(model: string, status: string): void {
    this.jobsFinished.inc({ model: this.bounded(model, '').model, status });
  }

  observeModelLoad(model: string, seconds: number): void {
    this.modelLoad.observe({ model: this.bounded(model, '').model }, seconds);
  }

  /** Live accuracy's metrics (see ClassificationMetrics); model and version are loaded ones, labels the model's. */
  classificationMetrics(): ClassificationMetrics {
    return {
      predictedLabel: (model, version, label) => this.predictedLabels.cell({ model, version, label }),
      confidence: (model, version) => this.predictionConfidence.cell({ model, version }),
      feedback: (model, version, label, predicted) => this.feedbacks.inc({ model, version, label, predicted }),
      readAccuracyFrom: (read) => (this.accuracyReadings = read),
    };
  }

  /** The generation pipeline's reports, as these metrics. */
  generationObserver(): GenerationObserver {
    return {
      firstToken: (model, seconds) => this.observeTimeToFirstToken(model, seconds),
      interToken: (model, seconds) => this.observeInterToken(model, seconds),
      tokens: (model, direction, count) => this.countTokens(model, direction, count),
      finished: (model, reason) => this.finishes.inc({ model: this.bounded(model, '').model, reason }),
    };
  }

  observeTimeToFirstToken(model: string, seconds: number): void {
    this.ttft.observe({ model: this.bounded(model, '').model }, seconds);
  }

  observeInterToken(model: string, seconds: number): void {
    this.interToken.observe({ model: this.bounded(model, '').model }, seconds);
  }

  countTokens(model: string, direction: 'in' | 'out', count: number): void {
    this.tokens.inc({ model: this.bounded(model, '').model, direction }, count);
  }

  /** Client-supplied names become labels only when the repository knows them. */
  private bounded(model: string, version: string): { model: string; version: string } {
    const repository = this.parts?.repository;
    if (!repository) return { model, version };
    const entry = repository.get(model);
    if (!entry) return { model: '', version: '' };
    return { model, version: entry.versions.some((v) => v.version === version) ? version : '' };
  }

  /** Listeners run inside the components' own dispatch (opossum's, lru-cache's): a metrics bug must not throw there. */
  private listen(emitter: EventEmitter, event: string, fn: (...args: any[]) => void): void {
    const safe = (...args: unknown[]) => {
      try {
        fn(...args);
      } catch (err) {
        process.emitWarning(`tensorgate metrics: '${event}' listener failed: ${(err as Error)?.message ?? String(err)}`);
      }
    };
    emitter.on(event, safe);
    this.unsubscribe.push(() => emitter.off(event, safe));
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<L extends string>(name: string, help: string, labelNames: L[], buckets: number[]): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  /** Metrics the request path touches: cells resolved once (cell-metrics.ts), not a label hash per call. */
  private cellCounter(name: string, help: string, labelNames: string[]): CellCounter {
    return new CellCounter(this.registry, name, help, labelNames);
  }

  private cellHistogram(name: string, help: string, labelNames: string[], buckets: number[]): CellHistogram {
    return new CellHistogram(this.registry, name, help, labelNames, buckets);
  }
}

/** A request's cells, each made the first time that request kind needs it (no empty series for the others). */
interface RequestCells {
  requests?: ValueCell;
  seconds?: HistogramCell;
  rows?: HistogramCell;
  queue?: HistogramCell;
  compute?: HistogramCell;
}

interface BatchCells {
  labels: { model: string; version: string };
  rows: HistogramCell;
  requests: HistogramCell;
  seconds: HistogramCell;
  rowsDone: ValueCell;
  failures?: ValueCell;
  solo?: ValueCell;
}
