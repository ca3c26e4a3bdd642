/**
 * SoloRuns: whether one model version's executions may run "solo", on a session with every core of the
 * process (ExecutionPool.loadSolo), when nothing else runs or waits.
 *
 * The workers split the cores between them (two workers of one ONNX Runtime thread each on 2 cores), which
 * is right under load, when every worker has a run, and wasteful for a lone request of a model whose runs
 * take milliseconds: it runs on one core while the other idles. A solo run gives it both.
 *
 * - A version may never run solo when its config.yaml fixes its threads, when it runs on another execution
 *   provider, or when the pool cannot make a session with more threads than it already has.
 * - Its solo session is made once its typical run on a worker reaches SOLO_MIN_RUN_US (so a cheap model never
 *   pays a second session's memory), on the pool's solo worker, warmed up with a request it has served.
 * - An execution runs solo when the session is ready, the version's typical run is still that long, nothing
 *   else is queued (the pool checks that no worker is busy): under load every execution takes one core.
 * - Generation: a model whose decode steps take that long gets one the same way (sequence-scheduler.ts), and
 *   the pool's solo worker steps its batch on it while no other worker has work (execution-pool.ts hintSolo),
 *   going back to its ordinary session between two steps when another worker gets some.
 */
import { EventEmitter } from 'node:events';
import { ServingError } from '../core/errors';
import type { InferTensor } from '../core/tensor';
import type { ExecutionPool } from '../runtime/execution-pool';
import type { WarmupRun } from '../runtime/messages';
import { toWire } from '../runtime/wire-tensors';
import type { SoloEvent } from './schedule-types';

/** Typical worker run (µs) from which a version gets a solo session: below it, waking a second thread for
 *  each parallel section costs about what it saves (measured: `mlp` with two threads, ~20 µs runs, 21% slower). */
export const SOLO_MIN_RUN_US = 1000;
/** Warm-up runs of a new solo session (its first runs allocate and are several times slower). */
export const SOLO_WARMUP_RUNS = 4;
/**
 * Runs compared on each side: lone runs on an ordinary session (needed before a solo session is made), then
 * the solo session's first runs, after which it is kept only when its median time per row is at most
 * SOLO_KEEP_RATIO of the ordinary one's. Why measure: whether more threads pay depends on how much work each
 * of the model's operators has, not on the run's length (measured: `convnet`, 3 ms runs, 45% faster solo;
 * `tiny-lm`, 1 ms decode steps of many small operators, 3-15% faster or slower from one run to the next).
 * Why a 20% margin: the run's own time leaves out what its second thread takes from the main thread and the
 * client on the same cores (tiny-lm's steps measured 10% faster solo while its stream was 8% slower).
 */
export const SOLO_SAMPLES = 16;
export const SOLO_KEEP_RATIO = 0.8;

export type SoloState = 'off' | 'not_yet' | 'loading' | 'ready';

export class SoloRuns {
  state: SoloState;
  reason: string;
  /** Executions and decode steps that ran solo. */
  runs = 0;
  /** The last SOLO_SAMPLES runs on an ordinary session that started with every worker idle: µs per row, and µs. */
  private readonly loneUs: number[] = [];
  private readonly loneRunUs: number[] = [];
  /** µs per row of the solo session's first SOLO_SAMPLES runs; undefined once judged. */
  private soloUs: number[] | undefined = [];

  constructor(
    ineligible: string | undefined,
    private readonly threads: number,
  ) {
    this.state = ineligible ? 'off' : 'not_yet';
    this.reason = ineligible ?? `a solo session with ${threads} threads is made once its runs take ${SOLO_MIN_RUN_US} µs or more`;
  }

  /** A run of `rows` rows on an ordinary session that started while no worker had anything else: the baseline a solo session must beat. */
  observeLone(runUs: number, rows: number): void {
    this.loneUs.push(runUs / Math.max(1, rows));
    this.loneRunUs.push(runUs);
    if (this.loneUs.length > SOLO_SAMPLES) {
      this.loneUs.shift();
      this.loneRunUs.shift();
    }
  }

  /**
   * After a run on a worker: true (once) when the solo session should be made now: the typical run and the
   * median of the lone runs both reach SOLO_MIN_RUN_US. (Not the typical run alone: a moving average starts at
   * the first run, which pays a new session's first-run costs, so a cheap model looks slow for its first runs.)
   */
  shouldLoad(typicalRunUs: number): boolean {
    if (this.state !== 'not_yet' || typicalRunUs < SOLO_MIN_RUN_US || this.loneRunUs.length < SOLO_SAMPLES / 2 || median(this.loneRunUs) < SOLO_MIN_RUN_US) return false;
    this.state = 'loading';
    this.reason = `its runs take ${typicalRunUs.toFixed(0)} µs: a solo session with ${this.threads} threads is being made`;
    return true;
  }

