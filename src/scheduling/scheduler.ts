/**
 * RequestScheduler: the queue between the pipeline and the execution pool. Work waits here, on the main
 * thread, until a worker slot is free; a request whose caller cancelled or whose deadline passed is dropped
 * at that point and never runs (a running inference cannot be cancelled in the Node binding, so this is
 * the last place where dropping is possible).
 *
 * Today it is one FIFO; the dynamic batcher replaces the per-model queue with one that merges requests
 * when a slot frees, behind this same interface.
 */
import { EventEmitter } from 'node:events';
import { cancelled, deadlineExceeded, ServingError } from '../core/errors';
import type { InferTensor } from '../core/tensor';
import type { ExecutionPool, RunResult } from '../runtime/execution-pool';

export interface ScheduledRun {
  /** Session key ("model@version"). */
  key: string;
  inputs: InferTensor[];
  outputs: string[];
  /** Epoch ms; undefined = no deadline. */
  deadline: number | undefined;
  signal: AbortSignal | undefined;
}

interface QueuedRun extends ScheduledRun {
  resolve: (result: RunResult) => void;
  reject: (err: ServingError) => void;
  onAbort?: () => void;
}

/** Emits 'queued' when a run waits for a slot and 'dropped' when one is dropped unrun (cancelled/expired). */
export class RequestScheduler extends EventEmitter {
  private readonly queue: QueuedRun[] = [];

  constructor(private readonly pool: ExecutionPool) {
    super();
    pool.on('slot-free', () => this.pump());
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  submit(run: ScheduledRun): Promise<RunResult> {
    const refusal = whyNotRunnable(run);
    if (refusal) return Promise.reject(refusal);
    return new Promise<RunResult>((resolve, reject) => {
      const queued: QueuedRun = { ...run, resolve, reject };
      if (run.signal) {
        // Answer a cancelled caller at once instead of when its turn comes.
        queued.onAbort = () => {
          const i = this.queue.indexOf(queued);
          if (i >= 0) {
            this.queue.splice(i, 1);
            reject(cancelled('request cancelled by the client while queued'));
            this.emit('dropped', run.key);
          }
        };
        run.signal.addEventListener('abort', queued.onAbort, { once: true });
      }
      this.queue.push(queued);
      this.pump();
      if (this.queue.includes(queued)) this.emit('queued', run.key);
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.pool.hasFreeSlot()) {
      const next = this.queue.shift()!;
      if (next.onAbort) next.signal?.removeEventListener('abort', next.onAbort);
      const refusal = whyNotRunnable(next);
      if (refusal) {
        next.reject(refusal);
        this.emit('dropped', next.key);
        continue;
      }
      this.pool.run(next.key, next.inputs, next.outputs, next.deadline).then(next.resolve, (err: unknown) => next.reject(ServingError.from(err)));
    }
  }
}

function whyNotRunnable(run: ScheduledRun): ServingError | undefined {
  if (run.signal?.aborted) return cancelled('request cancelled by the client before execution');
  if (run.deadline !== undefined && Date.now() >= run.deadline) {
    return deadlineExceeded('deadline passed before execution started; nothing was run');
  }
  return undefined;
}
