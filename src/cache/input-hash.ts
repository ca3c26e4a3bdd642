/**
 * The result cache's key: `${model}@${version}:` + a SHA-256 digest of a canonical encoding of everything
 * that decides a deterministic model's answer (inputs, requested outputs, text, pipeline options).
 *
 * Why a cryptographic hash: a key collision would silently serve another request's outputs, and request
 * bytes come from clients, so the hash must resist crafted collisions, not just random ones. Why SHA-256
 * (measured by bench/hash-bench.ts: Node 20.20.2, x64 Xeon with SHA-NI, steady state of 3 runs):
 *
 *   1 MiB:  sha256 ~1950 MB/s = ~535 µs per key (hashRequest whole key ~540 µs); sha1 ~2200 MB/s (~478 µs);
 *           md5 ~840 MB/s (~1240 µs)
 *   256 B:  crypto.hash one-shot sha256 0.38 µs, createHash sha256 0.73 µs; sha1 0.36 / 0.70; md5 0.57 / 0.91;
 *           the whole hashRequest key (encoding + one-shot sha256 + prefix) ~1.2 µs
 *
 * A small request's key costs ~1.2 µs, far under a gRPC round trip (~50-100 µs). sha1 is only ~10% faster
 * and md5 is slower, and both have practical collision attacks, so SHA-256 it is. A 1 MiB input costs
 * ~0.5 ms to key (hashed in place, never copied): worth it only when the model run it saves costs more.
 *
 * Why the encoding is length-prefixed everywhere: without it, ("ab","c") and ("a","bc") would hash alike;
 * with a length before every variable-size field, no two distinct requests share an encoding.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { parseVersionKey, versionKey } from '../core/model-key';
import type { InferTensor } from '../core/tensor';

export interface HashParts {
  model: string;
  version: string;
  inputs: InferTensor[];
  outputs: string[];
  text?: string;
  /** Anything else that changes the answer (e.g. text pipeline settings), pre-serialised by the caller. */
  pipelineOptions?: string;
}

export const HASH_ALGORITHM = 'sha256';
/** Bumped if the encoding changes, so keys from two encodings can never be confused. */
const ENCODING_TAG = 'tensorgate-result-cache-v1';
/** Data chunks at least this big are hashed in place instead of being copied into the scratch buffer. */
const INLINE_LIMIT = 4096;

/**
 * Builds the canonical encoding in as few chunks as possible: small fields go into one scratch buffer, big
 * data is hashed by reference. The scratch is module-level and reused: hashRequest is synchronous, so no
 * two encodings can interleave, and a small request's key allocates nothing but the result string.
 */
let scratch = Buffer.allocUnsafeSlow(4096);
let view = new DataView(scratch.buffer, scratch.byteOffset, scratch.byteLength);

class Encoder {
  private pos = 0;
  /** Where the scratch region not yet pushed to `chunks` starts. */
  private start = 0;
  private readonly chunks: Uint8Array[] = [];

  private reserve(n: number): void {
    if (this.pos + n <= scratch.length) return;
    // Chunks already pushed keep pointing at the old buffer, which stays alive through them.
    const next = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, this.pos + n));
    scratch.copy(next, 0, this.start, this.pos);
    this.pos -= this.start;
    this.start = 0;
    scratch = next;
    view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  u8(v: number): void {
    this.reserve(1);
    scratch[this.pos++] = v;
  }

  /** Lengths, counts and dims as float64: exact for every integer up to 2^53, and negative dims survive. */
  num(v: number): void {
    this.reserve(8);
    view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** UTF-16 code units, not UTF-8: lossless for every JS string (lone surrogates would all become U+FFFD). */
  str(s: string): void {
    const n = s.length * 2;
    this.num(n);
    this.reserve(n);
    this.pos += scratch.write(s, this.pos, n, 'utf16le');
  }

  bytes(data: Uint8Array): void {
    this.num(data.byteLength);
    if (data.byteLength < INLINE_LIMIT) {
      this.reserve(data.byteLength);
      scratch.set(data, this.pos);
      this.pos += data.byteLength;
      return;
    }
    // Big tensors are hashed where they lie: copying 1 MiB would cost about as much as hashing it.
    this.flush();
    this.chunks.push(data);
  }

  private flush(): void {
    if (this.pos === this.start) return;
    this.chunks.push(scratch.subarray(this.start, this.pos));
    this.start = this.pos;
  }

  digest(): string {
    this.flush();
    // Don't keep a scratch that one request with huge strings grew (chunks still reference the old one).
    if (scratch.length > 1 << 20) {
      scratch = Buffer.allocUnsafeSlow(4096);
      view = new DataView(scratch.buffer, scratch.byteOffset, scratch.byteLength);
    }
    // One chunk (every small request): the one-shot crypto.hash skips the Hash object.
    if (this.chunks.length === 1 && typeof oneShotHash === 'function') {
      return oneShotHash(HASH_ALGORITHM, this.chunks[0], 'hex');
    }
    const h = createHash(HASH_ALGORITHM);
    for (const c of this.chunks) h.update(c);
    return h.digest('hex');
  }
}

const byName = (a: InferTensor, b: InferTensor) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The key prefix that `ResultCache.invalidate` matches on. */
export function keyPrefix(model: string, version: string): string {
  return `${versionKey(model, version)}:`;
}

/**
 * Splits a key back into model and version. The digest is hex (no ':'), so the last ':' ends the version
 * key, which parseVersionKey splits (versions hold no '@') even when a model name contains ':' or '@'.
 */
export function parseKey(key: string): { model: string; version: string } | undefined {
  const colon = key.lastIndexOf(':');
  return colon < 0 ? undefined : parseVersionKey(key.slice(0, colon));
}

/**
 * Canonical: the order of inputs and of requested outputs does not matter (both are sorted; input names
 * are unique once validated). Everything else does: name, dtype, shape, data bytes, string elements,
 * text, pipeline options, model and version (also inside the digest, so the digest alone is unambiguous).
 */
export function hashRequest(parts: HashParts): string {
  const e = new Encoder();
  e.str(ENCODING_TAG);
  e.str(parts.model);
  e.str(parts.version);
  const inputs = [...parts.inputs].sort(byName);
  e.num(inputs.length);
  for (const t of inputs) {
    e.str(t.name);
    e.str(t.dtype);
    e.num(t.shape.length);
    for (const d of t.shape) e.num(d);
    e.bytes(t.data);
    // Presence is encoded too, so "no strings" and "zero strings" stay distinct.
    if (t.strings === undefined) {
      e.u8(0);
    } else {
      e.u8(1);
      e.num(t.strings.length);
      for (const s of t.strings) e.str(s);
    }
  }
  const outputs = [...parts.outputs].sort();
  e.num(outputs.length);
  for (const o of outputs) e.str(o);
  for (const optional of [parts.text, parts.pipelineOptions]) {
    if (optional === undefined) {
      e.u8(0);
    } else {
      e.u8(1);
      e.str(optional);
    }
  }
  return keyPrefix(parts.model, parts.version) + e.digest();
}
