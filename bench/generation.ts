/**
 * The text-generation benchmark: tensorgate's Generate against its ceilings and a naive baseline, all
 * measured in this one run on this machine, one thing at a time (on a small machine two would measure
 * each other). Greedy decoding, ignore_eos, a fixed number of new tokens after a fixed-length prompt;
 * every stream gets its own prompt.
 *
 *   1. the raw decode loop (bench/generation-entry.ts, child process): the server's own decode math on
 *      one thread, with the workers' intra-op threads and again with every core;
 *   2. transformers.js (same entry): one request at a time, as a naive server on it would serve them;
 *   3. tensorgate (bench/generation-server-entry.ts, child process) over gRPC from this process: single
 *      streams, then waves of 1, 2, 4, 8, 16 streams started together.
 *
 * Then tables, targets, and bench/results/generation-<date>-<time>.{md,json}.
 *
 *   npm run bench:generate     (or: npm run build && node dist/bench/generation.js)
 *
 * Knobs: BENCH_GEN_MODEL_DIR (default models/tiny-lm if present, else the gqa-decoder test fixture),
 * BENCH_GEN_TOKENS (64 new tokens), BENCH_GEN_PROMPT_TOKENS (16), BENCH_GEN_CONCURRENCY (1,2,4,8,16),
 * BENCH_GEN_REPEATS (waves per concurrency, 5), BENCH_GEN_SINGLE (single-stream runs, 9),
 * BENCH_MAX_OTHER_CPU (20: % of a core other processes may use before a point waits for quiet),
 * BENCH_QUIET_WAIT_S (30: how long it waits), BENCH_GEN_TAG (appended to the file names).
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createModelClient, type ModelServiceClient } from '../src/client/model-client';
import type { HfModelConfig } from '../src/generation/decoder-layout';
import { TextTokenizer } from '../src/generation/text-tokenizer';
import { readModelConfig } from '../src/repository/model-config';
import { defaultIntraOpThreads, defaultWorkerCount } from '../src/runtime/execution-pool';
import type { SessionSettings } from '../src/runtime/messages';
import { PACKAGE_ROOT } from '../src/paths';
import { runOnce, ServerChild } from './child';
import type { BaselineArgs, BaselineResult, Prompt } from './generation-entry';
import { generationMarkdown, type GenData, type ModelFacts, type StreamResult, type Wave } from './generation-report';
import type { StepWindow } from './generation-server-entry';
import { machine, revision } from './machine-facts';
import { foreignCpuPct, machineCpu, waitForQuiet } from './machine-load';
import type { EntryStats } from './entry-ipc';

const env = process.env;
const list = (s: string | undefined, d: number[]) => (s ? s.split(',').map((x) => Number(x.trim())) : d);
const SETTINGS = {
  maxNew: Number(env.BENCH_GEN_TOKENS ?? 64),
  promptTokens: Number(env.BENCH_GEN_PROMPT_TOKENS ?? 16),
  concurrency: list(env.BENCH_GEN_CONCURRENCY, [1, 2, 4, 8, 16]),
  repeats: Number(env.BENCH_GEN_REPEATS ?? 5),
  single: Number(env.BENCH_GEN_SINGLE ?? 9),
  maxOtherCpuPct: Number(env.BENCH_MAX_OTHER_CPU ?? 20),
  quietWaitMs: Number(env.BENCH_QUIET_WAIT_S ?? 30) * 1000,
  /** What the bench's config.yaml gives the model (the brief's fixed settings). */
  generation: { max_concurrent_sequences: 16, max_tokens: 512 },
};
/** The concurrency transformers.js serves one request after another (the target's point). */
const SEQUENTIAL = 8;
const log = (line: string) => console.error(line);
const FIXTURE = path.join(PACKAGE_ROOT, 'test/fixtures/models/gqa-decoder');

function modelDir(): string {
  if (env.BENCH_GEN_MODEL_DIR) return path.resolve(env.BENCH_GEN_MODEL_DIR);
  const bundled = path.join(PACKAGE_ROOT, 'models/tiny-lm');
  return fs.existsSync(bundled) ? bundled : FIXTURE;
}