  loaded(): void {
    this.state = 'ready';
    this.reason = `an execution or decode step with no other work running or waiting uses a session with ${this.threads} threads (being measured against one worker's session)`;
  }

  failed(why: string): void {
    this.state = 'off';
    this.reason = `its solo session could not be made: ${why}`;
  }

  /**
   * A solo run took `usPerRow`. Once SOLO_SAMPLES have: 'kept' when their median per row is at most
   * SOLO_KEEP_RATIO of the lone ordinary runs', else 'dropped' (the state is then off, and the session should go).
   */
  observeSolo(usPerRow: number): 'kept' | 'dropped' | undefined {
    this.runs++;
    if (!this.soloUs) return undefined;
    this.soloUs.push(usPerRow);
    if (this.soloUs.length < SOLO_SAMPLES) return undefined;
    const solo = median(this.soloUs);
    const lone = median(this.loneUs);
    this.soloUs = undefined;
    const measured = `measured ${solo.toFixed(0)} µs per row solo against ${lone.toFixed(0)} on one worker's session`;
    if (solo <= SOLO_KEEP_RATIO * lone) {
      this.reason = `an execution or decode step with no other work running or waiting uses a session with ${this.threads} threads: ${measured}`;
      return 'kept';
    }
    this.state = 'off';
    this.reason = `its solo session was not ${Math.round((1 - SOLO_KEEP_RATIO) * 100)}% faster, so it was dropped: ${measured}`;
    return 'dropped';
  }

  /** Whether an execution that starts now, with `othersWaiting` false, should ask for the solo session. */
  wants(typicalRunUs: number, othersWaiting: boolean): boolean {
    return this.state === 'ready' && !othersWaiting && typicalRunUs >= SOLO_MIN_RUN_US;
  }
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[sorted.length >> 1]!;
}

/**
 * Every version's SoloRuns, shared by the request scheduler (executions) and the sequence scheduler (decode
 * steps, which the pool's solo worker takes on its solo session while no other worker has work), and the one
 * place a solo session is asked for. Emits 'solo' when a session is ready or could not be made.
 */
export class SoloSessions extends EventEmitter<{ solo: [event: SoloEvent] }> {
  private readonly versions = new Map<string, SoloRuns>();

  constructor(private readonly pool: ExecutionPool) {
    super();
  }

  /** `key`'s state, made on first use from what the pool says of its session (call once the version is loaded). */
  of(key: string): SoloRuns {
    let solo = this.versions.get(key);
    if (!solo) this.versions.set(key, (solo = new SoloRuns(this.pool.soloIneligibility(key), this.pool.soloThreads)));
    return solo;
  }

  forget(key: string): void {
    this.versions.delete(key);
  }

  /** A solo run or decode step of `key` took `usPerRow`: counts it, and drops the session once measured not clearly faster. */
  observeSolo(key: string, usPerRow: number): void {
    const solo = this.of(key);
    const verdict = solo.observeSolo(usPerRow);
    if (!verdict) return;
    if (verdict === 'dropped') this.pool.unloadSolo(key);
    this.emit('solo', { key, state: solo.state, reason: solo.reason });
  }

  /**
   * After a run or decode step of `key` that was not solo, with the version's typical time now `typicalRunUs`:
   * makes its solo session when that is due, warmed up with `served` (an input it has run) when there is one.
   */
  observe(key: string, typicalRunUs: number, served?: { inputs: readonly InferTensor[] }): void {
    const solo = this.of(key);
    if (!solo.shouldLoad(typicalRunUs)) return;
    const settled = (failed: boolean) => {
      // (A version forgotten meanwhile is gone: nothing to say about it.)
      if (this.versions.get(key) === solo) this.emit('solo', { key, state: solo.state, reason: solo.reason, ...(failed ? { failed } : {}) });
    };
    this.pool.loadSolo(key, soloWarmup(served)).then(
      () => {
        solo.loaded();
        settled(false);
      },
      (err: unknown) => {
        solo.failed(ServingError.from(err).message);
        settled(true);
      },
    );
  }
}

/** A warm-up from one input the version has run (a solo session is made while serving, without config warm-ups of its own). */
export function soloWarmup(input: { inputs: readonly InferTensor[] } | undefined): WarmupRun[] {
  if (!input) return [];
  // Copied: the request's buffers stay with it (and a warm-up is kept, to make the session again on a replacement worker).
  const inputs = input.inputs.map((t) => toWire(t, [], false));
  return [{ name: 'a request it has served', count: SOLO_WARMUP_RUNS, inputs }];
}
