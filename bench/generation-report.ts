/**
 * The generation benchmark's tables and target verdicts (markdown), from what bench/generation.ts
 * measured. Every ratio is against a baseline measured in the same run on the same machine. Medians over
 * repeats for throughput (one disturbed repeat should not move it); latency percentiles pool every token
 * of every stream at a concurrency.
 */
import type { EntryStats } from './entry-ipc';
import type { BaselineResult, BaselineRun } from './generation-entry';
import type { StepWindow } from './generation-server-entry';
import { percentile } from './load-generator';
import type { machine } from './machine-facts';
import { f0, f2, pct, times, verdict, type Verdict } from './report';

export interface StreamResult {
  sentAt: number;
  /** performance.now() of each message that carried tokens. */
  arrivals: number[];
  tokens: number[];
  usage?: { completionTokens: number; ttftS: number; totalS: number };
  error?: string;
}

export interface Wave {
  concurrency: number;
  /** From the first request to the last token message. */
  wallMs: number;
  tokens: number;
  tokensPerS: number;
  streams: StreamResult[];
  server: EntryStats & { steps: StepWindow };
  /** The benchmark's own process (the gRPC client), % of one core. */
  clientCpuPct: number;
  otherCpuPct: number;
}

export interface ModelFacts {
  name: string;
  dir: string;
  file: string;
  params: number | undefined;
  vocab?: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  maxPositions?: number;
  kvDtype: string;
}

export interface GenData {
  date: string;
  command: string;
  revision: string;
  machine: ReturnType<typeof machine>;
  durationS: number;
  model: ModelFacts;
  settings: {
    maxNew: number;
    promptTokens: number;
    concurrency: number[];
    repeats: number;
    single: number;
    maxOtherCpuPct: number;
    generation: Record<string, number>;
    workers: number;
    sessionSettings: { intraOpThreads: number };
    rawThreads: number[];
    sequential: number;
  };
  raw: BaselineResult;
  tfjs: BaselineResult | undefined;
  tfjsError: string | undefined;
  single: Wave[];
  sweep: Wave[];
}

const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pctl = (xs: number[], p: number) => percentile(Float64Array.from(xs).sort(), p);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const same = (a: number[] | undefined, b: number[] | undefined) => !!a && !!b && a.length === b.length && a.every((x, i) => x === b[i]);

function rawRuns(d: GenData, threads: number, group: string): BaselineRun[] {
  return d.raw.sets.find((s) => s.threads === threads)?.groups[group] ?? [];
}
const rawTokS = (d: GenData, threads: number, group: string) => median(rawRuns(d, threads, group).map((r) => r.tokensPerS));
const engineRuns = (d: GenData, group: string) => d.raw.sets.find((s) => s.engine)?.engine?.[group] ?? [];
const tfjsRuns = (d: GenData, group: string) => d.tfjs?.sets[0]?.groups[group] ?? [];

/** Everything one concurrency's waves say, pooled. */
function summary(waves: Wave[]) {
  const streams = waves.flatMap((w) => w.streams);
  const ttft = streams.filter((s) => s.arrivals.length).map((s) => s.arrivals[0]! - s.sentAt);
  const itl = streams.flatMap((s) => s.arrivals.slice(1).map((t, i) => t - s.arrivals[i]!));
  const st = waves.map((w) => w.server.steps);
  const steps = sum(st.map((s) => s.steps));
  const tokens = sum(waves.map((w) => w.tokens));
  const workersUsed = waves.map((w) => w.server.steps.perWorker.filter((n) => n > 0).length);
  return {
    tokS: median(waves.map((w) => w.tokensPerS)),
    streamTokS: median(streams.map((s) => s.tokens.length / ((s.arrivals[s.arrivals.length - 1]! - s.sentAt) / 1000))),
    ttft50: pctl(ttft, 50),
    ttft99: pctl(ttft, 99),
    itl50: pctl(itl, 50),
    itl99: pctl(itl, 99),
    serverTtft50: pctl(streams.filter((s) => s.usage).map((s) => s.usage!.ttftS * 1000), 50),
    serverTtft99: pctl(streams.filter((s) => s.usage).map((s) => s.usage!.ttftS * 1000), 99),
    rowsPerStep: tokens / steps,
    computeMs: sum(st.map((s) => s.computeMs)) / steps,
    stepMs: sum(st.map((s) => s.stepWallMs)) / steps,
    gapMs: sum(st.map((s) => s.gapMs)) / Math.max(1, sum(st.map((s) => s.gaps))),
    workersUsed: median(workersUsed),
    busy: median(waves.map((w, i) => w.server.steps.computeMs / (w.wallMs * workersUsed[i]!))),
    /** The worker threads' own CPU per step, and as a share of their wall time. */
    workerCpuMs: sum(waves.map((w, i) => sum(w.server.steps.workerCpuUs.slice(0, workersUsed[i])))) / 1000 / steps,
    workerCpuPct: median(waves.map((w, i) => sum(w.server.steps.workerCpuUs.slice(0, workersUsed[i])) / 1000 / (w.server.windowMs * workersUsed[i]!))),
    mainUsPerTok: sum(waves.map((w) => w.server.mainCpuUs)) / tokens,
    procUsPerTok: sum(waves.map((w) => w.server.processCpuUs)) / tokens,
    mainPct: median(waves.map((w) => (w.server.mainCpuUs / 1000 / w.server.windowMs) * 100)),
    clientPct: median(waves.map((w) => w.clientCpuPct)),
    otherPct: Math.max(...waves.map((w) => w.otherCpuPct)),
    errors: streams.filter((s) => s.error).length,
  };
}

