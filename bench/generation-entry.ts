/**
 * Child-process entry of the generation benchmark (bench/generation.ts): the in-process baselines, one
 * kind per process so that one's ONNX Runtime thread pools never share the cores with another's window.
 *
 *   raw   the ceiling: tensorgate's own decode math (kv-batch.ts feeds, NativeSession, greedy argmax) in
 *         a plain loop on this thread with the server's session settings: no workers, no thread hops, no
 *         gRPC. Rows are prefilled one at a time and joined (as the server's DecodeEngine does), then
 *         every step decodes all rows in one run, feeding the presents back as the past.
 *   engine  the server's DecodeEngine (what each inference worker runs per step: the same loop plus
 *         sampling and row bookkeeping) called directly on this thread, for the workers' thread count
 *         only: tensorgate minus the thread hop and gRPC, which splits a shortfall between the two.
 *   tfjs  transformers.js (AutoTokenizer + AutoModelForCausalLM.generate, greedy, min_new_tokens =
 *         max_new_tokens so EOS cannot end it early), loaded the way its docs show, with its default
 *         session options: what a naive Node server built on it runs.
 *
 * argv[2]: JSON BaselineArgs. Sends one BaselineResult and exits.
 */
import * as path from 'node:path';
import type { InferTensor } from '../src/core/tensor';
import { readDecoderLayout, type DecoderLayout, type HfModelConfig } from '../src/generation/decoder-layout';
import { DecodeEngine } from '../src/generation/decode-engine';
import { KvBatch, lastLogits, prefillFeeds } from '../src/generation/kv-batch';
import { argmax } from '../src/generation/sampling';
import { PACKAGE_ROOT } from '../src/paths';
import type { SessionSettings } from '../src/runtime/messages';
import { NativeSession } from '../src/runtime/ort-session';
import { foreignCpuPct, machineCpu, waitForQuiet } from './machine-load';

export interface Prompt {
  text: string;
  /** `text` encoded by the server's tokenizer (special tokens added), exactly the prompt length. */
  ids: number[];
}

/** One measured generation: `rows` sequences of `maxNew` tokens each, decoded together (raw) or one call (tfjs). */
export interface BaselineRun {
  rows: number;
  wallMs: number;
  tokensPerS: number;
  /** Per row, the generated ids. */
  tokens: number[][];
  /** raw: the prefill runs together, and the mean wall time of one decode step. */
  prefillMs?: number;
  stepMs?: number;
  otherCpuPct: number;
}

export interface BaselineArgs {
  kind: 'raw' | 'tfjs';
  /** The model folder's files: model.onnx (raw) / the onnx/model.onnx layout root (tfjs). */
  modelFile: string;
  hfConfig: HfModelConfig;
  /** tfjs: env.localModelPath and the model's name under it. */
  tfjsRoot?: string;
  tfjsName?: string;
  /** raw: the server's session settings; run once per entry of `threads` (intra-op threads). */
  settings?: SessionSettings;
  threads?: number[];
  maxNew: number;
  warmup: Prompt;
  /** Named groups of generations: each entry of a group is one run of its prompts together (tfjs: one after another). */
  groups: { name: string; runs: Prompt[][] }[];
  quietPct: number;
  quietWaitMs: number;
}

export interface BaselineResult {
  kind: 'raw' | 'tfjs';
  /** raw: per intra-op thread count (with `engine` at the workers' count); tfjs: one entry, threads 0 (ONNX Runtime's default). */
  sets: { threads: number; groups: Record<string, BaselineRun[]>; engine?: Record<string, BaselineRun[]> }[];
  /** tfjs: prompts its AutoTokenizer encoded to other ids than the server's tokenizer. */
  tokenizerMismatches?: number;
  version?: string;
}

type Generated = Omit<BaselineRun, 'rows' | 'wallMs' | 'tokensPerS' | 'otherCpuPct'>;

const quiet = (a: BaselineArgs) => waitForQuiet(a.quietPct, a.quietWaitMs, (s) => console.error(s));

/** Times `fn` and the CPU other processes used meanwhile. */
async function measured(rows: number, maxNew: number, fn: () => Promise<Generated>): Promise<BaselineRun> {
  const m0 = machineCpu();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await fn();
  const wallMs = performance.now() - t0;
  const own = process.cpuUsage(c0);
  return { rows, wallMs, tokensPerS: (rows * maxNew) / (wallMs / 1000), otherCpuPct: foreignCpuPct(m0, machineCpu(), own.user + own.system, wallMs), ...r };
}

function named(outputs: readonly InferTensor[], name: string): InferTensor {
  const t = outputs.find((o) => o.name === name);
  if (!t) throw new Error(`the model returned no '${name}'`);
  return t;
}

/** The raw loop: `prompts` decoded together for `maxNew` tokens each (the first from the prefill). */
function rawGenerate(session: NativeSession, layout: DecoderLayout, prompts: Prompt[], maxNew: number) {
  const batch = new KvBatch(layout);
  const out = prompts.map(() => [] as number[]);
  const t0 = performance.now();
  prompts.forEach((p, r) => {
    const run = session.run(prefillFeeds(layout, p.ids), []);
    out[r]!.push(argmax(lastLogits(named(run.outputs, 'logits'), 0)));
    batch.join(r, p.ids.length, run.outputs);
  });
  const t1 = performance.now();
  for (let step = 1; step < maxNew; step++) {
    const run = session.run(batch.decodeFeeds(out.map((t) => t[t.length - 1]!)), []);
    const logits = named(run.outputs, 'logits');
    batch.advance(run.outputs);
    for (let r = 0; r < prompts.length; r++) out[r]!.push(argmax(lastLogits(logits, r)));
  }
  return { tokens: out, prefillMs: t1 - t0, stepMs: maxNew > 1 ? (performance.now() - t1) / (maxNew - 1) : 0 };
}

