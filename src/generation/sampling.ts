/**
 * Choosing the next token from a row of logits, in the order TGI and vLLM apply their processors:
 *
 *   repetition penalty (window of prompt + output) -> presence / frequency penalties (output)
 *     -> temperature (0: greedy, stop here) -> top-k -> top-p -> min-p -> sample with the row's seeded RNG
 *
 * Runs in the worker that owns the sequence (see decode-engine.ts): the logits never cross threads, only
 * the chosen token does. Written here rather than taken from a library because the one JS library that
 * does this (transformers.js) ignores top_p and min_p and has no presence/frequency penalties, and every
 * parameter must be honoured exactly as documented.
 */
import { SeededRandom } from './seeded-random';

export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** 0 = off. */
  minP: number;
  /** 1 = off. */
  repetitionPenalty: number;
  /** The repetition penalty's window: last N tokens of prompt + output; 0 = all. */
  repeatLastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
}

/** A sequence's token history, as the penalties need it. */
export interface TokenHistory {
  /** Prompt then generated tokens. */
  readonly tokens: readonly number[];
  /** How many of `tokens` are the prompt. */
  readonly promptLength: number;
}

/** The largest finite float32: logits are Float32Array. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Applies the penalties to `logits` in place. Each penalised token is adjusted once, however often it occurs
 * (the repetition penalty is a factor per distinct token, as in Hugging Face's processor).
 */
export function applyPenalties(logits: Float32Array, history: TokenHistory, p: SamplingParams): void {
  const { tokens, promptLength } = history;
  if (p.repetitionPenalty !== 1 && p.repetitionPenalty > 0) {
    const from = p.repeatLastN > 0 ? Math.max(0, tokens.length - p.repeatLastN) : 0;
    const seen = new Set<number>();
    for (let i = from; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (seen.has(t) || t < 0 || t >= logits.length) continue;
      seen.add(t);
      const l = logits[t]!;
      // A tiny penalty (the range is (0, 10]) can push a logit past float32's range; an infinite logit would
      // make the probabilities NaN, so it stays the largest finite one instead.
      logits[t] = Math.max(-FLOAT32_MAX, Math.min(FLOAT32_MAX, l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty));
    }
  }
  if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) {
    const counts = new Map<number, number>();
    for (let i = promptLength; i < tokens.length; i++) counts.set(tokens[i]!, (counts.get(tokens[i]!) ?? 0) + 1);
    for (const [t, n] of counts) {
      if (t < 0 || t >= logits.length) continue;
      logits[t] = logits[t]! - p.presencePenalty - p.frequencyPenalty * n;
    }
  }
}

export function argmax(values: Float32Array): number {
  let best = 0;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i]! > max) {
      max = values[i]!;
      best = i;
    }
  }
  return best;
}

/** A candidate token with its probability. */
interface Candidate {
  token: number;
  p: number;
}

/**
 * The tokens sampling may draw from after temperature, top-k, top-p and min-p, with unnormalised weights
 * (exp((logit - max) / temperature), so the most likely token weighs 1); undefined `tokens` = every token,
 * weighted by `all`. Every filter keeps the tokens whose weight is at least some cut, so one pass files each
 * token into a power-of-two weight band, the bands tell how far down top-k and top-p can reach, and only
 * the tokens above that are sorted: sorting a whole 8,000-token vocabulary per token measured ~2 ms, more
 * than a decode step (bench/sampling-cost.ts).
 */
