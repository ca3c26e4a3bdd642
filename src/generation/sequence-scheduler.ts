/**
 * SequenceScheduler: the main thread's side of continuous batching. A sequence is pinned to one worker
 * for its whole life (its KV cache lives there); each worker with sequences of a model steps them on its
 * own, one decode step after another (generation/decode-loop.ts), and sequences join and leave between
 * steps. Admission is bounded per worker by the model's max_concurrent_sequences; beyond it, sequences
 * wait (up to max_waiting_sequences, else RESOURCE_EXHAUSTED) for a place on any worker.
 *
 * The scheduler delivers each sequence's tokens to its listener; ending a sequence early (a stop string,
 * a cancelled call) is `end()`: it leaves the batch at the next step and gets no more tokens.
 */
import { deadlineExceeded, internal, ModelRunError, resourceExhausted, ServingError, unavailable } from '../core/errors';
import type { ExecutionPool } from '../runtime/execution-pool';
import type { SoloSessions } from '../scheduling/solo-runs';
import type { DecoderLayout } from './decoder-layout';
import type { AdmitRow, GenTokens, StepToken } from './step-messages';

export interface SequenceListener {
  /** One generated token; with `finish` it is the last. */
  token(token: StepToken): void;
  /** The sequence failed (its worker died, the model's run threw); no more tokens come. */
  fail(error: ServingError): void;
}

export interface SequencePolicy {
  maxSequencesPerWorker: number;
  maxWaiting: number;
}

export interface SequenceHandle {
  /** Leaves the batch (at the next step); no more tokens are delivered. Idempotent. */
  end(): void;
}

interface Lane {
  index: number;
  /** Sequences sent to the worker and not finished, with their listeners. */
  owners: Map<number, SequenceListener>;
}

interface Waiting {
  row: AdmitRow;
  listener: SequenceListener;
  timer: NodeJS.Timeout | undefined;
}

interface ModelLanes {
  layout: DecoderLayout;
  policy: SequencePolicy;
  lanes: Lane[];
  waiting: Waiting[];
  /** Moving average of its decode steps' time on a worker's ordinary session, µs, and the steps seen. */
  typicalStepUs: number;
  steps: number;
}

/** Steps seen before their average may ask for a solo session, and the average's weight of each new one. */
const SOLO_STEPS_SEEN = 8;
const STEP_EWMA_WEIGHT = 1 / 8;

export class SequenceScheduler {
  private readonly models = new Map<string, ModelLanes>();
  private nextSeq = 1;

  /** `solo`: the versions' solo states (the request scheduler's), so a lone stream can decode on every core. */
  constructor(
    private readonly pool: ExecutionPool,
    private readonly solo?: SoloSessions,
  ) {
    pool.on('gen-tokens', (index, tokens) => {
      const model = this.models.get(tokens.key);
      const lane = model?.lanes[index];
      if (!lane) return;
      this.deliver(lane, tokens);
      this.observeStep(model!, index, tokens);
      this.fill(tokens.key, model!);
    });
    pool.on('worker-exit', (index) => {
      const error = unavailable(`inference worker ${index} exited while generating this sequence; retry`);
      for (const [key, model] of this.models) {
        const lane = model.lanes[index];
        if (!lane || lane.owners.size === 0) continue;
        const listeners = [...lane.owners.values()];
        lane.owners.clear();
        for (const l of listeners) l.fail(error);
        this.fill(key, model);
      }
    });
  }

  /**
   * Starts a sequence of `key`. Throws RESOURCE_EXHAUSTED when every worker is full and the waiting line
   * too. A sequence still waiting when `deadline` passes fails DEADLINE_EXCEEDED.
   */
  start(key: string, layout: DecoderLayout, policy: SequencePolicy, row: Omit<AdmitRow, 'seq'>, listener: SequenceListener, deadline?: number): SequenceHandle {
    const model = this.lanesOf(key, layout, policy);
    const admit: AdmitRow = { ...row, seq: this.nextSeq++ };
    const lane = this.laneWithRoom(model);
    if (lane) {
      this.admit(key, model, lane, admit, listener);
    } else {
      if (model.waiting.length >= policy.maxWaiting) {
        throw resourceExhausted(
          `model '${key}' is generating its most sequences (${policy.maxSequencesPerWorker} per worker on ${model.lanes.length} workers) and ${model.waiting.length} more are waiting; retry later`,
        );
      }
      const waiting: Waiting = { row: admit, listener, timer: undefined };
      if (deadline !== undefined) {
        waiting.timer = setTimeout(() => {
          if (this.unwait(model, admit.seq)) listener.fail(deadlineExceeded('the deadline passed while waiting for a place to generate; nothing was generated'));
        }, Math.max(0, deadline - Date.now()));
      }
      model.waiting.push(waiting);
    }
    return { end: () => this.end(key, model, admit.seq) };
  }

  /** Sequences decoding and waiting, per model key. */
  counts(): { key: string; running: number; waiting: number }[] {
    return [...this.models].map(([key, m]) => ({ key, running: m.lanes.reduce((n, l) => n + l.owners.size, 0), waiting: m.waiting.length }));
  }