/** The same generation through DecodeEngine.step: all rows admitted in the first step, then steps until none is left. */
function engineGenerate(session: NativeSession, layout: DecoderLayout, prompts: Prompt[], maxNew: number) {
  const engine = new DecodeEngine(layout);
  const params = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 0, presencePenalty: 0, frequencyPenalty: 0 };
  const admit = prompts.map((p, i) => ({ seq: i, prompt: p.ids, params, seed: 0n, maxNewTokens: maxNew, maxLength: layout.maxPositions, eosTokenIds: [], stopTokenIds: [], ignoreEos: true }));
  const out = prompts.map(() => [] as number[]);
  let steps = 0;
  let t1 = performance.now();
  for (let request = { key: 'bench', admit, drop: [] as number[] }; request.admit.length > 0 || engine.active > 0; request = { key: 'bench', admit: [], drop: [] }) {
    const reply = engine.step(request, session);
    if (reply.failed.length) throw new Error(reply.failed[0]!.message);
    for (const t of reply.tokens) out[t.seq]!.push(t.token);
    if (steps++ === 0) t1 = performance.now();
  }
  return { tokens: out, stepMs: steps > 1 ? (performance.now() - t1) / (steps - 1) : 0 };
}

/** Every run of every group, each after waiting for a quiet machine. */
async function runGroups(a: BaselineArgs, label: string, generate: (prompts: Prompt[]) => Generated | Promise<Generated>) {
  const groups: Record<string, BaselineRun[]> = {};
  for (const g of a.groups) {
    groups[g.name] = [];
    for (const prompts of g.runs) {
      await quiet(a);
      groups[g.name]!.push(await measured(prompts.length, a.maxNew, async () => generate(prompts)));
    }
    console.error(`  ${label} ${g.name}: ${groups[g.name]!.map((r) => r.tokensPerS.toFixed(0)).join(', ')} tok/s`);
  }
  return groups;
}

async function raw(a: BaselineArgs): Promise<BaselineResult> {
  const sets: BaselineResult['sets'] = [];
  for (const threads of a.threads!) {
    const session = new NativeSession(a.modelFile, { ...a.settings!, intraOpThreads: threads });
    const layout = readDecoderLayout(session.inputs, session.outputs, a.hfConfig);
    // Warm-up at the largest batch: ONNX Runtime's first runs of each shape allocate.
    const widest = Math.max(...a.groups.flatMap((g) => g.runs.map((r) => r.length)));
    rawGenerate(session, layout, Array.from({ length: widest }, () => a.warmup), a.maxNew);
    const groups = await runGroups(a, `raw ${threads}t`, (prompts) => rawGenerate(session, layout, prompts, a.maxNew));
    const engine = threads === a.settings!.intraOpThreads ? await runGroups(a, `engine ${threads}t`, (prompts) => engineGenerate(session, layout, prompts, a.maxNew)) : undefined;
    session.dispose();
    sets.push({ threads, groups, ...(engine ? { engine } : {}) });
  }
  return { kind: 'raw', sets };
}

/**
 * transformers.js from the repository's node_modules (a dev dependency); its CommonJS build, so this
 * compiled CommonJS file can require it, and untyped so that the bench compiles without it installed.
 */
function loadTransformers(): { tf: any; version: string } {
  const resolved = require.resolve('@huggingface/transformers', { paths: [PACKAGE_ROOT] });
  const pkg = require(path.join(resolved.slice(0, resolved.lastIndexOf(`${path.sep}dist${path.sep}`)), 'package.json')) as { version: string };
  return { tf: require(resolved), version: pkg.version };
}

async function tfjs(a: BaselineArgs): Promise<BaselineResult> {
  const { tf, version } = loadTransformers();
  tf.env.allowRemoteModels = false;
  tf.env.allowLocalModels = true;
  tf.env.localModelPath = a.tfjsRoot;
  const tokenizer = await tf.AutoTokenizer.from_pretrained(a.tfjsName);
  const model = await tf.AutoModelForCausalLM.from_pretrained(a.tfjsName, { dtype: 'fp32', device: 'cpu' });
  // What a server handler does per request: text in, text out.
  const generate = async (p: Prompt): Promise<number[]> => {
    const inputs = tokenizer(p.text);
    const out = await model.generate({ ...inputs, max_new_tokens: a.maxNew, min_new_tokens: a.maxNew, do_sample: false });
    const ids = Array.from(out.data as BigInt64Array, Number).slice(inputs.input_ids.dims[1]);
    tokenizer.decode(ids, { skip_special_tokens: true });
    return ids;
  };
  let mismatches = 0;
  for (const g of a.groups) for (const run of g.runs) for (const p of run) {
    const ids = Array.from(tokenizer(p.text).input_ids.data as BigInt64Array, Number);
    if (ids.length !== p.ids.length || ids.some((x, i) => x !== p.ids[i])) mismatches++;
  }
  await generate(a.warmup);
  // A naive server: one request after another, each its own generate call.
  const groups = await runGroups(a, 'transformers.js', async (prompts) => {
    const tokens: number[][] = [];
    for (const p of prompts) tokens.push(await generate(p));
    return { tokens };
  });
  await model.dispose?.();
  return { kind: 'tfjs', sets: [{ threads: 0, groups }], tokenizerMismatches: mismatches, version };
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]!) as BaselineArgs;
  const result = args.kind === 'raw' ? await raw(args) : await tfjs(args);
  process.send!(result, () => process.exit(0));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`bench generation-entry failed:`, err);
    process.exit(1);
  });
}
