/**
 * The primary of `tensorgate serve --processes N`: a small supervisor (it loads no model, no ONNX Runtime, no
 * grpc-js) that forks N serving processes and keeps them running.
 *
 * Why processes: one Node main thread does every request's gRPC I/O, validation and scheduling, so a
 * transport-bound load (cheap models, many connections) tops out near 1 / (main-thread time per request)
 * whatever the core count. node:cluster lets N main threads share the ports: the primary holds the listening
 * sockets (the same ports for every process, `--port 0` included) and hands each new connection to the next
 * process, round-robin. Connections, not requests, are spread: one client's HTTP/2 connection stays on one
 * process. (SO_REUSEPORT would let the kernel spread them instead, but Node 20's net has no reusePort.)
 *
 * What the primary does:
 * - forks N processes, each running this same command (src/cli/serve.ts) with its slot index 1..N;
 * - replaces a process that exits while the server is not shutting down, at once the first time and then
 *   with a growing delay while it keeps exiting early (cluster-policy.ts), so a crash loop does not spin;
 * - decides the whole server's readiness (SERVING only while every process is) and tells every process,
 *   each of which answers /readyz with it; each process's gRPC health answers for itself;
 * - aggregates /metrics for whichever process a scrape reaches (cluster-metrics.ts);
 * - on SIGTERM/SIGINT asks every process to drain (each runs the single-process drain), exits 0 once all have
 *   exited cleanly (1 otherwise); a second signal kills them and exits at once. A process that cannot start
 *   while the server starts (a port in use) stops the server with its one line, as a single process would.
 */
import cluster, { type Worker } from 'node:cluster';
import type { ServerConfig } from '../config/server-config';
import { createLogger, logDestination, type Logger } from '../log';
import { ClusterMetricsAggregator } from './cluster-metrics';
import { clusterReadiness, restartDelayMs, STABLE_AFTER_MS, type ClusterReadiness, type SlotState } from './cluster-policy';
import { isWorkerMessage, PROCESS_INDEX_ENV, type PrimaryMessage, type WorkerMessage } from './messages';

/** After the drain grace, how long processes still get to exit before the primary kills them. */
const DRAIN_BACKSTOP_MS = 30_000;

interface Slot extends SlotState {
  worker?: Worker;
  /** Its process installed its IPC handler: messages sent now are not lost. */
  hello: boolean;
  readyAt?: number;
  /** It said it is draining (a signal of its own): its clean exit is deliberate, not a crash. */
  drainingItself: boolean;
  /** Consecutive early exits (cluster-policy.ts). */
  streak: number;
  restartTimer?: NodeJS.Timeout;
}

export async function runPrimary(config: ServerConfig): Promise<void> {
  const log = createLogger(config.logLevel, logDestination(config.logFormat)).child({ process: 0 });
  new ClusterPrimary(config, log).start();
}

