/**
 * ResultCache: a byte-bounded LRU of inference results for deterministic models, keyed by hashRequest
 * (src/cache/input-hash.ts), with per-entry TTL, coalescing of concurrent identical misses, and
 * invalidation by model/version so a reloaded version never answers with an old version's results.
 *
 * Contracts callers rely on:
 * - Immutability: stored results are deep-frozen copies of the structure (result, outputs array, tensors,
 *   shapes, strings, text labels). Results with more than PACK_MAX_BYTES of outputs share their `data` bytes
 *   with every hit (a 1 MiB output would cost more to copy than to serve); smaller ones are kept packed in one
 *   string (src/cache/packed-entry.ts: far less work for the garbage collector) and each hit gets a fresh
 *   copy. Node 20 cannot freeze a typed array, so callers must treat `data` as read-only; the gRPC encoder
 *   only reads it. A `data` view that does not own its whole
 *   ArrayBuffer (a pooled Buffer, a slice of a bigger transfer) is copied once when stored, so the bytes
 *   the cache counts are the bytes it keeps alive; several outputs of one result are copied into one
 *   buffer (8-byte aligned views). Frozen shape arrays are shared between entries.
 * - Memory: maxBytes bounds what entries really keep alive (objects, key, lru-cache slots, native buffer
 *   headers: see ENTRY_OVERHEAD_BYTES), not just payload. The V8 heap around them still runs with GC slack.
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
import { Cancellation, type CancelSignal } from '../core/cancellation';
import { LRUCache } from 'lru-cache';
import { Code, ServingError, cancelled } from '../core/errors';
import type { InferenceResult } from '../core/request';
import type { InferTensor } from '../core/tensor';
import { parseKey } from './input-hash';
import { align8, pack, stringBytes, unpack } from './packed-entry';

/**
 * What an entry really costs, so the byte bound bounds memory and not just payload. Measured on Node 20 x64
 * (no pointer compression) with heap snapshots of caches filled with small results, and checked as a total by
 * test/result-cache-memory.test.ts (heapUsed + arrayBuffers after forced GCs). Before this accounting the cache
 * charged 256 bytes per entry while a 40-byte result kept ~800 bytes alive (~1,500 with a text result, whose
 * frozen spread copies each got their own hidden classes), so the heap held 1.5-2.1x the limit.
 *
 * Per entry: the hit object (9 fields) and its two boxed numbers, the outputs array, the key's string header
 * (its characters are added per byte), and lru-cache's slots for it (its key Map and seven parallel arrays,
 * amortised over their doubling).
 */
export const ENTRY_OVERHEAD_BYTES = 352;
/** Tensor object plus its Uint8Array view (the shape array is shared, see internShape). */
const TENSOR_OVERHEAD_BYTES = 160;
/**
 * An off-heap ArrayBuffer: its JS object (~88 bytes) plus V8's native BackingStore and allocator header
 * (~170 bytes, measured from RSS over 500k retained 40-byte buffers), which process.memoryUsage() shows nowhere.
 */
const BUFFER_OVERHEAD_BYTES = 260;
/** The text classification object, its labels array and boxed confidence; then one {label, score} per label. */
const TEXT_OVERHEAD_BYTES = 112;
const LABEL_OVERHEAD_BYTES = 64;
const STRING_OVERHEAD_BYTES = 24;

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
  signal?: CancelSignal;
}

export type Compute = (signal: CancelSignal) => Promise<InferenceResult>;

/**
 * An entry is what hits get: the computed result's frozen outputs with cached=true, built once so a hit
 * allocates nothing; or, for a small result, its packed string (src/cache/packed-entry.ts), which a hit
 * unpacks. No wrapper object: its size is recomputed (deterministically) when it leaves.
 */
type Entry = InferenceResult | string;

/**
 * What a packed entry costs besides its two strings: lru-cache's slots for it (its key Map and seven
 * parallel arrays, amortised over their doubling). Measured as for ENTRY_OVERHEAD_BYTES.
 */
export const PACKED_OVERHEAD_BYTES = 168;

