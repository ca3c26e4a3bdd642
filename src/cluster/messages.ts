/**
 * The IPC messages between the cluster primary and the serving processes (`tensorgate serve --processes N`).
 * Each carries `tg`, so they never mix with node:cluster's own messages or prom-client's aggregation requests,
 * which travel on the same channel.
 */
import type { HealthStatus } from '../api/readiness';

/** The environment variable that tells a forked process its slot, 1..N (a replacement keeps its slot's index). */
export const PROCESS_INDEX_ENV = 'TENSORGATE_PROCESS_INDEX';

/** Serving process -> primary. */
export type WorkerMessage =
  /** Its IPC handler is installed: from now on it can take `drain` by message. */
  | { tg: 'hello' }
  /** Both ports are bound (the same ports in every process: the primary holds the listening sockets). */
  | { tg: 'listening'; port: number; httpPort: number }
  /** Its own readiness changed (health "" of that process). */
  | { tg: 'readiness'; status: HealthStatus; reason: string }
  /** It started its drain, on a signal of its own or on `drain`: its exit is not a crash. */
  | { tg: 'draining' }
  /** It could not start (a port in use, a bad model folder): the one line a person needs. */
  | { tg: 'startup-failed'; message: string }
  /** GET /metrics reached it: it asks for every process's metrics, aggregated. */
  | { tg: 'metrics-request'; id: number };

/** Primary -> serving process. */
export type PrimaryMessage =
  /** The whole server's readiness: SERVING only while every process is. */
  | { tg: 'cluster-readiness'; status: HealthStatus; reason: string }
  | { tg: 'metrics-reply'; id: number; text?: string; error?: string }
  /** Drain gracefully and exit (a message, not a forwarded signal: see src/cli/serve.ts). */
  | { tg: 'drain' };

/** Ours (not node:cluster's or prom-client's): an object with a `tg` tag. */
function tagged(m: unknown): boolean {
  return typeof m === 'object' && m !== null && typeof (m as { tg?: unknown }).tg === 'string';
}

export const isWorkerMessage = (m: unknown): m is WorkerMessage => tagged(m);
export const isPrimaryMessage = (m: unknown): m is PrimaryMessage => tagged(m);