function candidates(logits: Float32Array, p: SamplingParams): { tokens: number[] | undefined; weights: number[]; all: Float64Array } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  const all = new Float64Array(logits.length);
  const bandCount = new Float64Array(BANDS);
  const bandMass = new Float64Array(BANDS);
  const perBand = 1 / (p.temperature * Math.LN2); // band = floor(-log2(weight))
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const drop = max - logits[i]!;
    // Below e^-50 of the top token a weight cannot change a draw (< 2e-22 of the mass): skip its exp.
    const w = drop * perBand > FAR_BAND ? 0 : Math.exp(-drop / p.temperature);
    all[i] = w;
    total += w;
    const band = Math.min(BANDS - 1, Math.floor(drop * perBand));
    bandCount[band]!++;
    bandMass[band]! += w;
  }
  // min-p keeps tokens of at least minP x the most likely one's probability: weight >= minP, whatever
  // top-k and top-p do before it (they scale every kept probability alike).
  if (p.topK === 0 && p.topP >= 1) {
    if (p.minP === 0) return { tokens: undefined, weights: [], all };
    const tokens: number[] = [];
    for (let i = 0; i < all.length; i++) if (all[i]! >= p.minP) tokens.push(i);
    return { tokens, weights: tokens.map((t) => all[t]!), all };
  }
  // The lowest band top-k and top-p can reach: enough tokens for k, enough mass for p (of the whole, or of
  // the k kept when top-k applies first; those k are all above the cut, so their mass is counted then).
  let last = 0;
  for (let count = 0, mass = 0; last < BANDS; last++) {
    count += bandCount[last]!;
    mass += bandMass[last]!;
    if (p.topK > 0 ? count >= p.topK : mass >= p.topP * total) break;
  }
  const cut = last >= BANDS - 1 ? 0 : 2 ** -(last + 1);
  let tokens: number[] = [];
  for (let i = 0; i < all.length; i++) if (all[i]! >= cut) tokens.push(i);
  tokens.sort((a, b) => all[b]! - all[a]! || a - b);
  if (p.topK > 0 && tokens.length > p.topK) tokens.length = p.topK;
  if (p.topP < 1) {
    let base = total;
    if (p.topK > 0) {
      base = 0;
      for (const t of tokens) base += all[t]!;
    }
    let sum = 0;
    for (let i = 0; i < tokens.length; i++) {
      sum += all[tokens[i]!]!;
      if (sum >= p.topP * base) {
        tokens.length = i + 1;
        break;
      }
    }
  }
  if (p.minP > 0) tokens = tokens.filter((t) => all[t]! >= p.minP);
  return { tokens, weights: tokens.map((t) => all[t]!), all };
}

/** Power-of-two weight bands for candidates(); the last holds everything below 2^-63 of the top token. */
const BANDS = 64;
/** 50 / ln 2: the band below which weights are taken as 0. */
const FAR_BAND = 50 / Math.LN2;

/**
 * The distribution sampling draws from, sorted by probability (descending), probabilities summing to 1.
 * For tests and tools: sampling itself draws from the unsorted candidates.
 */
export function filteredDistribution(logits: Float32Array, p: SamplingParams): Candidate[] {
  const c = candidates(logits, p);
  const tokens = c.tokens ?? Array.from(c.all.keys());
  const weights = c.tokens ? c.weights : Array.from(c.all);
  const kept = weights.reduce((a, b) => a + b, 0);
  return tokens.map((token, i) => ({ token, p: weights[i]! / kept })).sort((a, b) => b.p - a.p || a.token - b.token);
}

/** The next token: penalties applied to `logits` (in place), then greedy or a draw from the filtered distribution. */
export function chooseToken(logits: Float32Array, history: TokenHistory, p: SamplingParams, random: SeededRandom): number {
  applyPenalties(logits, history, p);
  if (p.temperature === 0) return argmax(logits);
  const { tokens, weights, all } = candidates(logits, p);
  if (!tokens) return draw(all, random.next());
  const picked = draw(weights, random.next());
  return tokens[picked]!;
}

/** The index a uniform draw `u` in [0, 1) picks from unnormalised `weights`. */
function draw(weights: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  const target = u * total;
  let sum = 0;
  for (let i = 0; i < weights.length; i++) {
    sum += weights[i]!;
    if (target < sum) return i;
  }
  return weights.length - 1;
}
