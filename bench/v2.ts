/**
 * What the v2 protocol costs against ModelService on the same server: ModelInfer (raw contents) against
 * Predict on `mlp` at concurrency 64, measured alternately in the same server over several rounds (a
 * noisy VM moves more between runs than the difference asked about), and REST /v2 infer with JSON and with
 * Triton's binary tensor extension beside them. Every request is the same fixed payload with the result cache
 * off, so each one runs the model.
 *
 *   npm run bench:v2      BENCH_ROUNDS (4), BENCH_SECONDS (4), BENCH_WARMUP_SECONDS (1.5), BENCH_CONCURRENCY (64)
 *
 * Writes bench/results/v2-<date>.md with the machine, command, date and commit. Target (issue "Open Inference
 * Protocol v2"): ModelInfer req/s >= 0.95 x Predict's, median over the rounds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ServerChild } from './child';
import { runLoad, type LoadPoint } from './load-generator';
import { machine, revision } from './machine-facts';
import { waitForQuiet } from './machine-load';
import { mainUsPerReq } from './report';
import { runRestLoad, restInferBody, type RestLoadResult } from './v2-rest-load';
import { writeRepository } from './workload';

const MODEL = 'mlp';

interface Sample {
  variant: string;
  round: number;
  reqPerS: number;
  p50Ms: number;
  p99Ms: number;
  mainUs: number | undefined;
  errors: number;
}

const fromGrpc = (variant: string, round: number, p: LoadPoint): Sample => ({
  variant,
  round,
  reqPerS: p.reqPerS,
  p50Ms: p.p50Ms,
  p99Ms: p.p99Ms,
  mainUs: mainUsPerReq(p),
  errors: Object.values(p.errors).reduce((a, b) => a + b, 0),
});

const fromRest = (variant: string, round: number, r: RestLoadResult, mainUs: number | undefined): Sample => ({
  variant,
  round,
  reqPerS: r.requests / r.seconds,
  p50Ms: r.p50Ms,
  p99Ms: r.p99Ms,
  mainUs,
  errors: r.errors,
});

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const started = new Date();
  const rounds = Number(process.env.BENCH_ROUNDS ?? 4);
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 64);
  const warmupMs = Number(process.env.BENCH_WARMUP_SECONDS ?? 1.5) * 1000;
  const measureMs = Number(process.env.BENCH_SECONDS ?? 4) * 1000;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-bench-v2-'));
  const samples: Sample[] = [];
  const server = await ServerChild.start('server-entry', [writeRepository(path.join(tmp, 'models'), [MODEL], true)]);
  try {
    const grpcPoint = async (variant: string, rpc: 'Predict' | 'ModelInfer', round: number) => {
      await waitForQuiet(10, 30_000, () => undefined);
      const p = await runLoad({ server, model: MODEL, concurrency, warmupMs, measureMs, threads: 2, rpc });
      samples.push(fromGrpc(variant, round, p));
    };
    const restPoint = async (variant: string, binary: boolean, round: number) => {
      await waitForQuiet(10, 30_000, () => undefined);
      const body = restInferBody(binary);
      await runRestLoad({ port: server.httpPort, path: `/v2/models/${MODEL}/infer`, body, concurrency, durationMs: warmupMs });
      await server.reset();
      const r = await runRestLoad({ port: server.httpPort, path: `/v2/models/${MODEL}/infer`, body, concurrency, durationMs: measureMs });
      const stats = await server.stats();
      samples.push(fromRest(variant, round, r, r.requests > 0 ? stats.mainCpuUs / r.requests : undefined));
    };
    for (let round = 1; round <= rounds; round++) {
      // Predict and ModelInfer swap places every round (ABBA), so a drift of the machine during a round
      // does not always favour the same one.
      const pair: [string, 'Predict' | 'ModelInfer'][] = [
        ['gRPC ModelService Predict', 'Predict'],
        ['gRPC v2 ModelInfer (raw)', 'ModelInfer'],
      ];
      for (const [variant, rpc] of round % 2 ? pair : pair.reverse()) await grpcPoint(variant, rpc, round);
      await restPoint('REST v2 infer, JSON', false, round);
      await restPoint('REST v2 infer, binary extension', true, round);
      for (const s of samples.filter((x) => x.round === round)) {
        console.error(`round ${round} ${s.variant.padEnd(34)} ${s.reqPerS.toFixed(0)} req/s p50 ${s.p50Ms.toFixed(2)} ms`);
      }
    }
  } finally {
    await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const report = render(samples, { started, rounds, concurrency, measureMs });
  process.stdout.write(report);
  const stamp = started.toISOString().slice(0, 16).replace('T', '-').replace(':', '');
  const file = path.join(__dirname, '..', '..', 'bench', 'results', `v2-${stamp}.md`);
  fs.writeFileSync(file, report);
  console.error(`written: ${path.relative(process.cwd(), file)}`);
}

/** Table order: Predict (the reference), ModelInfer, then REST. */
const order = (variant: string) => (variant.includes('Predict') ? 0 : variant.includes('ModelInfer') ? 1 : 2);

function render(samples: Sample[], o: { started: Date; rounds: number; concurrency: number; measureMs: number }): string {
  const m = machine();
  const variants = [...new Set(samples.map((s) => s.variant))].sort((a, b) => order(a) - order(b));
  const byVariant = (v: string) => samples.filter((s) => s.variant === v);
  const predict = median(byVariant(variants[0]!).map((s) => s.reqPerS));
  const infer = median(byVariant(variants[1]!).map((s) => s.reqPerS));
  const ratio = infer / predict;
  const lines = [
    `# v2 protocol vs ModelService, ${MODEL}, c=${o.concurrency}`,
    '',
    `- machine: ${m.cpu}, ${m.cores} cores, Node ${process.version}; tensorgate at ${revision()}`,
    `- command: \`npm run bench:v2\` (${o.rounds} rounds, ${o.measureMs / 1000} s measured per point after a warm-up; the variants alternate within each round)`,
    `- date: ${o.started.toISOString()}`,
    '- one server (bundled config, result cache off), the load generator on the same machine: gRPC from 2 threads (one channel each), REST from keep-alive HTTP/1.1 connections in the parent process',
    '',
    `**${ratio >= 0.95 ? 'HIT' : 'MISS'}** ModelInfer (raw) req/s >= 0.95 x Predict at c=${o.concurrency}: ${infer.toFixed(0)} vs ${predict.toFixed(0)} req/s (medians over the rounds) = ${ratio.toFixed(3)}x`,
    '',
    '| variant | req/s (median) | vs Predict | rounds (req/s) | p50 ms (median) | p99 ms (median) | server main µs/req (median) | errors |',
    '|---|---:|---:|---|---:|---:|---:|---:|',
  ];
  for (const v of variants) {
    const xs = byVariant(v);
    const rps = median(xs.map((s) => s.reqPerS));
    const main = xs.map((s) => s.mainUs).filter((x): x is number => x !== undefined);
    lines.push(
      `| ${v} | ${rps.toFixed(0)} | ${(rps / predict).toFixed(2)}x | ${xs.map((s) => s.reqPerS.toFixed(0)).join(', ')} | ${median(xs.map((s) => s.p50Ms)).toFixed(2)} | ${median(xs.map((s) => s.p99Ms)).toFixed(2)} | ${main.length ? median(main).toFixed(0) : '-'} | ${xs.reduce((a, s) => a + s.errors, 0)} |`,
    );
  }
  return lines.join('\n') + '\n';
}

main().catch((err: unknown) => {
  console.error('bench v2 failed:', err);
  process.exit(1);
});