function sizeOf(key: string, entry: Entry): number {
  return typeof entry === 'string' ? PACKED_OVERHEAD_BYTES + stringBytes(key) + stringBytes(entry) : entrySize(key, entry);
}

interface Flight {
  key: string;
  promise: Promise<InferenceResult>;
  controller: Cancellation;
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
      sizeCalculation: (entry, key) => sizeOf(key, entry),
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
      if (entry !== undefined) {
        this.counters.hits++;
        return { result: typeof entry === 'string' ? unpack(entry) : entry, cached: true };
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
    const controller = new Cancellation();
    const flight: Flight = { key, controller, active: 0, stale: false, promise: undefined as never };
    // Registered before compute runs, so a compute that throws synchronously cannot leave a dead flight.
    this.inflight.set(key, flight);
    flight.promise = (async () => {
      try {
        const result = freezeResult(await compute(controller));
        if (!flight.stale) this.store(key, result, ttlMs);
        return result;
      } finally {
        if (this.inflight.get(key) === flight) this.inflight.delete(key);
      }
    })();
    return flight;
  }

  private join(flight: Flight, signal?: CancelSignal): Promise<InferenceResult> {
    flight.active++;
    if (!signal) return flight.promise;
    return new Promise<InferenceResult>((resolve, reject) => {
      const onAbort = () => {
        reject(cancelled('the call was cancelled while its result was being computed'));
        if (--flight.active > 0) return;
        // Nobody is left waiting: let the scheduler drop the work, and let new callers start afresh.
        if (this.inflight.get(flight.key) === flight) this.inflight.delete(flight.key);
        flight.controller.abort();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private store(key: string, result: InferenceResult, ttlMs: number): void {
    // ttlMs <= 0 (or NaN) means "do not keep"; Infinity means no expiry (lru-cache's ttl 0).
    if (!(ttlMs > 0)) return;
    const stored = flatKey(key);
    const entry: Entry = pack(result) ?? withOutputs(result, result.outputs, result.text, true);
    const size = sizeOf(stored, entry);
    if (size > this.maxBytes) {
      this.counters.tooLarge++;
      return;
    }
    this.cache.set(stored, entry, { size, ttl: Number.isFinite(ttlMs) ? Math.ceil(ttlMs) : 0 });
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
        listener(key, why, sizeOf(key, entry));
      } catch (err) {
        process.emitWarning(`ResultCache onEvict listener threw: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }
}

/** Bytes an entry keeps alive: payload, strings it owns, and the measured per-object costs above. */
function entrySize(key: string, result: InferenceResult): number {
  let size = ENTRY_OVERHEAD_BYTES + key.length;
  const buffers = new Set<ArrayBufferLike>();
  for (const t of result.outputs) {
    size += TENSOR_OVERHEAD_BYTES + t.data.byteLength;
    // Numeric outputs of one entry share one buffer (see freezeResult); charge its object and padding once.
    if (t.data.byteLength > 0 && !buffers.has(t.data.buffer)) {
      buffers.add(t.data.buffer);
      size += BUFFER_OVERHEAD_BYTES + Math.max(0, t.data.buffer.byteLength - payloadBytes(result.outputs, t.data.buffer));
    }
    for (const s of t.strings ?? []) size += STRING_OVERHEAD_BYTES + s.length * 2;
  }
  if (result.text) {
    // Label strings are the model config's own, shared by every entry; only the objects are per entry.
    size += TEXT_OVERHEAD_BYTES + LABEL_OVERHEAD_BYTES * result.text.labels.length;
  }
  return size;
}

function payloadBytes(outputs: readonly InferTensor[], buffer: ArrayBufferLike): number {
  let n = 0;
  for (const t of outputs) if (t.data.buffer === buffer) n += t.data.byteLength;
  return n;
}

/**
 * A flat copy of the key. hashRequest returns prefix + digest, a V8 cons string of three heap objects; the
 * entry keeps its key for its whole life, so it keeps one sequential string instead (~60 bytes less).
 */
function flatKey(key: string): string {
  // latin1 round-trips exactly for one-byte strings (any key whose model name is latin1); others stay as given.
  return ONE_BYTE.test(key) ? Buffer.from(key, 'latin1').toString('latin1') : key;
}
const ONE_BYTE = /^[\x00-\xff]*$/;

/**
 * Frozen shape arrays are immutable, so entries of one shape can share one ([1, 10] for every mlp result).
 * Bounded: a model with many distinct output shapes just stops being interned when the table is full.
 */
const SHAPES_MAX = 4096;
const shapes = new Map<string, number[]>();
function internShape(shape: readonly number[]): number[] {
  const id = shape.join(',');
  let shared = shapes.get(id);
  if (!shared) {
    shared = Object.freeze([...shape]) as number[];
    if (shapes.size < SHAPES_MAX) shapes.set(id, shared);
  }
  return shared;
}


/**
 * The outputs' bytes as the cache keeps them: one buffer per entry, owned whole. One output that already
 * owns its whole buffer is kept as it is (no copy); several outputs, or a view into something bigger (a
 * pooled Buffer, a batch's shared output), are copied once into one fresh buffer, so the bytes counted are
 * the bytes kept alive and a multi-output entry pays for one buffer object instead of one per tensor.
 */
function compactData(outputs: readonly InferTensor[]): Uint8Array[] {
  const numeric = outputs.filter((t) => t.data.byteLength > 0);
  const only = numeric[0];
  const owns = (t: InferTensor) => t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength;
  if (numeric.length === 1 && owns(only!)) return outputs.map((t) => (t === only ? t.data : EMPTY));
  let total = 0;
  for (const t of numeric) total = align8(total) + t.data.byteLength;
  const buffer = new ArrayBuffer(total);
  let offset = 0;
  return outputs.map((t) => {
    if (t.data.byteLength === 0) return EMPTY;
    offset = align8(offset);
    const view = new Uint8Array(buffer, offset, t.data.byteLength);
    view.set(t.data);
    offset += t.data.byteLength;
    return view;
  });
}
const EMPTY = new Uint8Array(0);

/**
 * A deep-frozen structural copy (bytes shared, see the contract above); the caller's objects stay as they were.
 * Built from object literals, not spreads: V8 gave each frozen spread copy its own hidden class (three maps
 * and descriptor arrays, ~450 bytes, per text result) and spilled the result's fields to a property array.
 */
function freezeResult(r: InferenceResult): InferenceResult {
  const data = compactData(r.outputs);
  const outputs = Object.freeze(
    r.outputs.map((t, i) => {
      const shape = internShape(t.shape);
      return Object.freeze(
        t.strings === undefined
          ? { name: t.name, dtype: t.dtype, shape, data: data[i]! }
          : { name: t.name, dtype: t.dtype, shape, data: data[i]!, strings: Object.freeze([...t.strings]) as string[] },
      );
    }),
  ) as InferTensor[];
  return withOutputs(r, outputs, freezeText(r.text), false);
}

function freezeText(text: InferenceResult['text']): InferenceResult['text'] {
  if (!text) return undefined;
  const labels = Object.freeze(text.labels.map((l) => Object.freeze({ label: l.label, score: l.score })));
  return Object.freeze({ label: text.label, confidence: text.confidence, labels: labels as typeof text.labels });
}

/** The frozen result object itself, sharing `outputs` and `text`; fields a newer InferenceResult adds are kept too. */
function withOutputs(r: InferenceResult, outputs: InferTensor[], text: InferenceResult['text'], cached: boolean): InferenceResult {
  const { model, version, computeMs, batchRequests, batchRows, queueMs } = r;
  const result: InferenceResult =
    text === undefined
      ? { model, version, outputs, cached, computeMs, batchRequests, batchRows, queueMs }
      : { model, version, outputs, text, cached, computeMs, batchRequests, batchRows, queueMs };
  for (const k of Object.keys(r) as (keyof InferenceResult)[]) {
    if (!(k in result)) (result as unknown as Record<string, unknown>)[k] = r[k];
  }
  return Object.freeze(result);
}