function tokenChecks(d: GenData): string[] {
  const t1 = d.settings.sessionSettings.intraOpThreads;
  const out: string[] = [];
  const raw1 = rawRuns(d, t1, 'single');
  const singleSame = d.single.filter((w, i) => same(w.streams[0]?.tokens, raw1[i]?.tokens[0])).length;
  out.push(`single stream: tensorgate's tokens == the raw loop's for ${singleSame}/${d.single.length} prompts`);
  for (const c of d.settings.concurrency) {
    const waves = d.sweep.filter((w) => w.concurrency === c);
    const runs = rawRuns(d, t1, `c${c}`);
    let ok = 0, all = 0;
    waves.forEach((w, r) => w.streams.forEach((s, i) => ((all++), same(s.tokens, runs[r]?.tokens[i]) && ok++)));
    out.push(`c=${c}: tensorgate's tokens == the raw batched loop's for ${ok}/${all} streams`);
  }
  if (d.tfjs) {
    const tf = tfjsRuns(d, 'single');
    const n = d.single.filter((w, i) => same(w.streams[0]?.tokens, tf[i]?.tokens[0])).length;
    out.push(`single stream: transformers.js' tokens == tensorgate's for ${n}/${d.single.length} prompts (min_new_tokens masks EOS where ignore_eos would pick it, so an EOS-heavy model can differ); its tokenizer gave other ids than the server's for ${d.tfjs.tokenizerMismatches} prompts`);
  }
  return out;
}

/** Where a single stream's time per token goes, from the raw loop up to the client. */
function singleBreakdown(d: GenData): string {
  const t1 = d.settings.sessionSettings.intraOpThreads;
  const s = summary(d.single);
  const rawStep = median(rawRuns(d, t1, 'single').map((r) => r.stepMs ?? NaN));
  const engStep = median(engineRuns(d, 'single').map((r) => r.stepMs ?? NaN));
  const tg = 1000 / median(d.single.map((w) => w.tokensPerS));
  return `raw decode step ${f2(rawStep)} ms; DecodeEngine step in-process ${f2(engStep)} ms; tensorgate: session.run ${f2(s.computeMs)} ms of a ` +
    `${f2(s.stepMs)} ms step round trip seen from the main thread (${f2(s.stepMs - engStep)} ms more than the in-process step), in which the worker thread used ${f2(s.workerCpuMs)} ms of CPU ` +
    `and waited ${f2(s.stepMs - s.workerCpuMs)} ms (the request's and the reply's thread hops: wake-ups, and the main thread's other work), ` +
    `then ${f2(s.gapMs)} ms on the main thread before the next step is sent (the token's delivery and gRPC write come first); ` +
    `${f2(tg)} ms per token at the client (inter-token p50 ${f2(s.itl50)} ms)`;
}

