/**
 * The fuzz targets: each a generator (fast-check arbitrary of Cases) and its share of a run. Input i of a run
 * goes to the target at position i of a fixed interleaved cycle, and is generated from its own seed, derived
 * from the run's seed and i, so any one input can be regenerated alone (--replay target:seed).
 */
import fc from 'fast-check';
import { b64, type Case } from './case';
import { configPbtxtArb, configYamlArb } from './gen-config';
import { generateArb } from './gen-generate';
import { modelInferArb, streamInferArb } from './gen-infer';
import { chatCompletionsArb, completionsArb } from './gen-openai';
import { predictArb } from './gen-predict';
import { restInferArb, restOtherArb } from './gen-rest';
import { encode } from './wire';

export interface Target {
  name: string;
  arb: fc.Arbitrary<Case>;
  /** Inputs per cycle of WEIGHT_TOTAL. */
  weight: number;
}

/**
 * Shares of a run, sized so 100k inputs fit CI time on a 2-core machine (~235 s measured): 39% go over the
 * network (a network input costs ~8 ms of CPU across fuzzer and server), 61% through the config parsers
 * in-process (config.pbtxt ~0.3 ms, config.yaml ~3 ms: the YAML parser is the slow one, so it gets the smaller share).
 */
export const TARGETS: readonly Target[] = [
  { name: 'predict', arb: predictArb, weight: 10 },
  { name: 'generate', arb: generateArb, weight: 2 },
  { name: 'model-infer', arb: modelInferArb, weight: 9 },
  { name: 'stream-infer', arb: streamInferArb, weight: 3 },
  { name: 'rest-infer', arb: restInferArb, weight: 8 },
  { name: 'rest-v2', arb: restOtherArb, weight: 3 },
  { name: 'openai-completions', arb: completionsArb, weight: 2 },
  { name: 'openai-chat', arb: chatCompletionsArb, weight: 2 },
  { name: 'config-yaml', arb: configYamlArb, weight: 12 },
  { name: 'config-pbtxt', arb: configPbtxtArb, weight: 49 },
];

export const targetByName = (name: string) => TARGETS.find((t) => t.name === name);

/** The targets in an interleaved cycle (each weight spread evenly), so any window of a run mixes them. */
export function cycle(targets: readonly Target[]): Target[] {
  const total = targets.reduce((n, t) => n + t.weight, 0);
  const slots: { t: Target; at: number }[] = [];
  for (const t of targets) for (let k = 0; k < t.weight; k++) slots.push({ t, at: (k + 0.5) / t.weight });
  slots.sort((a, b) => a.at - b.at || a.t.name.localeCompare(b.t.name));
  if (slots.length !== total) throw new Error('cycle');
  return slots.map((s) => s.t);
}

/** Input i's seed: the run's seed and i mixed (murmur3's finaliser), as a non-negative 31-bit integer. */
export function inputSeed(runSeed: number, i: number): number {
  let h = (runSeed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) & 0x7fffffff;
}

export function generate(target: Target, seed: number): Case {
  return fc.sample(target.arb, { seed, numRuns: 1 })[0]!;
}

/**
 * Valid requests sent before the run: every model has run once (so a later runtime refusal of a fuzzed
 * input is blamed on the input: src/scheduling/failure-blame.ts), and the first inputs do not pay for warm-up.
 */
export function warmupCases(): Case[] {
  const f32 = (n: number) => b64(new Uint8Array(new Float32Array(n).buffer));
  const predict = (model: string, input: string, dtype: string, shape: number[], data: string) =>
    ({ kind: 'grpc-unary', path: '/tensorgate.v1.ModelService/Predict', body: b64(encode('tensorgate.v1.PredictRequest', { model, inputs: [{ name: input, dtype, shape, data: Buffer.from(data, 'base64') }] })) }) as Case;
  return [
    predict('mlp', 'input', 'FP32', [1, 64], f32(64)),
    predict('convnet', 'image', 'FP32', [1, 3, 32, 32], f32(3 * 32 * 32)),
    predict('sentiment', 'token_ids', 'INT64', [1, 2], b64(new Uint8Array(new BigInt64Array([2n, 3n]).buffer))),
    { kind: 'grpc-unary', path: '/tensorgate.v1.ModelService/Predict', body: b64(encode('tensorgate.v1.PredictRequest', { model: 'sentiment', input_text: 'good day' })) },
    { kind: 'grpc-server-stream', path: '/tensorgate.v1.ModelService/Generate', body: b64(encode('tensorgate.v1.GenerateRequest', { model: 'tiny-lm', prompt: 'In the beginning', max_tokens: 2 })) },
  ];
}
