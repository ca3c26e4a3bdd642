/**
 * Per-model-version circuit breakers on opossum. A version whose inferences keep failing server-side is
 * refused at once with UNAVAILABLE (instead of queueing work that will fail) until a probe shows that it
 * has recovered. Client errors never count: a flood of bad requests must not take a model offline.
 *
 * opossum behaviours this module works around:
 * - errors passed by errorFilter are recorded as *successes*, and any success in half-open closes the
 *   breaker, so a probe that was cancelled or expired would close it; here such a probe re-opens it.
 * - a capacity (semaphore) rejection also goes through errorFilter (success or failure, never neutral), so
 *   the bulkhead is counted here, outside opossum, and touches no statistics.
 * - the rolling window is not reset on close; here it is flushed so a closed breaker starts afresh.
 */
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { Code, resourceExhausted, SERVER_ERROR_CODES, ServingError, unavailable } from '../core/errors';
import type { BreakerConfig } from './breaker-config';

export type BreakerState = 'closed' | 'open' | 'half_open';
export interface BreakerTransition { key: string; from: BreakerState; to: BreakerState; reason: string }
export interface BreakerStateInfo { key: string; state: BreakerState; nextProbeAt: number | undefined }


/**
 * True when a failure says the model version is unhealthy. Client errors (bad input, unknown names,
 * cancellation, queue limits, a deadline the client set too tight) do not. DEADLINE_EXCEEDED counts only
 * when the worker pool flags it `serverFault` (its execution timeout: the model itself was too slow).
 * Anything that is not a ServingError is an unexpected bug or crash, so it counts.
 */
export function isServerFault(err: unknown): boolean {
  if (!(err instanceof ServingError)) return true;
  if (err.code === Code.DEADLINE_EXCEEDED) return (err as { serverFault?: boolean }).serverFault === true;
  return SERVER_ERROR_CODES.has(err.code);
}

type Run = () => Promise<unknown>;