class ClusterPrimary {
  private readonly slots: Slot[];
  private readonly metrics: ClusterMetricsAggregator;
  private published: ClusterReadiness = { status: 'NOT_SERVING', reason: '' };
  private everReady = false;
  private shuttingDown = false;
  private signals = 0;
  private ports: { port: number; httpPort: number } | undefined;
  /** Processes that did not exit cleanly during the drain. */
  private failedExits = 0;
  /** The server stopped because it could not start: exit 1 whatever the processes do. */
  private aborted = false;
  private backstop: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: ServerConfig,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: config.processes }, (_, i) => ({ index: i + 1, hello: false, drainingItself: false, streak: 0 }));
    this.metrics = new ClusterMetricsAggregator(config.processes);
  }

  start(): void {
    process.on('SIGTERM', () => this.onSignal('SIGTERM'));
    process.on('SIGINT', () => this.onSignal('SIGINT'));
    cluster.on('message', (worker, m: unknown) => {
      const slot = this.slots.find((s) => s.worker === worker);
      if (slot && isWorkerMessage(m)) this.onMessage(slot, worker, m);
    });
    this.log.info({ processes: this.config.processes, pid: process.pid }, `starting ${this.config.processes} server processes`);
    for (const slot of this.slots) this.fork(slot);
  }

  private fork(slot: Slot): void {
    const worker = cluster.fork({ [PROCESS_INDEX_ENV]: String(slot.index) });
    Object.assign(slot, { worker, hello: false, status: undefined, reason: undefined, down: undefined, readyAt: undefined, drainingItself: false, restartTimer: undefined });
    // A send to a process that just exited surfaces here; its 'exit' is handled below.
    worker.on('error', () => undefined);
    worker.once('exit', (code: number | null, signal: NodeJS.Signals | null) => this.onExit(slot, worker, code, signal));
    this.log.info({ slot: slot.index, pid: worker.process.pid }, `process ${slot.index} started (pid ${worker.process.pid})`);
    this.publish();
  }

  private send(worker: Worker | undefined, m: PrimaryMessage): void {
    if (worker?.isConnected()) worker.send(m, undefined, () => undefined);
  }

  private onMessage(slot: Slot, worker: Worker, m: WorkerMessage): void {
    switch (m.tg) {
      case 'hello':
        slot.hello = true;
        this.send(worker, { tg: 'cluster-readiness', ...this.published });
        // A drain sent before its handler existed was lost: send it again.
        if (this.shuttingDown) this.send(worker, { tg: 'drain' });
        return;
      case 'listening':
        this.ports ??= { port: m.port, httpPort: m.httpPort };
        return;
      case 'readiness':
        slot.status = m.status;
        slot.reason = m.reason;
        if (m.status === 'SERVING') slot.readyAt ??= Date.now();
        this.publish();
        return;
      case 'draining':
        slot.drainingItself = true;
        return;
      case 'startup-failed':
        this.onStartupFailed(slot, m.message);
        return;
      case 'metrics-request':
        this.metrics.answer(worker, m.id);
        return;
    }
  }

  private onStartupFailed(slot: Slot, message: string): void {
    if (this.shuttingDown) return;
    if (this.everReady) {
      // A replacement that cannot start: its exit follows, and is retried with a growing delay.
      this.log.error({ slot: slot.index, reason: message }, `process ${slot.index} could not start: ${message}`);
      return;
    }
    // At first start it would fail in every process alike (a port in use): stop, with the one line.
    this.log.fatal(`cannot start: ${message}`);
    this.shuttingDown = true;
    this.aborted = true;
    for (const s of this.slots) s.worker?.process.kill('SIGKILL');
    this.exitWhenAllGone();
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (this.shuttingDown) {
      if (code !== 0) this.failedExits++;
      this.log[this.aborted ? 'debug' : 'info']({ slot: slot.index, code, signal }, `process ${slot.index} exited (${how})`);
      this.exitWhenAllGone();
      return;
    }
    const deliberate = slot.drainingItself && code === 0;
    const early = slot.readyAt === undefined || Date.now() - slot.readyAt < STABLE_AFTER_MS;
    slot.streak = deliberate ? 0 : early ? slot.streak + 1 : 1;
    const delay = restartDelayMs(slot.streak);
    const when = delay === 0 ? 'now' : `in ${delay / 1000} s`;
    slot.down = `exited (${how}) and restarts ${when}`;
    if (deliberate) this.log.info({ slot: slot.index }, `process ${slot.index} drained and exited; starting a new one`);
    else this.log.error({ slot: slot.index, code, signal, restartInMs: delay }, `process ${slot.index} exited unexpectedly (${how}); restarting it ${when}`);
    this.publish();
    slot.restartTimer = setTimeout(() => {
      this.metrics.countRestart();
      this.fork(slot);
    }, delay);
  }

  private onSignal(signal: NodeJS.Signals): void {
    if (++this.signals > 1) {
      this.log.warn({ signal }, 'second signal: exiting now');
      for (const s of this.slots) s.worker?.process.kill('SIGKILL');
      process.exit(1);
    }
    if (this.shuttingDown) return; // already stopping after a failed start
    this.shuttingDown = true;
    this.log.info({ signal }, `shutdown requested: draining ${this.slots.filter((s) => s.worker).length} server processes`);
    for (const s of this.slots) {
      clearTimeout(s.restartTimer);
      this.send(s.worker, { tg: 'drain' });
    }
    this.publish();
    this.backstop = setTimeout(() => {
      this.log.error(`processes still running ${DRAIN_BACKSTOP_MS} ms after the drain grace: killing them`);
      for (const s of this.slots) s.worker?.process.kill('SIGKILL');
      process.exit(1);
    }, this.config.shutdownGraceMs + DRAIN_BACKSTOP_MS);
    this.exitWhenAllGone();
  }

  private exitWhenAllGone(): void {
    if (this.slots.some((s) => s.worker)) return;
    clearTimeout(this.backstop);
    if (this.aborted) process.exit(1);
    this.log.info({ failed: this.failedExits }, this.failedExits ? `stopped: ${this.failedExits} processes did not exit cleanly` : 'stopped: every process drained and exited');
    process.exit(this.failedExits ? 1 : 0);
  }

  /** Recomputes the whole server's readiness and tells every process when it changes. */
  private publish(): void {
    const next = clusterReadiness(this.slots, this.shuttingDown);
    if (next.status === this.published.status && next.reason === this.published.reason) return;
    const previous = this.published;
    this.published = next;
    for (const s of this.slots) if (s.hello) this.send(s.worker, { tg: 'cluster-readiness', ...next });
    if (this.shuttingDown) return;
    if (next.status === 'SERVING') {
      const host = this.config.host;
      const { port, httpPort } = this.ports ?? { port: this.config.port, httpPort: this.config.httpPort };
      const fields = { host, port, httpPort, processes: this.config.processes };
      if (!this.everReady) this.log.info(fields, `tensorgate serving on ${host}:${port} with ${this.config.processes} processes (HTTP ${host}:${httpPort})`);
      else this.log.info(fields, `ready again: all ${this.config.processes} processes SERVING`);
      this.everReady = true;
    } else if (this.everReady && previous.status === 'SERVING') {
      this.log.warn({ reason: next.reason }, `not ready (/readyz 503): ${next.reason}`);
    }
  }
}
