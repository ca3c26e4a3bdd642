/**
 * Small cached results kept as one string each. A full cache of small results is hundreds of thousands of
 * entries; as objects each costs the garbage collector ~7 objects to trace (result, outputs array, tensor,
 * view, ArrayBuffer with its native extension, boxed numbers) on every full collection, and those pauses
 * reach health checks (the soak: max pauses of 180-740 ms with a full cache against 66 ms without). A
 * one-byte string holds no pointers and has no native part: the collector marks it and moves on. A hit pays
 * for it by rebuilding the result (a small JSON.parse and one buffer; the bytes are copied, which is why only
 * small results are packed).
 *
 * Layout: JSON metadata, '\n' (JSON.stringify never emits a raw newline), then every output's bytes as
 * latin1 characters, one char per byte, in order.
 */
import type { DataTypeName } from '../core/dtype';
import type { InferenceResult } from '../core/request';
import type { InferTensor } from '../core/tensor';

/** Results with more output bytes than this stay objects: copying them on every hit would cost more. */
export const PACK_MAX_BYTES = 1024;
// unpack() takes its buffer from Node's pool, which serves only allocations below half its size.
if (PACK_MAX_BYTES >= Buffer.poolSize >>> 1) throw new Error('PACK_MAX_BYTES must stay below the Buffer pool cut-off');

/** The fields a packed result carries; a result with anything else is not packed (nothing may be lost). */
const PACKED_FIELDS = new Set(['model', 'version', 'outputs', 'cached', 'computeMs', 'batchRequests', 'batchRows', 'queueMs']);

type PackedMeta = [model: string, version: string, computeMs: number, queueMs: number, batchRequests: number, batchRows: number, outputs: [name: string, dtype: DataTypeName, shape: number[], bytes: number][]];

/** The packed form of `r`, or undefined when it must stay an object (large, strings, text, extra fields). */
export function pack(r: InferenceResult): string | undefined {
  let bytes = 0;
  for (const t of r.outputs) {
    if (t.strings !== undefined) return undefined;
    bytes += t.data.byteLength;
  }
  if (bytes > PACK_MAX_BYTES || r.text !== undefined) return undefined;
  for (const k of Object.keys(r)) if (!PACKED_FIELDS.has(k)) return undefined;
  const meta: PackedMeta = [r.model, r.version, r.computeMs, r.queueMs, r.batchRequests, r.batchRows, r.outputs.map((t) => [t.name, t.dtype, [...t.shape], t.data.byteLength])];
  // ASCII JSON (names may hold any character), so every char of the result is one byte.
  const json = JSON.stringify(meta).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  // Built in one buffer and decoded once: one flat string, not a rope of pieces pointing at each other.
  const all = Buffer.allocUnsafe(json.length + 1 + bytes);
  let at = all.write(json, 0, 'latin1');
  all[at++] = 0x0a;
  for (const t of r.outputs) {
    all.set(t.data, at);
    at += t.data.byteLength;
  }
  return all.toString('latin1');
}

/** Where an output starts in a buffer of several: 8-byte aligned, so typed-array views of any dtype work. */
export const align8 = (n: number) => (n + 7) & ~7;

/** Rebuilds a packed result as a frozen hit (cached: true); each output's bytes 8-byte aligned in one buffer. */
export function unpack(packed: string): InferenceResult {
  const split = packed.indexOf('\n');
  const [model, version, computeMs, queueMs, batchRequests, batchRows, specs] = JSON.parse(packed.slice(0, split)) as PackedMeta;
  let total = 0;
  for (const [, , , bytes] of specs) total = align8(total) + bytes;
  // From Node's pool (PACK_MAX_BYTES is under its 4 KiB cut-off), 8-byte aligned: a fresh ArrayBuffer per hit
  // costs a native allocation and extra collector work (measured: ~50 us more main thread per cache hit).
  const buffer = Buffer.allocUnsafe(total);
  let read = split + 1;
  let offset = 0;
  const outputs = specs.map(([name, dtype, shape, bytes]): InferTensor => {
    offset = align8(offset);
    buffer.write(packed.slice(read, read + bytes), offset, bytes, 'latin1');
    const data = new Uint8Array(buffer.buffer, buffer.byteOffset + offset, bytes);
    read += bytes;
    offset += bytes;
    return Object.freeze({ name, dtype, shape: Object.freeze(shape) as number[], data });
  });
  return Object.freeze({ model, version, outputs: Object.freeze(outputs) as InferTensor[], cached: true, computeMs, batchRequests, batchRows, queueMs });
}

/** A V8 sequential string: a 16-byte header and its characters (one byte each when all are latin1), in 8-byte steps. */
export const stringBytes = (s: string) => align8(16 + (NOT_ONE_BYTE.test(s) ? 2 * s.length : s.length));
const NOT_ONE_BYTE = /[^\x00-\xff]/;
