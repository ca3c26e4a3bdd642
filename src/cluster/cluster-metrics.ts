/**
 * One /metrics for every process of `tensorgate serve --processes N`, on prom-client's cluster aggregation.
 *
 * Each serving process offers its registry to prom-client's AggregatorRegistry. GET /metrics may reach any of
 * them (they share the HTTP port), so the one it reaches asks the primary, which collects every process's
 * metrics, aggregates them, adds its own, and sends the text back. How series aggregate: prom-client sums
 * by default (counters, histograms, in-flight, queue depth, cache bytes; the "1 for the current state" gauges
 * such as tensorgate_model_state become the number of processes in that state); its default metrics carry
 * their own rules (event-loop lag averaged, min and max; start time omitted; version info taken once).
 * tensorgate_cluster_requests_total keeps the per-process split of the requests.
 *
 * A replaced process starts its counters from zero, so an aggregated counter can fall after a crash:
 * Prometheus reads that as a counter reset.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { unavailable } from '../core/errors';
import type { MetricsExposition } from '../api/http/http-server';
import type { PrimaryMessage, WorkerMessage } from './messages';

/** How long a serving process waits for the primary's aggregate (prom-client gives each process 5 s). */
const REPLY_TIMEOUT_MS = 10_000;

/**
 * Serving-process side: offers `registry` to the primary's aggregation, and counts this process's requests
 * under its own `process` label (read from tensorgate_requests_total at scrape time).
 */
export function offerMetrics(registry: Registry, index: number): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs prom-client's listener that answers the primary's requests.
  new AggregatorRegistry();
  new Counter({
    name: 'tensorgate_cluster_requests_total',
    help: 'Finished requests by server process (--processes N): tensorgate_requests_total split by the process that answered.',
    labelNames: ['process'],
    registers: [registry],
    async collect() {
      const requests = registry.getSingleMetric('tensorgate_requests_total');
      const values = requests ? (await requests.get()).values : [];
      this.reset();
      this.inc({ process: String(index) }, values.reduce((n, v) => n + v.value, 0));
    },
  });
}

/** Serving-process side: what its /metrics serves, the aggregate asked of the primary. */
export class ClusterMetricsSource implements MetricsExposition {
  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly send: (m: WorkerMessage) => boolean) {}

  text(): Promise<string> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(unavailable(`the metrics of every server process did not arrive within ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      this.waiting.set(id, { resolve, reject, timer });
      if (!this.send({ tg: 'metrics-request', id })) {
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(unavailable('the cluster primary cannot be reached for the metrics of every server process'));
      }
    });
  }

  /** The primary's reply to one text() call. */
  onReply(m: Extract<PrimaryMessage, { tg: 'metrics-reply' }>): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.text !== undefined) w.resolve(m.text);
    else w.reject(unavailable(`metrics of every server process: ${m.error ?? 'no answer'}`));
  }
}

/** Primary side: aggregates on request, and keeps the primary's own metrics (processes, restarts). */
export class ClusterMetricsAggregator {
  private readonly aggregator = new AggregatorRegistry();
  private readonly own = new Registry();
  private readonly restarts = new Counter({
    name: 'tensorgate_cluster_restarts_total',
    help: 'Server processes (--processes N) started again after they exited while the server was not shutting down.',
    registers: [this.own],
  });

  constructor(processes: number) {
    new Gauge({ name: 'tensorgate_cluster_processes', help: 'Server processes configured (--processes N).', registers: [this.own] }).set(processes);
  }

  countRestart(): void {
    this.restarts.inc();
  }

  async text(): Promise<string> {
    const [all, own] = await Promise.all([this.aggregator.clusterMetrics(), this.own.metrics()]);
    return all.trim() ? `${all.trimEnd()}\n\n${own}` : own;
  }

  /** Answers one serving process's metrics-request. */
  answer(worker: Worker, id: number): void {
    const reply = (m: PrimaryMessage) => {
      if (worker.isConnected()) worker.send(m, undefined, () => undefined);
    };
    this.text().then(
      (text) => reply({ tg: 'metrics-reply', id, text }),
      (err: unknown) => reply({ tg: 'metrics-reply', id, error: err instanceof Error ? err.message : String(err) }),
    );
  }
}
