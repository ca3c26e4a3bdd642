/**
 * `--graph-optimize LEVEL`: ONNX Runtime's offline graph optimisation (constant folding, node fusions, layout
 * changes) written to a file.
 *
 * Why ONNX Runtime and not our own graph rewriting: its optimizer is the one that will run the model, and
 * `optimizedModelFilePath` writes exactly what it would otherwise redo at every load. `all` includes layout
 * optimisations specific to this machine's CPU (NCHWc); `extended` is portable between machines.
 */
import * as ort from 'onnxruntime-node';

export const GRAPH_LEVELS = ['basic', 'extended', 'all'] as const;
export type GraphLevel = (typeof GRAPH_LEVELS)[number];

export async function graphOptimizeFile(input: string, output: string, level: GraphLevel): Promise<void> {
  const writer = await ort.InferenceSession.create(input, { graphOptimizationLevel: level, optimizedModelFilePath: output, logSeverityLevel: 3 });
  await writer.release();
}
