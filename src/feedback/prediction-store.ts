/**
 * PredictionStore: recent classification predictions by request id, so feedback can name one later.
 *
 * Bounded in count and age (lru-cache: the least recently stored entry goes first, and an entry older than the
 * TTL is never returned): at most MAX_PREDICTIONS entries for PREDICTION_TTL_MS. Ids longer than MAX_ID_CHARS are
 * not remembered, which bounds the bytes too: measured full (Node 20, V8 heap after GC), 100,000 entries took
 * 20 MB with UUID ids (198 B each) and 29 MB with 128-character ids (286 B each). Only single-row predictions
 * are remembered (a batch request has one id, and feedback gives one label).
 *
 * The clock is a parameter so a test can age entries without waiting.
 */
import { LRUCache } from 'lru-cache';
import type { Classifier } from './classifier';

/** How many predictions are kept: a server setting would add little; the bound is what matters. */
export const MAX_PREDICTIONS = 100_000;
/** How long a prediction can get feedback: long enough for a person to react, short enough to stay small. */
export const PREDICTION_TTL_MS = 60 * 60 * 1000;
/** Longer request ids are not remembered (their feedback answers NOT_FOUND saying so). */
export const MAX_ID_CHARS = 128;

export interface RememberedPrediction {
  readonly classifier: Classifier;
  /** Index into classifier.labels. */
  readonly predicted: number;
  readonly confidence: number;
  /** Index of the label feedback gave; -1 until then (a prediction takes one feedback). */
  feedback: number;
}

export interface PredictionStoreOptions {
  maxEntries?: number;
  ttlMs?: number;
  /** Milliseconds, monotonic; performance by default. */
  clock?: { now(): number };
}

export class PredictionStore {
  readonly maxEntries: number;
  readonly ttlMs: number;
  private readonly entries: LRUCache<string, RememberedPrediction>;

  constructor(options: PredictionStoreOptions = {}) {
    this.maxEntries = options.maxEntries ?? MAX_PREDICTIONS;
    this.ttlMs = options.ttlMs ?? PREDICTION_TTL_MS;
    this.entries = new LRUCache({
      max: this.maxEntries,
      ttl: this.ttlMs,
      // lru-cache caches the clock for 1 ms by default; an injected clock is read as it is.
      ...(options.clock ? { perf: options.clock, ttlResolution: 0 } : {}),
    });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Remembers a prediction under `id` (replacing an older one under the same id); ids over MAX_ID_CHARS are skipped. */
  remember(id: string, prediction: RememberedPrediction): void {
    if (id.length === 0 || id.length > MAX_ID_CHARS) return;
    this.entries.set(id, prediction);
  }

  /** The prediction under `id`, if it is still kept (not evicted, not older than the TTL). */
  get(id: string): RememberedPrediction | undefined {
    return this.entries.get(id);
  }

  /** Why `id` has no prediction, in one message for never seen, evicted and expired alike. */
  missing(id: string, shown: string): string {
    if (id.length > MAX_ID_CHARS) return `request id ${shown} is longer than ${MAX_ID_CHARS} characters; predictions are remembered only under shorter ids`;
    return `no prediction with request id ${shown} in the last ${describeMs(this.ttlMs)} (kept: at most ${this.maxEntries} single-row classification predictions, under the id their request named: ModelService options.request_id, the v2 id)`;
  }
}

function describeMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