function singleTable(d: GenData): { md: string; tg: number; raw1: number; tf: number } {
  const t1 = d.settings.sessionSettings.intraOpThreads;
  const tg = median(d.single.map((w) => w.tokensPerS));
  const raw1 = rawTokS(d, t1, 'single');
  const tf = median(tfjsRuns(d, 'single').map((r) => r.tokensPerS));
  const range = (xs: number[]) => (xs.length ? `${f0(Math.min(...xs))}–${f0(Math.max(...xs))}` : '-');
  const row = (what: string, xs: number[], other: number) => {
    const m = median(xs);
    return `| ${what} | ${f0(m)} | ${range(xs)} | ${f2(1000 / m)} | ${f0(other)}% | ${what.startsWith('tensorgate') ? '-' : times(tg / m)} |`;
  };
  const lines = ['| system | tok/s (median) | range | ms/token | other CPU (max) | tensorgate vs it |', '|---|---:|---:|---:|---:|---:|'];
  lines.push(row('tensorgate (gRPC, client view)', d.single.map((w) => w.tokensPerS), Math.max(...d.single.map((w) => w.otherCpuPct))));
  for (const s of d.raw.sets) {
    const runs = s.groups.single ?? [];
    lines.push(row(`raw loop, ${s.threads} intra-op thread${s.threads > 1 ? 's' : ''}${s.threads === t1 ? ' (the workers\' setting)' : ''}`, runs.map((r) => r.tokensPerS), Math.max(...runs.map((r) => r.otherCpuPct))));
  }
  const eng = engineRuns(d, 'single');
  if (eng.length) lines.push(row(`DecodeEngine in-process, ${t1} thread (the worker's step code, no thread hop, no gRPC)`, eng.map((r) => r.tokensPerS), Math.max(...eng.map((r) => r.otherCpuPct))));
  const tfr = tfjsRuns(d, 'single');
  if (tfr.length) lines.push(row(`transformers.js ${d.tfjs?.version ?? ''} (ORT default threads)`, tfr.map((r) => r.tokensPerS), Math.max(...tfr.map((r) => r.otherCpuPct))));
  else lines.push(`| transformers.js | not measured: ${d.tfjsError ?? 'no result'} | | | | |`);
  const s = summary(d.single);
  lines.push('', `Per token, single stream: ${singleBreakdown(d)}; server main thread ${f0(s.mainUsPerTok)} µs CPU per token, client ${f0(s.clientPct)}% of a core.`);
  return { md: lines.join('\n'), tg, raw1, tf };
}

