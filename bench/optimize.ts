/**
 * `npm run bench:optimize`: what each optimisation pass does to the bundled models, measured with `compare` on
 * this machine: file size, latency at batch 1, throughput at the best batch, how far the outputs move, and task
 * accuracy on the sentiment classifier's labelled set. Each pass writes its version into a temporary copy of
 * models/ with `optimize`, exactly as a user would, and is compared against version 1 (A and B interleaved, so
 * machine noise hits both). Writes bench/results/optimize-<date>.md; the README's optimisation table is its copy.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compareVersions, type CompareReport } from '../src/optimize/compare-versions';
import { optimizeModel, type OptimizeRequest } from '../src/optimize/optimize-model';
import { BUNDLED_MODELS_DIR } from '../src/paths';
import { machine, revision } from './machine-facts';

type Pass = Omit<OptimizeRequest, 'models' | 'model' | 'to' | 'from'>;
const CASES: { model: string; label: string; pass: Pass; data?: string }[] = [
  { model: 'mlp', label: 'int8 (`--quantize int8-dynamic`)', pass: { quantize: 'int8-dynamic' } },
  { model: 'mlp', label: 'fp16 (`--fp16`)', pass: { fp16: true } },
  { model: 'mlp', label: 'pruned 30% (`--prune magnitude:0.3`)', pass: { prune: 'magnitude:0.3' } },
  { model: 'mlp', label: 'graph (`--graph-optimize all`)', pass: { graphOptimize: 'all' } },
  { model: 'convnet', label: 'int8', pass: { quantize: 'int8-dynamic' } },
  { model: 'convnet', label: 'fp16', pass: { fp16: true } },
  { model: 'convnet', label: 'pruned 30%', pass: { prune: 'magnitude:0.3' } },
  { model: 'convnet', label: 'graph', pass: { graphOptimize: 'all' } },
  { model: 'sentiment', label: 'fp16', pass: { fp16: true }, data: 'labelled.jsonl' },
  { model: 'sentiment', label: 'pruned 30%', pass: { prune: 'magnitude:0.3' }, data: 'labelled.jsonl' },
];

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
const ms = (x: number) => (x < 0.1 ? x.toFixed(4) : x.toFixed(3));
const rate = (x: number) => Math.round(x).toLocaleString('en-US');
const pct = (x: number | undefined) => (x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

function row(label: string, r: CompareReport): string {
  const out = r.outputs[0]!;
  const accuracy = r.accuracy ? `${pct(r.accuracy.a)} -> ${pct(r.accuracy.b)}` : '-';
  return `| ${r.model} | ${label} | ${kib(r.b.bytes)} (${(r.a.bytes / r.b.bytes).toFixed(2)}x smaller) | ${ms(r.a.batch1!.p50Ms)} -> ${ms(r.b.batch1!.p50Ms)} | ${rate(r.a.best.rowsPerSecond)} -> ${rate(r.b.best.rowsPerSecond)} (batch ${r.a.best.batch} / ${r.b.best.batch}) | ${out.maxAbs.toExponential(1)} | ${pct(out.top1Agreement)} | ${accuracy} |`;
}

async function main(): Promise<void> {
  const started = new Date();
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'tensorgate-bench-optimize-'));
  const lines: string[] = [];
  try {
    for (const m of new Set(CASES.map((c) => c.model))) fs.cpSync(path.join(BUNDLED_MODELS_DIR, m), path.join(repo, m), { recursive: true });
    let next = 10;
    for (const c of CASES) {
      const to = next++;
      await optimizeModel({ models: repo, model: c.model, to, from: 1, ...c.pass });
      const report = await compareVersions({ models: repo, model: c.model, a: 1, b: to, seconds: SECONDS, ...(c.data ? { data: path.join(repo, c.model, c.data) } : {}) });
      lines.push(row(c.label, report));
      console.error(lines[lines.length - 1]);
    }
  } finally {
    fs.rmSync(repo, { recursive: true, force: true });
  }
  const m = machine();
  const report = [
    '# Optimisation passes on the bundled models',
    '',
    `- machine: ${m.cpu}, ${m.cores} cores, Node ${process.version}, onnxruntime-node ${m.onnxruntimeNode}; tensorgate at ${revision()}`,
    `- command: \`npm run bench:optimize\` (each pass with \`tensorgate optimize MODEL --from 1\`, then \`tensorgate compare MODEL 1 NEW\`, ${SECONDS} s of runs per version per batch size, A and B interleaved)`,
    `- date: ${started.toISOString()}`,
    '- one intra-op thread per session; latency and throughput are ONNX Runtime run time (no server); inputs: 256 seeded rows from the model\'s metadata, or the labelled set (sentiment: models/sentiment/labelled.jsonl, VADER\'s human-rated words)',
    '',
    '| model | version 1 vs | file | latency p50 at batch 1, ms | throughput at the best batch, rows/s | largest output change | top-1 agreement | task accuracy |',
    '|---|---|---|---:|---:|---:|---:|---:|',
    ...lines,
    '',
  ].join('\n');
  process.stdout.write(report);
  const stamp = started.toISOString().slice(0, 16).replace('T', '-').replace(':', '');
  const file = path.join(__dirname, '..', '..', 'bench', 'results', `optimize-${stamp}.md`);
  fs.writeFileSync(file, report);
  console.error(`written: ${path.relative(process.cwd(), file)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
