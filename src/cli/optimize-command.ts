/**
 * `tensorgate optimize MODEL --to VERSION [--from VERSION] [--models DIR] PASS...`: writes an optimised copy of a
 * model version as a new version (src/optimize/optimize-model.ts) and prints what each pass did.
 */
import { GRAPH_LEVELS, type GraphLevel } from '../optimize/graph-optimize';
import { optimizeModel, type OptimizeReport } from '../optimize/optimize-model';
import { BUNDLED_MODELS_DIR } from '../paths';

interface OptimizeFlags {
  to?: string;
  from?: string;
  models?: string;
  graphOptimize?: string;
  quantize?: string;
  fp16?: boolean;
  prune?: string;
}

export async function optimizeCommand(positionals: string[], flags: OptimizeFlags): Promise<void> {
  const usage = `usage: tensorgate optimize MODEL --to VERSION [--from VERSION] [--models DIR] [--prune magnitude:FRACTION] [--quantize int8-dynamic | --fp16] [--graph-optimize ${GRAPH_LEVELS.join('|')}]`;
  if (positionals.length !== 1) throw new Error(`${usage} (one MODEL, got ${positionals.length})`);
  if (flags.to === undefined) throw new Error(`${usage} (--to is required: the new version's number)`);
  const report = await optimizeModel({
    models: flags.models ?? process.env.TENSORGATE_MODELS ?? BUNDLED_MODELS_DIR,
    model: positionals[0]!,
    to: Number(flags.to),
    ...(flags.from !== undefined ? { from: Number(flags.from) } : {}),
    ...(flags.prune !== undefined ? { prune: flags.prune } : {}),
    ...(flags.quantize !== undefined ? { quantize: flags.quantize } : {}),
    ...(flags.fp16 ? { fp16: true } : {}),
    ...(flags.graphOptimize !== undefined ? { graphOptimize: flags.graphOptimize as GraphLevel } : {}),
  });
  process.stdout.write(`${describeReport(report).join('\n')}\n`);
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

export function describeReport(report: OptimizeReport): string[] {
  const lines = [`${report.model}: version ${report.from} -> version ${report.to} (${report.passes.join(', ')})`];
  if (report.prune) {
    const zeros = report.prune.layers.reduce((s, l) => s + l.zeros, 0);
    const size = report.prune.layers.reduce((s, l) => s + l.size, 0);
    lines.push(`  pruned ${report.prune.layers.length} layers: ${zeros} of ${size} weights are zero (${((100 * zeros) / Math.max(size, 1)).toFixed(1)}%)`);
  }
  if (report.quantize) {
    lines.push(`  int8: ${report.quantize.layers.length} layers quantized (${report.quantize.layers.map((l) => l.op).join(', ') || 'none'})`);
    for (const s of report.quantize.skipped) lines.push(`  int8: left ${s.op} ${s.node} in float: ${s.reason}`);
  }
  if (report.fp16) {
    lines.push(`  fp16: ${report.fp16.tensorsConverted} tensors stored as float16`);
    if (report.fp16.keptFloat32.length > 0) lines.push(`  fp16: kept in float32: ${report.fp16.keptFloat32.join(', ')}`);
  }
  lines.push(`  model.onnx   ${kib(report.bytesBefore)} -> ${kib(report.bytesAfter)} (${(report.bytesBefore / report.bytesAfter).toFixed(2)}x smaller)`);
  for (const [name, e] of Object.entries(report.maxAbsError)) lines.push(`  output ${name}: largest difference over ${report.checkRows} rows of seeded inputs ${e.toExponential(2)}`);
  lines.push(`  compare speed and accuracy: tensorgate compare ${report.model} ${report.from} ${report.to}; the model's version_policy decides whether a server serves it`);
  return lines;
}
