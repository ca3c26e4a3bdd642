/**
 * What choosing one token costs, and what moving its logits between threads would cost: the measurement
 * behind sampling in the worker (src/generation/decode-engine.ts). Sampling's CPU is the same wherever it
 * runs; run on the main thread it would also need each row's logits (vocabulary x 4 bytes) posted across,
 * and the main thread is the one that bounds throughput (see the Predict bench).
 *
 *   npm run build && node dist/bench/sampling-cost.js      (BENCH_VOCAB=8000 by default)
 */
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { chooseToken, type SamplingParams } from '../src/generation/sampling';
import { SeededRandom } from '../src/generation/seeded-random';

const VOCAB = Number(process.env.BENCH_VOCAB ?? 8000);
const ROUNDS = 4000;

const OFF: SamplingParams = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 0, presencePenalty: 0, frequencyPenalty: 0 };
const settings: [string, SamplingParams][] = [
  ['greedy', { ...OFF, temperature: 0 }],
  ['temperature 0.8', { ...OFF, temperature: 0.8 }],
  ['temperature 0.8, top_k 40', { ...OFF, temperature: 0.8, topK: 40 }],
  ['temperature 0.8, top_p 0.95', { ...OFF, temperature: 0.8, topP: 0.95 }],
  ['temperature 0.8, top_p 0.95, repetition 1.1 over 64', { ...OFF, temperature: 0.8, topP: 0.95, repetitionPenalty: 1.1, repeatLastN: 64 }],
];

/** Logits shaped like a trained model's: a few likely tokens, a long tail. */
function logits(seed: number): Float32Array {
  const random = new SeededRandom(BigInt(seed));
  return Float32Array.from({ length: VOCAB }, () => -Math.log(random.next() + 1e-9) * 2 - 8);
}

function usPerCall(fn: () => void): number {
  for (let i = 0; i < 200; i++) fn();
  const started = process.hrtime.bigint();
  for (let i = 0; i < ROUNDS; i++) fn();
  return Number(process.hrtime.bigint() - started) / 1000 / ROUNDS;
}

const history = { tokens: Array.from({ length: 200 }, (_, i) => (i * 37) % VOCAB), promptLength: 100 };
const rows = Array.from({ length: 16 }, (_, i) => logits(i));
console.log(`vocabulary ${VOCAB}, ${ROUNDS} calls each, Node ${process.version}`);
console.log('| what | µs per token |\n|---|---:|');
for (const [name, params] of settings) {
  const random = new SeededRandom(1n);
  let i = 0;
  // chooseToken applies penalties in place, so each call gets a fresh copy (the copy is timed too, as the engine makes one).
  const us = usPerCall(() => chooseToken(rows[i++ % rows.length]!.slice(), history, params, random));
  console.log(`| sample: ${name} | ${us.toFixed(1)} |`);
}
// Posting one row of logits to another thread and reading it there: a structured-clone copy each way.
const { port1, port2 } = new MessageChannel();
const row = rows[0]!;
const posted = usPerCall(() => {
  port1.postMessage(row);
  receiveMessageOnPort(port2);
});
console.log(`| post one row of logits across threads (copy + receive) | ${posted.toFixed(1)} |`);
port1.close();
port2.close();
