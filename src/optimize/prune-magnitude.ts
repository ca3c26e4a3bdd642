/**
 * `--prune magnitude:FRACTION`: in each layer, the FRACTION of its weights smallest in magnitude set to zero
 * (the L1 unstructured pruning of PyTorch's `prune.l1_unstructured(module, 'weight', amount)`, per layer).
 *
 * A layer is a MatMul, Gemm or Conv whose weight is a float constant, or a Gather reading a float table (an
 * embedding: the sentiment model's word valences are one). Biases and every other tensor stay as they were.
 * round(FRACTION x size) weights of each layer are zero afterwards (more only if more already were: zeros are
 * the smallest); ties in magnitude go to the earlier element, so the result is the same on every run.
 *
 * The file does not shrink (ONNX stores dense tensors); what pruning buys is weights that compress, and
 * a model a sparse runtime can exploit. `compare` shows what it costs in accuracy.
 */
import { GraphIndex } from '../onnx/onnx-graph';
import type { OnnxModel } from '../onnx/onnx-proto';
import { floatValues, setFloatValues, tensorDims } from '../onnx/onnx-tensors';

export interface PrunedLayer {
  node: string;
  op: string;
  weight: string;
  size: number;
  /** Weights that are zero afterwards (those that were already zero count). */
  zeros: number;
}

export interface PruneReport {
  fraction: number;
  layers: PrunedLayer[];
}

/** Which input of each op holds its weights. */
const WEIGHT_INPUT: Record<string, number> = { MatMul: 1, Gemm: 1, Conv: 1, Gather: 0 };

/** Parses `magnitude:0.3`; the fraction is in [0, 1). */
export function parsePruneSpec(spec: string): number {
  const match = /^magnitude:(\d*\.?\d+)$/.exec(spec);
  const fraction = match ? Number(match[1]) : NaN;
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`--prune must be magnitude:FRACTION with FRACTION in [0, 1), e.g. magnitude:0.3; got '${spec}'`);
  return fraction;
}

export function pruneMagnitude(model: OnnxModel, fraction: number): PruneReport {
  const report: PruneReport = { fraction, layers: [] };
  const graph = model.graph;
  if (!graph) return report;
  const index = new GraphIndex(graph);
  const done = new Set<string>();
  for (const node of graph.node ?? []) {
    const position = node.domain ? undefined : WEIGHT_INPUT[node.opType ?? ''];
    if (position === undefined) continue;
    const name = node.input?.[position];
    const weight = name ? index.initializers.get(name) : undefined;
    // A weight several layers share is pruned once, by its magnitudes, not once per reader.
    if (!weight || done.has(name!)) continue;
    const values = floatValues(weight);
    if (!values || (node.opType !== 'Gather' && tensorDims(weight).length < 2)) continue;
    done.add(name!);
    const target = Math.round(fraction * values.length);
    const order = Array.from(values.keys()).sort((a, b) => Math.abs(values[a]!) - Math.abs(values[b]!) || a - b);
    for (let i = 0; i < target; i++) values[order[i]!] = 0;
    setFloatValues(weight, values);
    let zeros = 0;
    for (const v of values) if (v === 0) zeros++;
    report.layers.push({ node: node.name ?? '', op: node.opType ?? '', weight: name!, size: values.length, zeros });
  }
  return report;
}