/** The folder's ONNX file: the newest numeric version folder's model.onnx, else onnx/model.onnx (Optimum's layout). */
function modelFile(dir: string): { file: string; version: string } {
  const versions = fs.readdirSync(dir).filter((d) => /^\d+$/.test(d) && fs.existsSync(path.join(dir, d, 'model.onnx'))).sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return { file: path.join(dir, versions[0], 'model.onnx'), version: versions[0] };
  if (fs.existsSync(path.join(dir, 'onnx/model.onnx'))) return { file: path.join(dir, 'onnx/model.onnx'), version: '1' };
  throw new Error(`${dir}: no <version>/model.onnx or onnx/model.onnx`);
}

/** Copies the Hugging Face JSON files and the model into `<root>/<name>/` with the model at `modelRel`. */
function layOut(src: string, root: string, name: string, model: string, modelRel: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.dirname(path.join(dir, modelRel)), { recursive: true });
  for (const f of fs.readdirSync(src).filter((f) => f.endsWith('.json'))) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  fs.copyFileSync(model, path.join(dir, modelRel));
  return dir;
}

/** Parameters of a Llama-style decoder from config.json (embeddings, attention, SwiGLU MLP, norms). */
function llamaParams(c: HfModelConfig & { intermediate_size?: number; tie_word_embeddings?: boolean }): number | undefined {
  const h = c.hidden_size, v = c.vocab_size, l = c.num_hidden_layers, i = c.intermediate_size, heads = c.num_attention_heads;
  if (!h || !v || !l || !i || !heads) return undefined;
  const d = c.head_dim ?? h / heads;
  const kv = c.num_key_value_heads ?? heads;
  const layer = h * heads * d * 2 + h * kv * d * 2 + 3 * h * i + 2 * h;
  return v * h * (c.tie_word_embeddings === false ? 2 : 1) + l * layer + h;
}

const WORDS = ('and the lord said unto moses behold i will send thee into land of egypt his people israel went up from city ' +
  'king david spake all these words in that day there was great light upon earth heaven children shall come forth my servant').split(' ');

/**
 * `count` distinct prompts of exactly `tokens` tokens (the server's tokenizer, special tokens added): word
 * sequences drawn per index, cut at the character where the encoding reaches the length.
 */
function makePrompts(tokenizer: TextTokenizer, count: number, tokens: number, salt: number): Prompt[] {
  const out: Prompt[] = [];
  const seen = new Set<string>();
  for (let i = 0; out.length < count; i++) {
    if (i > count * 50) throw new Error(`cannot make ${count} distinct ${tokens}-token prompts`);
    const words = Array.from({ length: tokens * 2 }, (_, k) => WORDS[(i * 7919 + salt * 104729 + k * (i + 13) * 31) % WORDS.length]!);
    const full = words.join(' ');
    for (let n = 1; n <= full.length; n++) {
      const text = full.slice(0, n);
      const ids = tokenizer.encode(text);
      if (ids.length > tokens) break;
      if (ids.length === tokens && !text.endsWith(' ') && !seen.has(ids.join())) {
        seen.add(ids.join());
        out.push({ text, ids });
        break;
      }
    }
  }
  return out;
}

/** One Generate stream: the client's view (arrival time of each message) and the server's usage. */
function stream(client: ModelServiceClient, model: string, p: Prompt, maxNew: number): Promise<StreamResult> {
  return new Promise((resolve) => {
    const r: StreamResult = { sentAt: performance.now(), arrivals: [], tokens: [] };
    const call = client.Generate({ model, prompt: p.text, max_tokens: maxNew, temperature: 0, ignore_eos: true }, new grpc.Metadata(), { deadline: Date.now() + 300_000 });
    call.on('data', (m: { token_ids: (number | string)[]; usage: { completion_tokens: number; time_to_first_token_s: number; total_time_s: number } | null }) => {
      const now = performance.now();
      if (m.token_ids.length > 0) {
        r.arrivals.push(now);
        for (const t of m.token_ids) r.tokens.push(Number(t));
      }
      if (m.usage) r.usage = { completionTokens: Number(m.usage.completion_tokens), ttftS: m.usage.time_to_first_token_s, totalS: m.usage.total_time_s };
    });
    call.on('error', (e: Error) => resolve({ ...r, error: e.message }));
    call.on('end', () => resolve(r));
  });
}

