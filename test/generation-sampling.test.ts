/**
 * Sampling on known logits: each parameter shifts the distribution as the README documents (penalties ->
 * temperature -> top-k -> top-p -> min-p -> sample), greedy is argmax, and a seed reproduces its draws.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyPenalties, chooseToken, filteredDistribution, type SamplingParams } from '../src/generation/sampling';
import { SeededRandom } from '../src/generation/seeded-random';

const OFF: SamplingParams = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 0, presencePenalty: 0, frequencyPenalty: 0 };
/** Probabilities 0.4, 0.3, 0.2, 0.1 at temperature 1. */
const LOGITS = () => Float32Array.from([0.4, 0.3, 0.2, 0.1].map(Math.log));
const none = { tokens: [] as number[], promptLength: 0 };

function probabilities(params: Partial<SamplingParams>, logits = LOGITS()): Map<number, number> {
  return new Map(filteredDistribution(logits, { ...OFF, ...params }).map((c) => [c.token, c.p]));
}

const close = (actual: number | undefined, expected: number) => assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-6, `${actual} != ${expected}`);

test('with every filter off the distribution is the softmax of the logits', () => {
  const p = probabilities({});
  [0.4, 0.3, 0.2, 0.1].forEach((want, token) => close(p.get(token), want));
});

test('temperature sharpens below 1 and flattens above; 0 is argmax', () => {
  const cold = probabilities({ temperature: 0.5 });
  const hot = probabilities({ temperature: 2 });
  // p^(1/T) renormalised
  const z = 0.16 + 0.09 + 0.04 + 0.01;
  close(cold.get(0), 0.16 / z);
  assert.ok(hot.get(0)! < 0.4 && hot.get(3)! > 0.1);
  const random = new SeededRandom(1n);
  for (let i = 0; i < 20; i++) assert.equal(chooseToken(LOGITS(), none, { ...OFF, temperature: 0 }, random), 0);
});

test('top_k keeps the k most likely tokens, renormalised', () => {
  const p = probabilities({ topK: 2 });
  assert.deepEqual([...p.keys()], [0, 1]);
  close(p.get(0), 0.4 / 0.7);
});

test('top_p keeps the smallest most-likely set reaching p', () => {
  assert.deepEqual([...probabilities({ topP: 0.5 }).keys()], [0, 1]); // 0.4 < 0.5, 0.7 >= 0.5
  assert.deepEqual([...probabilities({ topP: 0.35 }).keys()], [0]);
  assert.deepEqual([...probabilities({ topP: 0.95 }).keys()], [0, 1, 2, 3]);
});

test('top_p is exact over a large, flat vocabulary (no candidate is skipped)', () => {
  const logits = new Float32Array(5000); // uniform
  logits[7] = 1;
  const p = filteredDistribution(logits, { ...OFF, topP: 0.999 });
  assert.equal(p[0]!.token, 7);
  assert.ok(p.length > 4900, `kept ${p.length}`);
});

test('min_p drops tokens below min_p x the top probability', () => {
  assert.deepEqual([...probabilities({ minP: 0.45 }).keys()], [0, 1, 2]); // cut 0.18: 0.2 stays, 0.1 goes
  assert.deepEqual([...probabilities({ minP: 0.9 }).keys()], [0]);
});

test('the filters apply in order: top_k, then top_p of what is left, then min_p', () => {
  // top_k 3 -> {0.4, 0.3, 0.2} renormalised to {0.444, 0.333, 0.222}; top_p 0.7 -> {0, 1}; min_p 0.8 -> {0}
  assert.deepEqual([...probabilities({ topK: 3, topP: 0.7 }).keys()], [0, 1]);
  assert.deepEqual([...probabilities({ topK: 3, topP: 0.7, minP: 0.8 }).keys()], [0]);
});

test('repetition penalty divides positive and multiplies negative logits of tokens in its window, once each', () => {
  const logits = Float32Array.from([2, -2, 2, 1]);
  applyPenalties(logits, { tokens: [0, 0, 1, 3], promptLength: 2 }, { ...OFF, repetitionPenalty: 2, repeatLastN: 3 });
  // window = last 3 tokens [0, 1, 3]; token 2 never appeared
  assert.deepEqual([...logits], [1, -4, 2, 0.5]);
});

test('presence and frequency penalties count generated tokens only', () => {
  const logits = Float32Array.from([0, 0, 0]);
  applyPenalties(logits, { tokens: [2, 2, 0, 0, 1], promptLength: 2 }, { ...OFF, presencePenalty: 0.5, frequencyPenalty: 0.25 });
  // generated: 0 twice, 1 once; the prompt's 2s are not counted
  assert.deepEqual([...logits], [-1, -0.75, 0]);
});

test('penalties come before greedy: a penalised favourite loses', () => {
  const logits = Float32Array.from([2, 1.5]);
  assert.equal(chooseToken(logits, { tokens: [0], promptLength: 0 }, { ...OFF, temperature: 0, repetitionPenalty: 2 }, new SeededRandom(0n)), 1);
});

test('a seed reproduces its draws; another seed draws differently; draws follow the distribution', () => {
  const draw = (seed: bigint, n: number) => {
    const random = new SeededRandom(seed);
    return Array.from({ length: n }, () => chooseToken(LOGITS(), none, OFF, random));
  };
  assert.deepEqual(draw(42n, 50), draw(42n, 50));
  assert.notDeepEqual(draw(42n, 50), draw(43n, 50));
  const counts = [0, 0, 0, 0];
  for (const t of draw(7n, 20000)) counts[t]!++;
  [0.4, 0.3, 0.2, 0.1].forEach((want, t) => assert.ok(Math.abs(counts[t]! / 20000 - want) < 0.02, `token ${t}: ${counts[t]! / 20000}`));
});

test('seeds use all 64 bits', () => {
  const a = new SeededRandom(1n).next();
  const b = new SeededRandom(1n + (1n << 40n)).next();
  assert.notEqual(a, b);
  const u = new SeededRandom(2n ** 64n - 1n).next();
  assert.ok(u >= 0 && u < 1);
});
