/**
 * `tensorgate optimize MODEL --to VERSION [--from VERSION] [--models DIR] --graph-optimize LEVEL`: writes an
 * optimised copy of a model version as a new version (src/optimize/graph-optimize.ts) and prints what changed.
 */
import { GRAPH_LEVELS, optimizeModel, type GraphLevel } from '../optimize/graph-optimize';
import { BUNDLED_MODELS_DIR } from '../paths';

export async function optimizeCommand(positionals: string[], flags: { to?: string; from?: string; models?: string; graphOptimize?: string }): Promise<void> {
  const usage = `usage: tensorgate optimize MODEL --to VERSION --graph-optimize ${GRAPH_LEVELS.join('|')} [--from VERSION] [--models DIR]`;
  if (positionals.length !== 1) throw new Error(`${usage} (one MODEL, got ${positionals.length})`);
  if (flags.to === undefined) throw new Error(`${usage} (--to is required: the new version's number)`);
  if (flags.graphOptimize === undefined) throw new Error(`${usage} (name a pass: --graph-optimize)`);
  const report = await optimizeModel({
    models: flags.models ?? process.env.TENSORGATE_MODELS ?? BUNDLED_MODELS_DIR,
    model: positionals[0]!,
    to: Number(flags.to),
    ...(flags.from !== undefined ? { from: Number(flags.from) } : {}),
    graphOptimize: flags.graphOptimize as GraphLevel,
  });
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const lines = [
    `${report.model}: version ${report.from} -> version ${report.to} (ONNX Runtime graph optimisation '${report.level}')`,
    `  model.onnx   ${kib(report.bytesBefore)} -> ${kib(report.bytesAfter)}`,
    ...Object.entries(report.maxAbsError).map(([name, e]) => `  output ${name}: largest difference over ${report.checkRows} rows of seeded inputs ${e.toExponential(2)}`),
    `  the repository's version_policy decides whether a server serves it; config.yaml canary splits traffic between versions`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
