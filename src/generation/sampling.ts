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
      logits[t] = l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty;
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

/** A candidate token with its (unnormalised, then normalised) probability. */
interface Candidate {
  token: number;
  p: number;
}

/**
 * The distribution sampling draws from after temperature, top-k, top-p and min-p: candidates sorted by
 * probability, descending, probabilities summing to 1. Exported so tests can check each filter's effect.
 */
export function filteredDistribution(logits: Float32Array, p: SamplingParams): Candidate[] {
  const t = p.temperature;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  // exp((l - max) / t): the most likely token gets 1, so nothing overflows.
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const w = Math.exp((logits[i]! - max) / t);
    weights[i] = w;
    total += w;
  }
  // Sorting all of a large vocabulary per token is the cost here; tokens below 1e-9 of the most likely
  // cannot matter to any filter unless the candidates above them do not reach top_p, checked below.
  const floor = 1e-9;
  let candidates: Candidate[] = [];
  for (let i = 0; i < weights.length; i++) if (weights[i]! >= floor) candidates.push({ token: i, p: weights[i]! / total });
  candidates.sort(byProbability);
  let mass = 0;
  for (const c of candidates) mass += c.p;
  if (p.topP < 1 && mass < p.topP) {
    candidates = Array.from(weights, (w, token) => ({ token, p: w / total })).sort(byProbability);
  }
  if (p.topK > 0 && candidates.length > p.topK) candidates.length = p.topK;
  if (p.topP < 1) {
    let sum = 0;
    for (let i = 0; i < candidates.length; i++) {
      sum += candidates[i]!.p;
      if (sum >= p.topP) {
        candidates.length = i + 1;
        break;
      }
    }
  }
  if (p.minP > 0) {
    const cut = candidates[0]!.p * p.minP;
    let keep = 1;
    while (keep < candidates.length && candidates[keep]!.p >= cut) keep++;
    candidates.length = keep;
  }
  let kept = 0;
  for (const c of candidates) kept += c.p;
  for (const c of candidates) c.p /= kept;
  return candidates;
}

const byProbability = (a: Candidate, b: Candidate) => b.p - a.p || a.token - b.token;

/** The next token: penalties applied to `logits` (in place), then greedy or a draw from the filtered distribution. */
export function chooseToken(logits: Float32Array, history: TokenHistory, p: SamplingParams, random: SeededRandom): number {
  applyPenalties(logits, history, p);
  if (p.temperature === 0) return argmax(logits);
  const candidates = filteredDistribution(logits, p);
  const u = random.next();
  let sum = 0;
  for (const c of candidates) {
    sum += c.p;
    if (u < sum) return c.token;
  }
  return candidates[candidates.length - 1]!.token;
}