const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))}s`;

function describe(err: unknown): string {
  const text = err instanceof ServingError ? `${Code[err.code]}: ${err.message}` : err instanceof Error ? err.message : String(err);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** opossum marks its own rejections with a private symbol; guard because isOurError throws on null. */
const opossumCode = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && CircuitBreaker.isOurError(err as Error) ? (err as { code?: string }).code : undefined;

/**
 * One circuit breaker for one model version. Emits 'state' with a BreakerTransition on every change.
 * Listeners run inside opossum's own event dispatch, so they must not throw.
 */
export interface BreakerEvents {
  state: [transition: BreakerTransition];
}

export class ModelBreaker extends EventEmitter<BreakerEvents> {
  private readonly breaker: CircuitBreaker<[Run], unknown>;
  /** opossum rotates its window on our events, so close() can flush it and shutdown() owns the timer. */
  private readonly rotator = new EventEmitter();
  private readonly rotateTimer: NodeJS.Timeout | undefined;
  private current: BreakerState = 'closed';
  private why = '';
  private probeAt: number | undefined;
  private lastFailure: unknown;
  private inconclusiveProbe = false;
  private inFlight = 0;

  constructor(
    readonly key: string,
    readonly model: string,
    readonly version: string,
    readonly config: BreakerConfig,
  ) {
    super();
    // One breaker wraps any call: the action just runs the function it is given.
    this.breaker = new CircuitBreaker<[Run], unknown>((run) => run(), {
      name: key,
      enabled: config.enabled,
      timeout: false, // a running inference cannot be cancelled; the worker pool times executions
      errorThresholdPercentage: config.error_threshold_percentage,
      volumeThreshold: config.volume_threshold,
      allowWarmUp: false, // volumeThreshold already keeps the first few failures from tripping it
      rollingCountTimeout: config.rolling_window_ms,
      rollingCountBuckets: config.rolling_buckets,
      resetTimeout: config.reset_timeout_ms,
      // Off: percentiles sort every latency in the window on each failure; snapshots are one more timer.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: this.rotator,
      errorFilter: (err: unknown) => this.ignored(err),
    });
    if (config.enabled) {
      const bucketMs = config.rolling_window_ms / config.rolling_buckets;
      // unref: a breaker must never keep the process alive (opossum unrefs its reset timer too).
      this.rotateTimer = setInterval(() => this.rotator.emit('rotate'), bucketMs).unref();
    }
    this.breaker.on('failure', (err: unknown) => (this.lastFailure = err));
    this.breaker.on('open', () => this.onOpen());
    this.breaker.on('halfOpen', () =>
      this.transition('half_open', `open for ${seconds(config.reset_timeout_ms)}; letting one probe request through`),
    );
    this.breaker.on('close', () => {
      // Start the closed state with an empty window: the failures that opened it are history.
      for (let i = 0; i < config.rolling_buckets; i++) this.rotator.emit('rotate');
      this.transition('closed', 'the recovery probe succeeded');
    });
  }

  /** After shutdown the breaker refuses every call, so it reads as 'open' (with no probe to come). */
  get state(): BreakerState {
    return this.breaker.isShutdown ? 'open' : this.current;
  }

  /** Epoch ms of the next half-open probe while open; undefined otherwise. */
  get nextProbeAt(): number | undefined {
    return this.breaker.isShutdown || this.current !== 'open' ? undefined : this.probeAt;
  }

  get isShutdown(): boolean {
    return this.breaker.isShutdown;
  }

  /**
   * Runs `run` through the breaker. Rejects at once with UNAVAILABLE while open (or half-open with the
   * probe in flight) and RESOURCE_EXHAUSTED over capacity; otherwise settles as `run` does.
   */
  async fire<T>(run: () => Promise<T>): Promise<T> {
    const admitted = this.breaker.closed || this.breaker.pendingClose;
    // Only calls opossum would admit are capacity-checked: an open breaker's answer is more useful, and a
    // half-open breaker keeps its probe slot for the next call that fits.
    if (admitted && this.config.capacity > 0 && this.inFlight >= this.config.capacity) {
      throw resourceExhausted(
        `model '${this.model}' version ${this.version} is at its concurrency limit of ${this.config.capacity}; retry shortly`,
      );
    }
    this.inFlight++;
    try {
      return (await this.breaker.fire(run)) as T;
    } catch (err) {
      throw this.translate(err);
    } finally {
      this.inFlight--;
    }
  }

  /** Stops all timers; later calls reject with UNAVAILABLE. */
  shutdown(): void {
    if (this.rotateTimer) clearInterval(this.rotateTimer);
    this.breaker.shutdown();
  }

  /** opossum's errorFilter: true = do not count this error as a failure. Must never throw. */
  private ignored(err: unknown): boolean {
    if (opossumCode(err) !== undefined) return true;
    if (isServerFault(err)) return false;
    if (this.breaker.halfOpen) {
      // opossum would record a filtered error as a success and close; a probe that never really ran
      // proves nothing, so count it and let the breaker re-open and probe again later.
      this.inconclusiveProbe = true;
      return false;
    }
    return true;
  }

  private onOpen(): void {
    this.probeAt = Date.now() + this.config.reset_timeout_ms;
    const last = describe(this.lastFailure);
    if (this.current === 'half_open') {
      this.why = this.inconclusiveProbe
        ? `re-opened because the recovery probe ended with ${last}, which is not a server fault and proves nothing`
        : `re-opened because the recovery probe failed with ${last}`;
    } else {
      const { failures, fires } = this.breaker.stats;
      this.why = `opened after ${failures} of ${fires} calls failed in the last ${seconds(this.config.rolling_window_ms)} (last error: ${last})`;
    }
    this.inconclusiveProbe = false;
    this.transition('open', this.why);
  }

  private transition(to: BreakerState, reason: string): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    this.emit('state', { key: this.key, from, to, reason } satisfies BreakerTransition);
  }

  private translate(err: unknown): unknown {
    const where = `model '${this.model}' version ${this.version}`;
    switch (opossumCode(err)) {
      case 'EOPENBREAKER': {
        if (this.current === 'half_open') {
          return unavailable(
            `${where} is unavailable: circuit breaker half_open, a probe request is testing recovery now (${this.why}); ` +
              `if it fails the next probe is in ${seconds(this.config.reset_timeout_ms)}`,
          );
        }
        const at = this.probeAt ?? Date.now();
        return unavailable(
          `${where} is unavailable: circuit breaker open, ${this.why}; next probe at ${new Date(at).toISOString()} ` +
            `(in ${seconds(Math.max(0, at - Date.now()))})`,
        );
      }
      case 'ESHUTDOWN':
        return unavailable(`${where} is unavailable: it was unloaded and its circuit breaker shut down`);
      case 'ESEMLOCKED': // not used (capacity is counted above), kept so no opossum error leaks out raw
        return resourceExhausted(`${where} is at its concurrency limit of ${this.config.capacity}; retry shortly`);
      default:
        return err;
    }
  }
}

const sameConfig = (a: BreakerConfig, b: BreakerConfig) =>
  a === b || (Object.keys(a) as (keyof BreakerConfig)[]).every((k) => a[k] === b[k]);

/**
 * The breakers of all loaded versions, by session key ("mlp@1"). Re-emits every breaker's 'state'.
 * get() is cheap enough to call per request.
 */
export class BreakerRegistry extends EventEmitter<BreakerEvents> {
  private readonly breakers = new Map<string, ModelBreaker>();

  /** The breaker for `key`, created on first use; a changed config replaces it (starting closed). */
  get(key: string, model: string, version: string, config: BreakerConfig): ModelBreaker {
    const existing = this.breakers.get(key);
    if (existing && sameConfig(existing.config, config)) return existing;
    existing?.shutdown();
    const breaker = new ModelBreaker(key, model, version, config);
    breaker.on('state', (t: BreakerTransition) => this.emit('state', t));
    this.breakers.set(key, breaker);
    return breaker;
  }

  /** Shuts down and forgets the breaker of an unloaded version; false if there was none. */
  remove(key: string): boolean {
    const breaker = this.breakers.get(key);
    if (!breaker) return false;
    breaker.shutdown();
    return this.breakers.delete(key);
  }

  states(): BreakerStateInfo[] {
    return [...this.breakers.values()].map((b) => ({ key: b.key, state: b.state, nextProbeAt: b.nextProbeAt }));
  }

  shutdown(): void {
    for (const breaker of this.breakers.values()) breaker.shutdown();
    this.breakers.clear();
  }
}
