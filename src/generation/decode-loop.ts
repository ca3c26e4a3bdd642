/**
 * DecodeLoop: runs in an inference worker and steps every model's batch of sequences on its own, one step
 * after another while any has rows, posting each step's tokens to the main thread. It does not wait for the
 * main thread between steps: when it did (the main thread sent each step), every token paid two thread
 * wake-ups and the main thread's delivery, which measured 1.1 ms per step on top of a 2-3 ms run for one
 * stream of tiny-lm (bench/results/generation-2026-12-02-1132.md). Steps are separate macrotasks
 * (setImmediate), so joins, drops and Predict runs sent to this worker are handled between them.
 */
import type { NativeSession } from '../runtime/ort-session';
import { DecodeEngine } from './decode-engine';
import type { GenDrop, GenJoin, GenStepRequest, GenTokens } from './step-messages';

export class DecodeLoop {
  private readonly engines = new Map<string, DecodeEngine>();
  /** Joins and drops received since each model's last step. */
  private readonly queued = new Map<string, GenStepRequest>();
  private scheduled = false;

  constructor(
    /** The session to step `key` on now, and whether it is the solo one (asked before every step). */
    private readonly sessionOf: (key: string) => { session: NativeSession; solo: boolean } | undefined,
    private readonly post: (tokens: GenTokens) => void,
    /** Called before each step of `key` (the worker's run counter and its test hook). */
    private readonly beforeStep: (key: string) => void = () => undefined,
  ) {}

  join(message: GenJoin): void {
    if (!this.engines.has(message.key)) {
      const session = this.sessionOf(message.key);
      if (!session) {
        this.post({ key: message.key, tokens: [], failed: message.admit.map((r) => ({ seq: r.seq, message: `session '${message.key}' is not loaded in this worker` })), computeMs: 0, active: 0 });
        return;
      }
      this.engines.set(message.key, new DecodeEngine(message.layout));
    }
    this.queue(message.key).admit.push(...message.admit);
    this.schedule();
  }

  drop(message: GenDrop): void {
    if (!this.engines.has(message.key)) return;
    this.queue(message.key).drop.push(...message.drop);
    this.schedule();
  }

  /** The model's session is going: its sequences go with it (the main thread has already failed them). */
  forget(key: string): void {
    this.engines.delete(key);
    this.queued.delete(key);
  }

  /**
   * Drops every sequence and steps no more (before the worker is terminated: terminating a thread inside
   * an ONNX Runtime run aborts the process). A step already scheduled finds nothing to do.
   */
  halt(): void {
    this.engines.clear();
    this.queued.clear();
  }

  private queue(key: string): GenStepRequest {
    let q = this.queued.get(key);
    if (!q) this.queued.set(key, (q = { admit: [], drop: [] }));
    return q;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.stepAll());
  }

  private stepAll(): void {
    this.scheduled = false;
    let busy = false;
    for (const [key, engine] of this.engines) {
      const work = this.queued.get(key) ?? { admit: [], drop: [] };
      this.queued.delete(key);
      if (engine.active === 0 && work.admit.length === 0 && work.drop.length === 0) continue;
      const current = this.sessionOf(key);
      if (!current) {
        this.forget(key); // unloaded: the main thread has failed its sequences
        continue;
      }
      this.beforeStep(key);
      this.post({ key, ...engine.step(work, current.session), ...(current.solo ? { solo: true } : {}) });
      busy ||= engine.active > 0;
    }
    if (busy || this.queued.size > 0) this.schedule();
  }
}
