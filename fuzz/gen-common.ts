/**
 * Arbitraries every target's generator shares: names (valid, empty, unicode, overlong), dtypes right and wrong,
 * shapes (agreeing with the data or not, negative, huge), numbers (finite and not), and byte-level mutations of
 * an encoded valid message. Everything is fast-check, so each input is a pure function of its seed.
 */
import fc from 'fast-check';

/** Marks a place in a string field where the encoded bytes become invalid UTF-8 (see withInvalidUtf8). */
export const BAD_UTF8_MARK = '\u0001BADUTF8\u0001';
const MARK_BYTES = Buffer.from(BAD_UTF8_MARK, 'utf8');
/** Same length as the mark, so length prefixes stay right: a lone continuation byte, an overlong form, a surrogate, 0xff. */
const BAD_BYTES = Buffer.from([0x80, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff, 0xfe, 0x41]);
if (BAD_BYTES.length !== MARK_BYTES.length) throw new Error('BAD_BYTES must be as long as the mark');

/** Replaces every mark in encoded bytes with invalid UTF-8 of the same length. */
export function withInvalidUtf8(bytes: Uint8Array): Buffer {
  const out = Buffer.from(bytes);
  for (let at = out.indexOf(MARK_BYTES); at >= 0; at = out.indexOf(MARK_BYTES, at + MARK_BYTES.length)) BAD_BYTES.copy(out, at);
  return out;
}

/** `arb` one time in `outOf`, else undefined (an absent field). fc.option's freq is the other way round: 1/freq is nil. */
export const sometimes = <T>(arb: fc.Arbitrary<T>, outOf = 4): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: outOf - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

/** A name as a client might send it: usually `good`, sometimes empty, unicode, a mark, overlong or near-miss. */
export function nameArb(good: readonly string[], weightGood = 40): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: weightGood, arbitrary: fc.constantFrom(...good) },
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
    { weight: 1, arbitrary: fc.constantFrom(...good).map((g) => g + BAD_UTF8_MARK) },
    { weight: 1, arbitrary: fc.constantFrom('../mlp', '%2e%2e', 'mlp\u0000', '__proto__', 'constructor', 'MLP', ' mlp', 'mlp/1', '\u202emlp', '🤖') },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 70_000 }).map((n) => 'x'.repeat(n)) },
  );
}

export const V1_DTYPES = ['FP32', 'FP64', 'FP16', 'BF16', 'INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'BOOL', 'STRING'] as const;
export const V2_DTYPES = ['FP32', 'FP64', 'FP16', 'BF16', 'INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'BOOL', 'BYTES'] as const;
export const BYTE_SIZE: Record<string, number> = {
  FP32: 4, FP64: 8, FP16: 2, BF16: 2, INT8: 1, INT16: 2, INT32: 4, INT64: 8, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8, BOOL: 1, STRING: 0, BYTES: 0,
};

/** A dtype name: mostly the right one, else another real one, a wrong-case one or garbage. */
export function dtypeArb(right: string, all: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 40, arbitrary: fc.constant(right) },
    { weight: 2, arbitrary: fc.constantFrom(...all) },
    { weight: 1, arbitrary: fc.constantFrom('fp32', 'FLOAT', 'TYPE_FP32', '', 'STRING', 'BYTES', 'DATA_TYPE_UNSPECIFIED', 'hasOwnProperty') },
  );
}

/** A dim value that is wrong: negative, zero, huge, past 2^53, past 2^63. */
export const badDimArb: fc.Arbitrary<number | string> = fc.oneof(
  fc.constantFrom(-1, -2, 0, 1_000_000_000, 2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER),
  fc.constantFrom('9007199254740993', '9223372036854775807', '-9223372036854775808', '18446744073709551615'),
  fc.integer({ min: -1000, max: 100_000 }),
);

/**
 * A shape derived from the model's `good` one (-1 dims filled with small sizes), then maybe bent: a dim changed,
 * one dropped or added, rank blown up, or a bad dim put in.
 */
export function shapeArb(good: readonly number[]): fc.Arbitrary<(number | string)[]> {
  const filled = fc.tuple(...good.map((d) => (d === -1 ? fc.integer({ min: 1, max: 3 }) : fc.constant(d)))).map((s) => s as (number | string)[]);
  return fc.oneof(
    { weight: 40, arbitrary: filled },
    {
      weight: 2,
      arbitrary: fc.tuple(filled, fc.nat(), badDimArb).map(([s, i, d]) => {
        const out = [...s];
        if (out.length) out[i % out.length] = d;
        return out;
      }),
    },
    { weight: 1, arbitrary: filled.map((s) => s.slice(1)) },
    { weight: 1, arbitrary: filled.map((s) => [...s, 1]) },
    { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 0, maxLength: 40 }) },
    { weight: 1, arbitrary: fc.array(badDimArb, { minLength: 1, maxLength: 6 }) },
  );
}

/** Element count of a shape, NaN when any dim is not a small non-negative integer. */
export function countOf(shape: readonly (number | string)[]): number {
  let n = 1;
  for (const d of shape) {
    const x = typeof d === 'number' ? d : Number(d);
    if (!Number.isSafeInteger(x) || x < 0) return NaN;
    n *= x;
  }
  return n;
}

