/**
 * Which hash keys the result cache: times sha256, sha1 and md5 (node:crypto createHash) and the one-shot
 * crypto.hash, over a 1 MiB and a 256-byte tensor, then the whole hashRequest key (encoding included).
 * Run: `npm run build && node dist/bench/hash-bench.js`. The figures chosen from are quoted in
 * src/cache/input-hash.ts.
 */
import * as crypto from 'node:crypto';
import { hashRequest } from '../src/cache/input-hash';
import type { InferTensor } from '../src/core/tensor';

const ALGORITHMS = ['sha256', 'sha1', 'md5'] as const;

/** Runs fn until ~minMs have passed (after a warm-up) and returns microseconds per call. */
function time(fn: () => unknown, minMs = 300): number {
  for (let i = 0; i < 200; i++) fn();
  let iterations = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < minMs * 1e6) {
    for (let i = 0; i < 100; i++) fn();
    iterations += 100;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return elapsed / 1e3 / iterations;
}

function fill(n: number): Uint8Array {
  const data = new Uint8Array(n);
  crypto.randomFillSync(data);
  return data;
}

function row(label: string, bytes: number, us: number): string {
  const mbs = bytes / us; // bytes per µs = MB/s
  return `${label.padEnd(34)} ${mbs.toFixed(0).padStart(8)} MB/s ${us.toFixed(2).padStart(10)} µs/key`;
}

function main(): void {
  console.log(`node ${process.version}, ${process.arch}, ${crypto.getHashes().length} hashes available,` +
    ` crypto.hash one-shot: ${typeof crypto.hash === 'function' ? 'yes' : 'no'}`);
  for (const size of [1 << 20, 256]) {
    const data = fill(size);
    console.log(`\n-- raw hash over ${size === 256 ? '256 B' : '1 MiB'} --`);
    for (const alg of ALGORITHMS) {
      const us = time(() => crypto.createHash(alg).update(data).digest('hex'));
      console.log(row(`createHash('${alg}')`, size, us));
      if (typeof crypto.hash === 'function') {
        const one = time(() => crypto.hash(alg, data, 'hex'));
        console.log(row(`crypto.hash('${alg}') one-shot`, size, one));
      }
    }
    // The full key as the cache computes it: canonical encoding + sha256 + prefix.
    const input: InferTensor = { name: 'input', dtype: 'FP32', shape: [1, size / 4], data };
    const us = time(() => hashRequest({ model: 'mlp', version: '1', inputs: [input], outputs: ['logits'] }));
    console.log(row('hashRequest (encode + sha256)', size, us));
  }
}

main();
