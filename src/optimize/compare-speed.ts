/**
 * The speed half of `compare`: both versions run the same batches, interleaved in short rounds (A, B, A, B, ...)
 * so that whatever else the machine does in the meantime slows both alike, until each has run for its time.
 */
import type { InferTensor } from '../core/tensor';
import type { NativeSession } from '../runtime/ort-session';

export interface Speed {
  batch: number;
  /** Timed runs (the warm-up runs not counted). */
  runs: number;
  p50Ms: number;
  p99Ms: number;
  /** Rows over the time ONNX Runtime spent in the timed runs. */
  rowsPerSecond: number;
}

/** Untimed runs of each version before the clock starts, per batch size (first runs allocate and plan). */
const WARMUP_RUNS = 3;
/** One round of a version: runs until this much of its time has passed (at least one run), then the other's turn. */
const ROUND_MS = 10;
/** Different batches cycled through, so a run does not always see the same bytes. */
const DISTINCT_BATCHES = 8;

/** Row indices for the batches of one batch size, cycling through the rows when there are fewer than a batch needs. */
export function batchRows(rowCount: number, batch: number): number[][] {
  const batches = Math.max(1, Math.min(DISTINCT_BATCHES, Math.ceil(rowCount / batch)));
  return Array.from({ length: batches }, (_, k) => Array.from({ length: batch }, (_, i) => (k * batch + i) % rowCount));
}

/**
 * Runs both sessions on `batches` (each `batch` rows) for `seconds` of ONNX Runtime time each. Latency is the
 * run's own time (NativeSession.computeMs: feeds already built, nothing else on the clock). `progress` gets the
 * share of this batch size that is done.
 */
export function measureSpeed(
  sessions: readonly [NativeSession, NativeSession],
  batches: readonly InferTensor[][],
  batch: number,
  seconds: number,
  progress?: (done: number) => void,
): [Speed, Speed] {
  for (let i = 0; i < WARMUP_RUNS; i++) for (const s of sessions) s.run(batches[i % batches.length]!, []);
  const budgetMs = seconds * 1000;
  const latencies: number[][] = [[], []];
  const busy = [0, 0];
  let next = 0;
  for (let turn = 0; busy[0]! < budgetMs || busy[1]! < budgetMs; turn ^= 1) {
    if (busy[turn]! >= budgetMs) continue; // this one has had its time; the other catches up
    let round = 0;
    do {
      const { computeMs } = sessions[turn]!.run(batches[next++ % batches.length]!, []);
      latencies[turn]!.push(computeMs);
      // A floor per run, so that a clock too coarse to see a run still ends the loop.
      busy[turn]! += Math.max(computeMs, 1e-4);
      round += Math.max(computeMs, 1e-4);
    } while (round < ROUND_MS && busy[turn]! < budgetMs);
    progress?.(Math.min(1, Math.min(busy[0]!, busy[1]!) / budgetMs));
  }
  return [summary(latencies[0]!, busy[0]!, batch), summary(latencies[1]!, busy[1]!, batch)];
}

function summary(latencies: number[], busyMs: number, batch: number): Speed {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { batch, runs: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), rowsPerSecond: (batch * sorted.length) / (busyMs / 1000) };
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}