  /** Fails every sequence of `key`, waiting or running (its version is unloading). */
  forget(key: string, error: ServingError): void {
    const model = this.models.get(key);
    if (!model) return;
    this.models.delete(key);
    for (const w of model.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.listener.fail(error);
    }
    for (const lane of model.lanes) {
      const listeners = [...lane.owners.values()];
      lane.owners.clear();
      for (const l of listeners) l.fail(error);
    }
  }

  private lanesOf(key: string, layout: DecoderLayout, policy: SequencePolicy): ModelLanes {
    let model = this.models.get(key);
    if (!model || model.layout !== layout) {
      model = { layout, policy, waiting: [], lanes: Array.from({ length: this.pool.workerCount }, (_, index) => ({ index, owners: new Map() })), typicalStepUs: 0, steps: 0 };
      this.models.set(key, model);
    }
    model.policy = policy;
    return model;
  }

  /**
   * A step's time feeds the version's solo decision: a model whose steps take milliseconds gets a solo session,
   * and the pool's solo worker then steps a lone batch on it (execution-pool.ts hintSolo); solo steps are
   * measured against lone steps on an ordinary session, and the session is dropped when not clearly faster.
   */
  private observeStep(model: ModelLanes, index: number, tokens: GenTokens): void {
    if (!this.solo || tokens.computeMs <= 0) return;
    const us = tokens.computeMs * 1000;
    // One token per row stepped or prefilled: the rows the step's time was for.
    const rows = tokens.tokens.length + tokens.failed.length;
    const usPerRow = us / Math.max(1, rows);
    if (tokens.solo) {
      this.solo.observeSolo(tokens.key, usPerRow);
      return;
    }
    // (Whether the other workers were idle during the step, as far as the main thread can tell when it ends.)
    if (this.pool.othersIdle(index)) this.solo.of(tokens.key).observeLone(us, rows);
    model.typicalStepUs = model.steps === 0 ? us : model.typicalStepUs + (us - model.typicalStepUs) * STEP_EWMA_WEIGHT;
    if (++model.steps >= SOLO_STEPS_SEEN) this.solo.observe(tokens.key, model.typicalStepUs);
  }

  private laneWithRoom(model: ModelLanes): Lane | undefined {
    let best: Lane | undefined;
    for (const lane of model.lanes) {
      if (lane.owners.size < model.policy.maxSequencesPerWorker && (!best || lane.owners.size < best.owners.size)) best = lane;
    }
    return best;
  }

  private admit(key: string, model: ModelLanes, lane: Lane, row: AdmitRow, listener: SequenceListener): void {
    lane.owners.set(row.seq, listener);
    try {
      this.pool.joinSequences(lane.index, { key, layout: model.layout, admit: [row] });
    } catch (err) {
      lane.owners.delete(row.seq);
      throw err;
    }
  }

  private end(key: string, model: ModelLanes, seq: number): void {
    if (this.unwait(model, seq)) return;
    for (const lane of model.lanes) {
      if (!lane.owners.delete(seq)) continue;
      this.dropSafely(key, lane, seq);
      this.fill(key, model);
      return;
    }
  }

  /** Tells the worker a sequence left (nothing to tell once the pool is closing: the worker goes too). */
  private dropSafely(key: string, lane: Lane, seq: number): void {
    try {
      this.pool.dropSequences(lane.index, { key, drop: [seq] });
    } catch {
      // closing
    }
  }

  private unwait(model: ModelLanes, seq: number): boolean {
    const i = model.waiting.findIndex((w) => w.row.seq === seq);
    if (i < 0) return false;
    clearTimeout(model.waiting[i]!.timer);
    model.waiting.splice(i, 1);
    return true;
  }

  /** Moves waiting sequences onto workers with room (one that cannot be sent fails, the others go on). */
  private fill(key: string, model: ModelLanes): void {
    while (model.waiting.length > 0) {
      const lane = this.laneWithRoom(model);
      if (!lane) return;
      const next = model.waiting.shift()!;
      clearTimeout(next.timer);
      try {
        this.admit(key, model, lane, next.row, next.listener);
      } catch (err) {
        failSafely(next.listener, ServingError.from(err));
      }
    }
  }

  private deliver(lane: Lane, reply: GenTokens): void {
    for (const t of reply.tokens) {
      const listener = lane.owners.get(t.seq);
      if (!listener) continue; // ended by the main thread meanwhile; the worker drops it before its next step
      if (t.finish) lane.owners.delete(t.seq);
      try {
        listener.token(t);
      } catch (err) {
        // A listener that throws fails its own sequence (which leaves the batch), never the others in the step.
        if (lane.owners.delete(t.seq)) this.dropSafely(reply.key, lane, t.seq);
        failSafely(listener, internal(`generation failed: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
    for (const f of reply.failed) {
      const listener = lane.owners.get(f.seq);
      lane.owners.delete(f.seq);
      listener?.fail(new ModelRunError(`the model failed while generating: ${f.message}`));
    }
  }
}

function failSafely(listener: SequenceListener, error: ServingError): void {
  try {
    listener.fail(error);
  } catch {
    // nothing more can be done for this sequence
  }
}