/** A float: mostly ordinary, sometimes NaN, an infinity, -0, a subnormal or the largest finite. */
export const floatArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 8, arbitrary: fc.double({ min: -4, max: 4, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, -0, 5e-324, 1.7976931348623157e308, 3.4e38, 65504) },
);

/** xorshift32 from a seed: cheap filler for element bytes (fast-check picks the seed and the pattern). */
function filler(seed: number): () => number {
  let x = seed | 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const SPECIAL_FLOATS = [NaN, Infinity, -Infinity, -0, 1e-45, 3.4e38];

/**
 * Little-endian bytes for `count` elements of `dtype` (at most 4096 elements): zeros, small numbers, numbers with
 * NaN and infinities mixed in, or raw noise (which for BOOL means bytes other than 0 and 1). The elements are
 * filled from a seed rather than drawn one by one: a convnet image is 3,072 floats.
 */
export function elementBytesArb(dtype: string, count: number): fc.Arbitrary<Uint8Array> {
  const size = Object.hasOwn(BYTE_SIZE, dtype) ? BYTE_SIZE[dtype]! || 4 : 4;
  const n = Number.isFinite(count) ? Math.min(count, 4096) : 0;
  return fc
    .tuple(fc.nat(), fc.oneof({ weight: 6, arbitrary: fc.constant('small') }, { weight: 1, arbitrary: fc.constantFrom('zeros', 'specials', 'noise') }))
    .map(([seed, pattern]) => {
      const bytes = new Uint8Array(n * size);
      const next = filler(seed);
      if (pattern === 'zeros') return bytes;
      if (pattern === 'noise') {
        for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 0xff;
        return bytes;
      }
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) {
        const r = next();
        const o = i * size;
        if (dtype === 'FP32' || dtype === 'FP64') {
          const v = pattern === 'specials' && r % 5 === 0 ? SPECIAL_FLOATS[r % SPECIAL_FLOATS.length]! : ((r % 8001) - 4000) / 1000;
          if (dtype === 'FP32') view.setFloat32(o, v, true);
          else view.setFloat64(o, v, true);
        } else if (size === 8) view.setBigInt64(o, BigInt(pattern === 'specials' && r % 5 === 0 ? -1 : r % 5000), true);
        else if (dtype === 'BOOL') bytes[o] = r & 1;
        else for (let k = 0; k < size; k++) bytes[o + k] = k === 0 ? r & 0x7f : 0;
      }
      return bytes;
    });
}

/** Bytes that disagree with the size a shape needs: short by some, long by some, or none at all. */
export function resizeArb(bytes: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.integer({ min: 1, max: 9 }).map((k) => bytes.subarray(0, Math.max(0, bytes.length - k))),
    fc.uint8Array({ minLength: 1, maxLength: 9 }).map((extra) => Buffer.concat([bytes, extra])),
    fc.constant(new Uint8Array(0)),
  );
}

type Mutation = { op: 'flip' | 'set' | 'insert' | 'delete' | 'truncate' | 'dup' | 'varint'; at: number; value: number; len: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'dup', 'varint'),
  at: fc.nat(),
  value: fc.nat(255),
  len: fc.integer({ min: 1, max: 16 }),
});

/** 1-4 byte-level mutations of encoded bytes: bit flips, overwrites, inserted or deleted runs, cuts, 0xff varint runs. */
export function mutateBytesArb(bytes: Uint8Array): fc.Arbitrary<Buffer> {
  return fc.array(mutationArb, { minLength: 1, maxLength: 4 }).map((ms) => {
    let b = Buffer.from(bytes);
    for (const m of ms) {
      const at = b.length ? m.at % b.length : 0;
      switch (m.op) {
        case 'flip': if (b.length) b[at] = b[at]! ^ (1 << (m.value % 8)); break;
        case 'set': if (b.length) b[at] = m.value; break;
        case 'insert': b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.len, m.value), b.subarray(at)]); break;
        case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]); break;
        case 'truncate': b = b.subarray(0, at); break;
        case 'dup': b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]); break;
        case 'varint': b = Buffer.concat([b.subarray(0, at), Buffer.alloc(Math.min(m.len, 11), 0xff), b.subarray(at)]); break;
      }
    }
    return b;
  });
}

/**
 * Protobuf fields appended at the wire level: a known field number with the wrong wire type, an unknown field,
 * a length that runs past the end, a group start. Decoders must refuse or skip them, never crash.
 */
export const wireJunkArb: fc.Arbitrary<Buffer> = fc
  .record({ field: fc.integer({ min: 1, max: 25 }), wire: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7), payload: fc.uint8Array({ maxLength: 12 }), lie: fc.boolean() })
  .map(({ field, wire, payload, lie }) => {
    const tag = Buffer.from([((field << 3) | wire) & 0x7f | (field >= 16 ? 0x80 : 0), ...(field >= 16 ? [field >> 4] : [])]);
    if (wire === 2) return Buffer.concat([tag, Buffer.from([lie ? payload.length + 40 : payload.length]), payload]);
    return Buffer.concat([tag, payload]);
  });