function sweepTable(d: GenData): string {
  const [t1, t2] = [d.settings.rawThreads[0]!, d.settings.rawThreads[1]];
  const lines = [
    `| streams | tok/s | per-stream tok/s | raw B=c ${t1}t | raw B=c ${t2 ?? '-'}t | vs raw ${t1}t | vs raw ${t2 ?? '-'}t | engine B=c ${t1}t | rows/step | workers used | workers in session.run | worker threads' CPU | step compute ms | worker CPU/step ms | step round trip ms | main gap ms | main µs/token | main thread | process µs/token | client CPU | other CPU | errors |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of d.settings.concurrency) {
    const s = summary(d.sweep.filter((w) => w.concurrency === c));
    const r1 = rawTokS(d, t1, `c${c}`);
    const r2 = t2 !== undefined ? rawTokS(d, t2, `c${c}`) : NaN;
    lines.push(`| ${c} | ${f0(s.tokS)} | ${f0(s.streamTokS)} | ${f0(r1)} | ${f0(r2)} | ${pct(s.tokS / r1)} | ${pct(s.tokS / r2)} | ${f0(median(engineRuns(d, `c${c}`).map((r) => r.tokensPerS)))} | ${f2(s.rowsPerStep)} | ${s.workersUsed} | ${pct(s.busy)} | ${pct(s.workerCpuPct)} | ` +
      `${f2(s.computeMs)} | ${f2(s.workerCpuMs)} | ${f2(s.stepMs)} | ${f2(s.gapMs)} | ${f0(s.mainUsPerTok)} | ${f0(s.mainPct)}% | ${f0(s.procUsPerTok)} | ${f0(s.clientPct)}% | ${f0(s.otherPct)}% | ${s.errors} |`);
  }
  const rawSteps = d.raw.sets.map((set) => `${set.threads}t: ${d.settings.concurrency.map((c) => `B=${c} ${f2(median((set.groups[`c${c}`] ?? []).map((r) => r.stepMs ?? NaN)))}`).join(', ')}`);
  lines.push('', `Raw loop ms per decode step: ${rawSteps.join('; ')}.`);
  return lines.join('\n');
}

function latencyTable(d: GenData): string {
  const lines = ['| streams | client TTFT p50 ms | p99 | inter-token p50 ms | p99 | server TTFT p50 ms (usage) | p99 |', '|---:|---:|---:|---:|---:|---:|---:|'];
  for (const c of d.settings.concurrency) {
    const s = summary(d.sweep.filter((w) => w.concurrency === c));
    lines.push(`| ${c} | ${f2(s.ttft50)} | ${f2(s.ttft99)} | ${f2(s.itl50)} | ${f2(s.itl99)} | ${f2(s.serverTtft50)} | ${f2(s.serverTtft99)} |`);
  }
  return lines.join('\n');
}

function targets(d: GenData, single: { tg: number; raw1: number; tf: number }): Verdict[] {
  const t1 = d.settings.sessionSettings.intraOpThreads;
  const out: Verdict[] = [];
  const overhead = `per token: ${singleBreakdown(d)}`;
  out.push(verdict('single stream: tensorgate tok/s >= 0.95 x raw decode loop (same threads)', single.tg, 0.95 * single.raw1, false,
    `${f0(single.tg)} vs ${f0(single.raw1)} tok/s (${t1} intra-op thread${t1 > 1 ? 's' : ''}): ${times(single.tg / single.raw1)}; ${overhead}`));
  const rawAll = d.settings.rawThreads.map((t) => `${f0(rawTokS(d, t, 'single'))} tok/s with ${t}`).join(', ');
  out.push(verdict('single stream: tensorgate tok/s >= 1.0 x transformers.js', single.tg, single.tf, false,
    d.tfjs
      ? `${f0(single.tg)} vs ${f0(single.tf)} tok/s: ${times(single.tg / single.tf)}. transformers.js runs with ONNX Runtime's default intra-op threads (every core); ` +
        `a lone tensorgate stream runs on one worker with its ${t1} thread(s) (the raw loop: ${rawAll} thread(s))`
      : `transformers.js: ${d.tfjsError}`));
  const c8 = d.sweep.filter((w) => w.concurrency === 8);
  if (c8.length) {
    const s = summary(c8);
    const raws = d.settings.rawThreads.map((t) => ({ t, v: rawTokS(d, t, 'c8') }));
    const best = raws.reduce((a, b) => (b.v > a.v ? b : a));
    const bestStep = median(rawRuns(d, best.t, 'c8').map((r) => r.stepMs ?? NaN));
    out.push(verdict('8 streams: aggregate tok/s >= 0.85 x raw batched loop at B=8 (the better of its thread settings)', s.tokS, 0.85 * best.v, false,
      `${f0(s.tokS)} vs ${f0(best.v)} tok/s (raw, ${best.t} threads; ${raws.map((r) => `${r.t}t ${f0(r.v)}`).join(', ')}): ${times(s.tokS / best.v)}. ` +
        `The raw loop decodes the 8 rows in one ${f2(bestStep)} ms run on ${best.t} thread(s); the server splits them over its workers, ` +
        `${f2(s.rowsPerStep)} rows per step each, ${f2(s.computeMs)} ms per run on ${t1} thread(s) while the other worker runs too. ` +
        `Server: ${f2(s.rowsPerStep)} rows/step on ${s.workersUsed} workers; a step's round trip ${f2(s.stepMs)} ms, of which session.run ${f2(s.computeMs)} ms and the worker thread's CPU ${f2(s.workerCpuMs)} ms ` +
        `(worker threads busy ${pct(s.workerCpuPct)} of the time, in session.run ${pct(s.busy)}), then ${f2(s.gapMs)} ms on the main thread before the next step; ` +
        `main thread ${f0(s.mainPct)}% of a core (${f0(s.mainUsPerTok)} µs/token), the gRPC client ${f0(s.clientPct)}% of a core on the same machine, other processes ${f0(s.otherPct)}%`));
    const seq = tfjsRuns(d, `seq${d.settings.sequential}`)[0];
    out.push(verdict('8 streams: aggregate tok/s >= 3 x transformers.js serving the 8 one after another', s.tokS, 3 * (seq?.tokensPerS ?? NaN), false,
      seq ? `${f0(s.tokS)} vs ${f0(seq.tokensPerS)} tok/s: ${times(s.tokS / seq.tokensPerS)}` : `transformers.js: ${d.tfjsError}`));
  }
  return out;
}