/** `prompts.length` streams started together; the window's server counters and the machine's other CPU. */
async function wave(server: ServerChild, client: ModelServiceClient, model: string, prompts: Prompt[], maxNew: number): Promise<Wave> {
  await waitForQuiet(SETTINGS.maxOtherCpuPct / 2, SETTINGS.quietWaitMs, log);
  await server.reset();
  const m0 = machineCpu();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const streams = await Promise.all(prompts.map((p) => stream(client, model, p, maxNew)));
  const end = Math.max(...streams.map((s) => s.arrivals[s.arrivals.length - 1] ?? t0));
  const wallMs = end - t0;
  const client1 = process.cpuUsage(c0);
  const stats = (await server.stats()) as EntryStats & { steps: StepWindow };
  const m1 = machineCpu();
  const tokens = streams.reduce((n, s) => n + s.tokens.length, 0);
  return {
    concurrency: prompts.length,
    wallMs,
    tokens,
    tokensPerS: tokens / (wallMs / 1000),
    streams,
    server: stats,
    clientCpuPct: ((client1.user + client1.system) / 1000 / wallMs) * 100,
    otherCpuPct: foreignCpuPct(m0, m1, client1.user + client1.system + stats.processCpuUs, stats.windowMs),
  };
}

function command(): string {
  const knobs = Object.entries(env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v} `).join('');
  return `${knobs}npm run build && node ${path.relative(PACKAGE_ROOT, process.argv[1] ?? 'dist/bench/generation.js')}`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const date = new Date();
  const src = modelDir();
  const name = path.basename(src);
  const { file, version } = modelFile(src);
  const hf = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')) as HfModelConfig & Record<string, unknown>;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-bench-gen-'));
  process.once('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  // The server's repository (config.yaml with the bench's generation limits) and transformers.js' layout.
  const repo = path.join(tmp, 'repo');
  const served = layOut(src, repo, name, file, path.join(version, 'model.onnx'));
  const yaml = `generation:\n${Object.entries(SETTINGS.generation).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`;
  fs.writeFileSync(path.join(served, 'config.yaml'), yaml);
  layOut(src, path.join(tmp, 'tfjs'), name, file, 'onnx/model.onnx');

  // The workers' session settings, derived as the server derives them (model-repository.ts).
  const workers = Number(env.TENSORGATE_WORKERS) || defaultWorkerCount();
  const cfg = await readModelConfig(path.join(served, 'config.yaml'), name);
  const settings: SessionSettings = {
    intraOpThreads: cfg.session.intra_op_threads || Number(env.TENSORGATE_INTRA_OP_THREADS) || defaultIntraOpThreads(workers),
    interOpThreads: cfg.session.inter_op_threads,
    graphOptimizationLevel: cfg.session.graph_optimization_level,
    executionMode: cfg.session.execution_mode,
    executionProviders: cfg.session.execution_providers,
  };
  const cores = os.availableParallelism();
  const threads = [...new Set([settings.intraOpThreads, cores])];

  const tokenizer = await TextTokenizer.load(src);
  const { maxNew, promptTokens, concurrency, repeats } = SETTINGS;
  const [warmup] = makePrompts(tokenizer, 1, promptTokens, 999);
  const single = makePrompts(tokenizer, SETTINGS.single, promptTokens, 1);
  const waves = new Map(concurrency.map((c) => [c, Array.from({ length: repeats }, (_, r) => makePrompts(tokenizer, c, promptTokens, 100 + c * 10 + r))]));
  const sequential = (waves.get(SEQUENTIAL) ?? [makePrompts(tokenizer, SEQUENTIAL, promptTokens, 100 + SEQUENTIAL * 10)])[0]!;
  const facts: ModelFacts = {
    name,
    dir: path.relative(PACKAGE_ROOT, src) || src,
    file: path.relative(src, file),
    params: llamaParams(hf),
    vocab: hf.vocab_size,
    layers: hf.num_hidden_layers,
    hidden: hf.hidden_size,
    heads: hf.num_attention_heads,
    kvHeads: hf.num_key_value_heads,
    headDim: hf.head_dim,
    maxPositions: hf.max_position_embeddings,
    kvDtype: JSON.stringify(hf['transformers.js_config'] ?? {}).includes('float16') ? 'float16' : 'float32',
  };
  log(`bench generation: ${name} (${facts.file}); ${promptTokens}-token prompts, ${maxNew} new tokens; concurrency ${concurrency.join(', ')}`);

  const common = { modelFile: file, hfConfig: hf, maxNew, warmup: warmup!, quietPct: SETTINGS.maxOtherCpuPct / 2, quietWaitMs: SETTINGS.quietWaitMs };
  log(`1/3 raw decode loop (intra-op threads ${threads.join(', ')})`);
  const rawArgs: BaselineArgs = {
    ...common,
    kind: 'raw',
    settings,
    threads,
    groups: [{ name: 'single', runs: single.map((p) => [p]) }, ...concurrency.map((c) => ({ name: `c${c}`, runs: waves.get(c)! }))],
  };
  const raw = await runOnce<BaselineResult>('generation-entry', [JSON.stringify(rawArgs)], 20 * 60_000);

  log('2/3 transformers.js');
  let tfjs: BaselineResult | undefined;
  let tfjsError: string | undefined;
  try {
    const tfjsArgs: BaselineArgs = { ...common, kind: 'tfjs', tfjsRoot: path.join(tmp, 'tfjs'), tfjsName: name, groups: [{ name: 'single', runs: single.map((p) => [p]) }, { name: `seq${SEQUENTIAL}`, runs: [sequential] }] };
    tfjs = await runOnce<BaselineResult>('generation-entry', [JSON.stringify(tfjsArgs)], 20 * 60_000);
  } catch (err) {
    tfjsError = err instanceof Error ? err.message : String(err);
    log(`  transformers.js not measured: ${tfjsError}`);
  }

  log('3/3 tensorgate');
  const server = await ServerChild.start('generation-server-entry', [repo], { timeoutMs: 120_000 });
  const client = createModelClient(server.address);
  const singleWaves: Wave[] = [];
  const sweep: Wave[] = [];
  try {
    // Warm-up: every worker, and the widest batch (ONNX Runtime allocates on the first runs of a shape).
    await wave(server, client, name, Array.from({ length: Math.max(...concurrency) }, () => warmup!), maxNew);
    for (const p of single) singleWaves.push(await wave(server, client, name, [p], maxNew));
    log(`  single: ${singleWaves.map((w) => w.tokensPerS.toFixed(0)).join(', ')} tok/s`);
    for (const c of concurrency) {
      for (const prompts of waves.get(c)!) sweep.push(await wave(server, client, name, prompts, maxNew));
      log(`  c=${c}: ${sweep.filter((w) => w.concurrency === c).map((w) => w.tokensPerS.toFixed(0)).join(', ')} tok/s`);
    }
  } finally {
    client.close();
    await server.stop();
  }

  const data: GenData = {
    date: date.toISOString(),
    command: command(),
    revision: revision(),
    machine: machine(),
    durationS: 0,
    model: facts,
    settings: { ...SETTINGS, workers, sessionSettings: settings, rawThreads: threads, sequential: SEQUENTIAL },
    raw,
    tfjs,
    tfjsError,
    single: singleWaves,
    sweep,
  };
  data.durationS = (performance.now() - started) / 1000;
  const md = generationMarkdown(data);
  console.log(`\n${md}`);
  const dir = path.join(PACKAGE_ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const pad = (n: number) => String(n).padStart(2, '0');
  const stamp = `generation-${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}-${pad(date.getHours())}${pad(date.getMinutes())}${env.BENCH_GEN_TAG ? `-${env.BENCH_GEN_TAG}` : ''}`;
  fs.writeFileSync(path.join(dir, `${stamp}.md`), md);
  // Arrival times as ms after each stream's request, rounded: the file stays readable and small.
  const compact = (w: Wave) => ({ ...w, streams: w.streams.map(({ sentAt, arrivals, ...s }) => ({ ...s, arrivalsMs: arrivals.map((t) => Math.round((t - sentAt) * 1000) / 1000) })) });
  fs.writeFileSync(path.join(dir, `${stamp}.json`), `${JSON.stringify({ ...data, single: data.single.map(compact), sweep: data.sweep.map(compact) })}\n`);
  log(`\nbench generation: wrote bench/results/${stamp}.md and .json`);
}

main().catch((err: unknown) => {
  console.error('bench generation failed:', err);
  process.exitCode = 1;
});
