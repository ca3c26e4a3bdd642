/**
 * The decisions of `--processes N`, as pure functions: how a process's share of the machine is sized, how long
 * a crashed process waits before it is started again, and when the whole server counts as ready.
 */
import type { HealthStatus } from '../api/readiness';
import type { ServerConfig } from '../config/server-config';

/**
 * One process's settings: the machine's cores are divided among the processes, so N processes start the
 * threads one process would (inference workers: cores / N, at most 4, at least 1; ONNX Runtime threads per
 * session: what is left per worker; a solo run's threads: the share). Settings the user gave are kept as given.
 *
 * Why intra-op threads too: left at the single-process default (cores / workers) each process would size its
 * sessions for the whole machine, and ONNX Runtime's pool threads spin while they wait for work, taking CPU
 * from the other processes' main threads, which is what --processes exists to add.
 */
export function shareOfMachine(config: ServerConfig, cores: number): ServerConfig {
  const share = Math.max(1, Math.floor(cores / config.processes));
  const workers = config.workers || Math.min(share, 4);
  const intraOpThreads = config.intraOpThreads || Math.max(1, Math.floor(share / workers));
  return { ...config, workers, intraOpThreads, soloThreads: config.soloThreads || share };
}

/** A process that exits before it was ready, or less than this long after, counts towards a crash loop. */
export const STABLE_AFTER_MS = 30_000;
export const MAX_RESTART_DELAY_MS = 30_000;

/**
 * Delay before a slot's process is started again. `streak` counts its consecutive early exits, this one
 * included (see STABLE_AFTER_MS): the first is restarted at once, then 0.5 s, 1 s, 2 s ... up to 30 s, so a
 * process that cannot start (a model that crashes ONNX Runtime on load) does not spin a core.
 */
export function restartDelayMs(streak: number): number {
  if (streak <= 1) return 0;
  return Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** (streak - 2));
}

/** One slot as the primary sees it. */
export interface SlotState {
  /** 1..N */
  index: number;
  /** Its process's last reported readiness; undefined while it has reported none (starting) or has none (exited). */
  status?: HealthStatus;
  reason?: string;
  /** Set while no process runs in the slot: why (e.g. "exited with code 1; restarting in 2 s"). */
  down?: string;
}

export interface ClusterReadiness {
  status: HealthStatus;
  /** Why not ready; '' when ready. */
  reason: string;
}

/**
 * The server is ready only while every process is: a client's connection goes to any of them, and a process
 * that is loading or restarting would fail the calls it is given. Draining overrides everything.
 */
export function clusterReadiness(slots: readonly SlotState[], draining: boolean): ClusterReadiness {
  if (draining) return { status: 'NOT_SERVING', reason: 'draining: the server is shutting down' };
  const total = slots.length;
  for (const s of slots) {
    const which = `process ${s.index} of ${total}`;
    if (s.down !== undefined) return { status: 'NOT_SERVING', reason: `${which} ${s.down}` };
    if (s.status === undefined) return { status: 'NOT_SERVING', reason: `${which} is starting` };
    if (s.status !== 'SERVING') return { status: 'NOT_SERVING', reason: `${which}: ${s.reason || 'not ready'}` };
  }
  return { status: 'SERVING', reason: '' };
}
