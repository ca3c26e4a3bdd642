/**
 * Seeded weights and payloads for the bundled models, the tests and the benchmarks, and (re-exported) the ONNX
 * graph builder they write models with, which ships in the package (src/onnx/onnx-builder.ts) because the
 * optimisation passes use it too.
 */
export * from '../src/onnx/onnx-builder';

/**
 * mulberry32: a tiny seeded PRNG. Math.random cannot be seeded, and weights
 * must be reproducible so that regenerated models are byte-identical.
 * Returns floats in [0, 1).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` values drawn uniformly from [-limit, limit). */
export function uniform(rng: () => number, count: number, limit: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (rng() * 2 - 1) * limit;
  return out;
}

/** Deterministic pseudo-random floats in [-1, 1): test and benchmark payloads. */
export function seededFloats(count: number, seed = 1): Float32Array {
  return uniform(mulberry32(seed), count, 1);
}

/**
 * Glorot/Xavier uniform limit sqrt(6 / (fan_in + fan_out)): keeps activations
 * in a sane range through a stack of layers, so outputs are neither all zero
 * nor overflowing.
 */
export function glorotLimit(fanIn: number, fanOut: number): number {
  return Math.sqrt(6 / (fanIn + fanOut));
}
