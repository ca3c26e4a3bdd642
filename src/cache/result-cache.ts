/**
 * ResultCache: a byte-bounded LRU of inference results for deterministic models, keyed by hashRequest
 * (src/cache/input-hash.ts), with per-entry TTL, coalescing of concurrent identical misses, and
 * invalidation by model/version so a reloaded version never answers with an old version's results.
 *
 * Contracts callers rely on:
 * - Immutability: stored results are deep-frozen copies of the structure (result, outputs array, tensors,
 *   shapes, strings, text labels). Tensor `data` bytes are shared, never copied on a hit (a 1 MiB output
 *   would cost more to copy than to serve), and Node 20 cannot freeze a typed array, so callers must treat
 *   `data` as read-only; the gRPC encoder only reads it. A `data` view that does not own its whole
 *   ArrayBuffer (a pooled Buffer, a slice of a bigger transfer) is copied once when stored, so the bytes
 *   the cache counts are the bytes it keeps alive.
 * - Coalescing: concurrent misses of one key run `compute` once. The first caller (the leader) gets
 *   cached=false; callers that joined the running compute also get cached=false (they waited for it); only
 *   answers from a stored entry say cached=true (and carry `result.cached === true`). `computeMs` on a hit
 *   is the original computation's. The leader's ttlMs applies.
 * - Failure: if compute rejects, every joined caller gets that same error and nothing is stored; the next
 *   call computes again. Exception: CANCELLED / DEADLINE_EXCEEDED belong to the leader's request, so a
 *   joined caller whose own signal has not aborted retries (becoming a leader with its own compute).
 * - Cancellation: a caller whose `signal` aborts gets CANCELLED at once; the shared compute goes on for the
 *   others. `compute` receives a signal that aborts only when every joined caller has aborted: pass THAT
 *   to the scheduler, not the leader's request.signal, or the leader leaving would cancel everyone.
 * - Invalidation: invalidate() drops stored entries and disowns running computes (they still answer the
 *   callers that joined them, since those asked before the invalidation, but their result is not stored).
 */
import { LRUCache } from 'lru-cache';
import { Code, ServingError, cancelled } from '../core/errors';
import type { InferenceResult } from '../core/request';
import type { InferTensor } from '../core/tensor';
import { parseKey } from './input-hash';

/** Per-entry bookkeeping the byte bound charges on top of payload (LRU node, key, objects). */
export const ENTRY_OVERHEAD_BYTES = 256;

/** evict = pushed out by the byte bound, expire = TTL passed, invalidate = dropped by invalidate(). */
export type EvictReason = 'evict' | 'expire' | 'invalidate';
export type EvictListener = (key: string, reason: EvictReason, bytes: number) => void;

export interface ResultCacheOptions {
  maxBytes: number;
  /** Clock in ms for TTLs (tests inject one); default performance.now. */
  now?: () => number;
}

/**
 * misses = computes started (a caller that joined a running compute is `coalesced`, not a miss);
 * invalidations = entries plus running computes dropped by invalidate(); tooLarge = results not stored
 * because one entry would exceed maxBytes; entries may include expired ones not yet looked up.
 */
export interface ResultCacheStats {
  hits: number; misses: number; coalesced: number;
  evictions: number; expirations: number; invalidations: number; tooLarge: number;
  entries: number; bytes: number; maxBytes: number;
}

export interface GetOrComputeOptions {
  /** This caller's cancellation; aborting it rejects only this caller with CANCELLED. */
  signal?: AbortSignal;
}

export type Compute = (signal: AbortSignal) => Promise<InferenceResult>;

interface Entry {
  /** What hits get: the computed result's frozen outputs, cached=true; built once so a hit allocates nothing. */
  hit: InferenceResult;
  size: number;
}

interface Flight {
  key: string;
  promise: Promise<InferenceResult>;
  controller: AbortController;
  /** Joined callers whose signal has not aborted. */
  active: number;
  /** Invalidated: its result must not be stored. */
  stale: boolean;
}

export class ResultCache {
  private readonly cache: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Flight>();
  private readonly listeners = new Set<EvictListener>();
  private readonly maxBytes: number;
  private invalidating = false;
  private readonly counters = { hits: 0, misses: 0, coalesced: 0, evictions: 0, expirations: 0, invalidations: 0, tooLarge: 0 };

