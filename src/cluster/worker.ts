/**
 * A serving process of `tensorgate serve --processes N`: a whole TensorgateServer (it loads every model
 * itself) whose gRPC and HTTP ports are the cluster's shared ones, plus what ties it to the primary:
 *
 * - it reports its readiness, and answers /readyz with the whole server's (SERVING only while every process
 *   is; the primary decides and broadcasts it). Its own gRPC health (a connection reaches one process) stays
 *   its own: NOT_SERVING until its models have loaded, as in a single process;
 * - its /metrics serves every process's metrics, aggregated by the primary (./cluster-metrics.ts);
 * - it drains when the primary says so, and tells the primary when it drains on a signal of its own, so that
 *   exit is not mistaken for a crash.
 *
 * Why every process serves HTTP (rather than the primary alone): the HTTP port will also carry REST inference,
 * which must run where the models are; the primary stays a small supervisor that loads no model.
 */
import type { HealthStatus } from '../api/readiness';
import type { Logger } from '../log';
import type { TensorgateServer } from '../server';
import { ClusterMetricsSource, offerMetrics } from './cluster-metrics';
export { shareOfMachine } from './cluster-policy';
import { isPrimaryMessage, PROCESS_INDEX_ENV, type PrimaryMessage, type WorkerMessage } from './messages';

/** This process's slot, 1..N, as the primary set it when it forked us. */
export function processIndex(env: NodeJS.ProcessEnv = process.env): number {
  const index = Number(env[PROCESS_INDEX_ENV]);
  return Number.isInteger(index) && index > 0 ? index : 0;
}

function send(m: WorkerMessage): boolean {
  if (!process.connected || !process.send) return false;
  // The callback keeps a send to a primary that just went away from throwing; the process exits then anyway.
  process.send(m, undefined, {}, () => undefined);
  return true;
}

export class ClusterMember {
  private cluster: { status: HealthStatus; reason: string } = { status: 'NOT_SERVING', reason: 'waiting for the other server processes' };
  private readonly metrics = new ClusterMetricsSource(send);
  private onDrain: (() => void) | undefined;

  constructor(
    private readonly server: TensorgateServer,
    private readonly log: Logger,
    index: number,
  ) {
    offerMetrics(server.metrics.registry, index);
    server.http.setSources({
      metrics: this.metrics,
      // This process's own reason first (loading, draining); once it is ready, the whole server's.
      health: () => (server.readiness.status === 'SERVING' ? this.cluster.status : 'NOT_SERVING'),
      notReadyReason: () => (server.readiness.status === 'SERVING' ? this.cluster.reason : server.readiness.notReadyReason),
    });
    server.readiness.on('change', (status: HealthStatus, reason: string) => send({ tg: 'readiness', status, reason }));
    process.on('message', (m: unknown) => {
      if (isPrimaryMessage(m)) this.onMessage(m);
    });
    send({ tg: 'hello' });
    send({ tg: 'readiness', status: server.readiness.status, reason: server.readiness.notReadyReason });
  }

  /** What to do when the primary asks for a drain. */
  whenDrainRequested(fn: () => void): void {
    this.onDrain = fn;
  }

  listening(): void {
    send({ tg: 'listening', port: this.server.port, httpPort: this.server.httpPort });
  }

  draining(): void {
    send({ tg: 'draining' });
  }

  /** The primary logs the reason once, for every process, and stops the server when it happens at first start. */
  startupFailed(message: string): boolean {
    return send({ tg: 'startup-failed', message });
  }

  private onMessage(m: PrimaryMessage): void {
    switch (m.tg) {
      case 'cluster-readiness':
        this.cluster = { status: m.status, reason: m.reason };
        return;
      case 'metrics-reply':
        this.metrics.onReply(m);
        return;
      case 'drain':
        this.log.debug('drain requested by the primary');
        this.onDrain?.();
        return;
    }
  }
}
