/**
 * A seeded random number generator for sampling: the same 64-bit seed gives the same draws on every
 * machine and Node version, so a request's seed reproduces its output. Math.random cannot be seeded and
 * crypto is not reproducible; the few lines of xoshiro128** (Blackman and Vigna, public domain) seeded through
 * SplitMix64 are smaller than a dependency for them.
 */
const MASK64 = (1n << 64n) - 1n;

function splitMix64(state: { s: bigint }): bigint {
  state.s = (state.s + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

export class SeededRandom {
  private readonly s = new Uint32Array(4);

  constructor(seed: bigint) {
    const state = { s: BigInt.asUintN(64, seed) };
    const a = splitMix64(state);
    const b = splitMix64(state);
    this.s[0] = Number(a & 0xffffffffn);
    this.s[1] = Number(a >> 32n);
    this.s[2] = Number(b & 0xffffffffn);
    this.s[3] = Number(b >> 32n);
  }

  private nextUint32(): number {
    const s = this.s;
    let s0 = s[0]!, s1 = s[1]!, s2 = s[2]!, s3 = s[3]!;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
    return result;
  }

  /** A uniform draw in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * A fresh seed for a request that gave none (returned to the caller, so the run can be repeated). Below
 * 2^53, so clients that read integers as doubles (JavaScript, most JSON parsers) can send it back exactly.
 */
export function randomSeed(): bigint {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return (BigInt(words[0]! & 0x1fffff) << 32n) | BigInt(words[1]!);
}