  constructor(options: ResultCacheOptions) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= 0) {
      throw new RangeError(`ResultCache maxBytes must be a positive integer, got ${options.maxBytes}`);
    }
    this.maxBytes = options.maxBytes;
    this.cache = new LRUCache<string, Entry>({
      maxSize: options.maxBytes,
      sizeCalculation: (entry) => entry.size,
      // ttlResolution 0: read the clock on every check. The default (1 ms) caches it behind a timer, which
      // would hide an injected clock's jumps and costs a setTimeout per busy millisecond anyway.
      ttlResolution: 0,
      ...(options.now ? { perf: { now: options.now } } : {}),
      dispose: (entry, key, reason) => this.disposed(entry, key, reason),
    });
  }

  async getOrCompute(
    key: string,
    ttlMs: number,
    compute: Compute,
    options: GetOrComputeOptions = {},
  ): Promise<{ result: InferenceResult; cached: boolean }> {
    const { signal } = options;
    for (;;) {
      if (signal?.aborted) throw cancelled('the call was cancelled before its result was ready');
      const entry = this.cache.get(key);
      if (entry) {
        this.counters.hits++;
        return { result: entry.hit, cached: true };
      }
      let flight = this.inflight.get(key);
      const leader = flight === undefined;
      if (flight) {
        this.counters.coalesced++;
      } else {
        this.counters.misses++;
        flight = this.start(key, ttlMs, compute);
      }
      try {
        return { result: await this.join(flight, signal), cached: false };
      } catch (err) {
        // The leader's own deadline or cancellation is not this caller's failure: compute again for it.
        const callerSpecific = err instanceof ServingError && (err.code === Code.CANCELLED || err.code === Code.DEADLINE_EXCEEDED);
        if (!leader && callerSpecific && !signal?.aborted) continue;
        throw err;
      }
    }
  }

  /** Drops every stored entry and running compute of `model` (only `version`, when given); returns how many. */
  invalidate(model: string, version?: string): number {
    const matches = (key: string) => {
      const parsed = parseKey(key);
      return parsed !== undefined && parsed.model === model && (version === undefined || parsed.version === version);
    };
    let dropped = 0;
    this.invalidating = true;
    try {
      for (const key of [...this.cache.keys()]) {
        if (matches(key) && this.cache.delete(key)) dropped++;
      }
    } finally {
      this.invalidating = false;
    }
    for (const [key, flight] of this.inflight) {
      if (!matches(key)) continue;
      flight.stale = true;
      this.inflight.delete(key);
      dropped++;
    }
    this.counters.invalidations += dropped;
    return dropped;
  }

  /** Subscribes to entries leaving the cache (not to overwrites); returns the unsubscribe function. */
  onEvict(listener: EvictListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): ResultCacheStats {
    return { ...this.counters, entries: this.cache.size, bytes: this.cache.calculatedSize, maxBytes: this.maxBytes };
  }

  private start(key: string, ttlMs: number, compute: Compute): Flight {
    const controller = new AbortController();
    const flight: Flight = { key, controller, active: 0, stale: false, promise: undefined as never };
    // Registered before compute runs, so a compute that throws synchronously cannot leave a dead flight.
    this.inflight.set(key, flight);
    flight.promise = (async () => {
      try {
        const result = freezeResult(await compute(controller.signal));
        if (!flight.stale) this.store(key, result, ttlMs);
        return result;
      } finally {
        if (this.inflight.get(key) === flight) this.inflight.delete(key);
      }
    })();
    return flight;
  }

  private join(flight: Flight, signal?: AbortSignal): Promise<InferenceResult> {
    flight.active++;
    if (!signal) return flight.promise;
    return new Promise<InferenceResult>((resolve, reject) => {
      const onAbort = () => {
        reject(cancelled('the call was cancelled while its result was being computed'));
        if (--flight.active > 0) return;
        // Nobody is left waiting: let the scheduler drop the work, and let new callers start afresh.
        if (this.inflight.get(flight.key) === flight) this.inflight.delete(flight.key);
        flight.controller.abort(cancelled('every caller waiting for this result was cancelled'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private store(key: string, result: InferenceResult, ttlMs: number): void {
    // ttlMs <= 0 (or NaN) means "do not keep"; Infinity means no expiry (lru-cache's ttl 0).
    if (!(ttlMs > 0)) return;
    const size = entrySize(key, result);
    if (size > this.maxBytes) {
      this.counters.tooLarge++;
      return;
    }
    const hit = Object.freeze({ ...result, cached: true });
    this.cache.set(key, { hit, size }, { ttl: Number.isFinite(ttlMs) ? Math.ceil(ttlMs) : 0 });
  }

  private disposed(entry: Entry, key: string, reason: LRUCache.DisposeReason): void {
    // 'set' (an identical result overwrote this one) is not a departure; plain deletes only come from invalidate().
    const why: EvictReason | undefined =
      reason === 'evict' || reason === 'expire' ? reason : reason === 'delete' && this.invalidating ? 'invalidate' : undefined;
    if (why === undefined) return;
    if (why === 'evict') this.counters.evictions++;
    if (why === 'expire') this.counters.expirations++;
    for (const listener of this.listeners) {
      // A metrics hook must not break the cache (this runs inside lru-cache's bookkeeping).
      try {
        listener(key, why, entry.size);
      } catch (err) {
        process.emitWarning(`ResultCache onEvict listener threw: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }
}

/** Bytes an entry keeps alive: payload, plus UTF-16 strings, plus fixed per-object overheads. */
function entrySize(key: string, result: InferenceResult): number {
  let size = ENTRY_OVERHEAD_BYTES + key.length * 2;
  for (const t of result.outputs) {
    size += 64 + t.name.length * 2 + t.shape.length * 8 + t.data.byteLength;
    for (const s of t.strings ?? []) size += 16 + s.length * 2;
  }
  if (result.text) {
    size += 64 + result.text.label.length * 2;
    for (const l of result.text.labels) size += 32 + l.label.length * 2;
  }
  return size;
}

function freezeTensor(t: InferTensor): InferTensor {
  // A view into a bigger buffer would pin all of it while the cache counts only the view: compact it.
  const owns = t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength;
  const tensor: InferTensor = { name: t.name, dtype: t.dtype, shape: Object.freeze([...t.shape]) as number[], data: owns ? t.data : new Uint8Array(t.data) };
  if (t.strings !== undefined) tensor.strings = Object.freeze([...t.strings]) as string[];
  return Object.freeze(tensor);
}

/** A deep-frozen structural copy (bytes shared, see the contract above); the caller's objects stay as they were. */
function freezeResult(r: InferenceResult): InferenceResult {
  const result: InferenceResult = { ...r, cached: false, outputs: Object.freeze(r.outputs.map(freezeTensor)) as InferTensor[] };
  if (r.text) {
    const labels = Object.freeze(r.text.labels.map((l) => Object.freeze({ ...l })));
    result.text = Object.freeze({ ...r.text, labels: labels as typeof r.text.labels });
  }
  return Object.freeze(result);
}