export function generationMarkdown(d: GenData): string {
  const m = d.machine;
  const f = d.model;
  const single = singleTable(d);
  const tfSeq = tfjsRuns(d, `seq${d.settings.sequential}`)[0];
  const c8 = d.sweep.filter((w) => w.concurrency === d.settings.sequential);
  // Windows other processes disturbed, per kind of measurement (they were waited for, not repeated).
  const limit = d.settings.maxOtherCpuPct;
  const disturbed = (what: string, xs: number[]) => {
    const bad = xs.filter((x) => x > limit);
    return bad.length ? [`${what}: ${bad.length} of ${xs.length} windows had other processes above ${limit}% of a core (max ${f0(Math.max(...bad))}%)`] : [];
  };
  const baselineCpu = (b: BaselineResult | undefined) => (b?.sets ?? []).flatMap((s) => [...Object.values(s.groups), ...Object.values(s.engine ?? {})].flat().map((r) => r.otherCpuPct));
  const notes = [
    ...disturbed('tensorgate', d.sweep.concat(d.single).map((w) => w.otherCpuPct)),
    ...disturbed('raw loop and DecodeEngine', baselineCpu(d.raw)),
    ...disturbed('transformers.js', baselineCpu(d.tfjs)),
    ...d.sweep.concat(d.single).flatMap((w) => w.streams.filter((s) => s.error).map((s) => `a ${w.concurrency}-stream wave: a stream failed: ${s.error}`)),
  ];
  return [
    `# tensorgate text-generation benchmark, ${d.date}`,
    '',
    `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, @grpc/grpc-js ${m.grpcJs}; tensorgate at ${d.revision}`,
    `- command: \`${d.command}\` (took ${f0(d.durationS)} s)`,
    `- model: ${f.name} (${f.dir}, ${f.file}): ${f.params ? `${(f.params / 1e6).toFixed(2)}M parameters (from config.json)` : 'parameters unknown'}, vocab ${f.vocab}, ${f.layers} layers, hidden ${f.hidden}, ` +
      `${f.heads} heads / ${f.kvHeads} KV heads of ${f.headDim}, ${f.maxPositions} positions, KV cache ${f.kvDtype}`,
    `- workload: greedy, ignore_eos, ${d.settings.promptTokens}-token prompts (text, a distinct one per stream), ${d.settings.maxNew} new tokens each; ` +
      `single stream ${d.settings.single} runs; ${d.settings.repeats} waves per concurrency, every stream of a wave started together; medians over runs/waves`,
    `- tensorgate: config.yaml \`generation: ${JSON.stringify(d.settings.generation)}\`; ${d.settings.workers} inference workers, ${d.settings.sessionSettings.intraOpThreads} intra-op thread(s) each; result cache off; the gRPC client runs in the benchmark process on the same machine`,
    `- raw loop: tensorgate's own decode code (kv-batch.ts feeds, onnxruntime-node's binding session via NativeSession, greedy argmax) on one thread, no workers or gRPC; ` +
      `rows prefilled one at a time (as the server does), then one run per step for all rows; intra-op threads ${d.settings.rawThreads.join(' and ')}`,
    `- transformers.js: ${d.tfjs ? `@huggingface/transformers ${d.tfjs.version}` : 'not measured'}, AutoTokenizer + AutoModelForCausalLM (onnx/model.onnx, dtype fp32, default session options), ` +
      'generate({ max_new_tokens, min_new_tokens: the same, do_sample: false }) per request, tokenize and decode included; requests one after another',
    `- other CPU: CPU used by processes other than the benchmark's during a window (% of one core); a point waits (up to a limit) for the machine to be quiet first`,
    '',
    '## Targets',
    '',
    targets(d, single).map((v) => `- **${v.pass === undefined ? 'N/A' : v.pass ? 'HIT' : 'MISS'}** ${v.target}: ${v.detail}`).join('\n'),
    '',
    '## 1. Single stream',
    '',
    single.md,
    '',
    '## 2. Aggregate throughput by concurrent streams',
    '',
    sweepTable(d),
    '',
    `transformers.js serving ${d.settings.sequential} requests one after another: ${tfSeq ? `${f0(tfSeq.tokensPerS)} tok/s (${f0(tfSeq.wallMs)} ms for ${tfSeq.rows * d.settings.maxNew} tokens, other CPU ${f0(tfSeq.otherCpuPct)}%)` : 'not measured'}; ` +
      `tensorgate with the ${d.settings.sequential} streams at once: ${f0(summary(c8).tokS)} tok/s (${times(summary(c8).tokS / (tfSeq?.tokensPerS ?? NaN))}).`,
    '',
    '## 3. Latency (client view: message arrival times)',
    '',
    latencyTable(d),
    '',
    'Client TTFT: request sent to the first token message; inter-token: gaps between token messages of a stream; server TTFT: usage.time_to_first_token_s (arrival at the server to the first token).',
    '',
    '## Checks',
    '',
    ...tokenChecks(d).map((c) => `- ${c}`),
    ...(notes.length ? ['', '## Notes', '', ...notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}
