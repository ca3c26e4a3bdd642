/**
 * `--quantize int8-dynamic`: the weights of MatMul, Gemm and Conv layers stored as int8, one scale per output
 * channel, and the layers computed in integers, with the activations quantized to uint8 at run time from their
 * own range (ONNX Runtime's quantize_dynamic with per-channel weights, in standard ONNX operators):
 *
 *   x -> DynamicQuantizeLinear -> (x_q, x_scale, x_zero) -> MatMulInteger / ConvInteger (x_q, w_q, x_zero)
 *     -> Cast to float -> Mul by x_scale * w_scale[channel] (-> Add bias) -> the layer's output, same name
 *
 * Weights are quantized symmetrically (zero point 0, scale = max |w| of the channel / 127), which is what lets
 * one scalar zero point serve every channel: ONNX Runtime's ConvInteger takes per-tensor zero points only.
 * ONNX Runtime fuses the MatMul chain into its DynamicQuantizeMatMul kernel when it loads the model.
 *
 * What it costs: an activation's scale comes from the whole tensor it quantizes, so a row's answer depends a
 * little (within the tolerance the tests document) on the other rows of its batch. Layers are left in float when
 * their weight is not a constant this layer alone reads, when the layer's form is not the plain one (Gemm with a
 * transposed input), or when the model's opset predates the integer operators (11).
 */
import { floatTensor, nodeProto } from '../onnx/onnx-builder';
import { GraphIndex, floatAttribute, intAttribute } from '../onnx/onnx-graph';
import { DataType, defaultOpset, type OnnxModel, type OnnxNode, type OnnxTensor } from '../onnx/onnx-proto';
import { floatValues, int8Tensor, tensorDims } from '../onnx/onnx-tensors';

export interface QuantizedLayer {
  node: string;
  op: string;
  weight: string;
  shape: number[];
  /** 'integer': the layer computes in integers; 'float': int8 weights dequantized for a float layer. */
  compute: 'integer' | 'float';
}

export interface QuantizeReport {
  layers: QuantizedLayer[];
  /** Layers of a quantizable type left in float, with why. */
  skipped: { node: string; op: string; reason: string }[];
}

const QUANTIZABLE = new Set(['MatMul', 'Gemm', 'Conv']);

/**
 * Integer layers use 7-bit weights (-63..63), ONNX Runtime's `reduce_range`: on x86 CPUs without VNNI its
 * uint8 x int8 kernels add pairs of products in int16, which saturates with full-range weights (measured here,
 * AVX2 only: largest error on mlp 0.17 with 8 bits, where weights-only rounding gives 0.006).
 */
const INTEGER_WEIGHT_MAX = 63;

/**
 * Symmetric per-channel int8 in [-limit, limit]: `channelOf(i)` names the output channel of weight element i.
 * Returns the int8 values and one scale per channel (1 for an all-zero channel, whose values are all 0 anyway).
 */
function quantizeChannels(values: Float32Array, channels: number, channelOf: (i: number) => number, limit: number): { q: Int8Array; scales: Float32Array } {
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    maxAbs[c] = Math.max(maxAbs[c]!, Math.abs(values[i]!));
  }
  const scales = maxAbs.map((m) => (m > 0 ? m / limit : 1));
  const q = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]! / scales[channelOf(i)]!;
    q[i] = Math.max(-limit, Math.min(limit, Math.sign(v) * Math.round(Math.abs(v))));
  }
  return { q, scales };
}

/** A 2-D weight as [K, N] (rows = input features, columns = output channels), transposing a Gemm transB weight. */
function asKByN(values: Float32Array, dims: number[], transposed: boolean): { values: Float32Array; k: number; n: number } {
  if (!transposed) return { values, k: dims[0]!, n: dims[1]! };
  const [n, k] = [dims[0]!, dims[1]!];
  const out = new Float32Array(values.length);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) out[c * n + r] = values[r * k + c]!;
  return { values: out, k, n };
}

export function quantizeInt8Dynamic(model: OnnxModel): QuantizeReport {
  const graph = model.graph;
  const report: QuantizeReport = { layers: [], skipped: [] };
  if (!graph) return report;
  const candidates = (graph.node ?? []).filter((n) => QUANTIZABLE.has(n.opType ?? '') && !n.domain);
  if (candidates.length === 0) return report;
  if (defaultOpset(model) < 11) {
    for (const n of candidates) report.skipped.push({ node: n.name ?? '', op: n.opType ?? '', reason: `opset ${defaultOpset(model)} predates DynamicQuantizeLinear (11)` });
    return report;
  }
  const index = new GraphIndex(graph);
  /** Activation name -> its DynamicQuantizeLinear outputs, so an activation read by several layers is quantized once. */
  const quantized = new Map<string, { q: string; scale: string; zero: string }>();
  const replaced: string[] = [];
  const nodes: OnnxNode[] = [];

  const quantizeActivation = (name: string): { q: string; scale: string; zero: string } => {
    let hit = quantized.get(name);
    if (!hit) {
      hit = { q: index.fresh(`${name}_quantized`), scale: index.fresh(`${name}_scale`), zero: index.fresh(`${name}_zero_point`) };
      nodes.push(nodeProto('DynamicQuantizeLinear', [name], [hit.q, hit.scale, hit.zero], {}, index.fresh(`${name}_DynamicQuantizeLinear`)));
      quantized.set(name, hit);
    }
    return hit;
  };

  for (const node of graph.node ?? []) {
    const plan = QUANTIZABLE.has(node.opType ?? '') && !node.domain ? planLayer(node, index) : undefined;
    if (!plan || 'reason' in plan) {
      if (plan) report.skipped.push({ node: node.name ?? '', op: node.opType ?? '', reason: plan.reason });
      nodes.push(node);
      continue;
    }
    const base = node.name || `${node.opType}_${plan.weight.name}`;
    const weightName = index.fresh(`${plan.weight.name}_quantized`);
    const weightScale = index.fresh(`${plan.weight.name}_scale`);
    const weightZero = index.fresh(`${plan.weight.name}_zero_point`);
    if (plan.mode === 'weights') {
      // int8 in the file, float compute: DequantizeLinear (per output channel, axis 0) gives the layer its weight.
      const channels = plan.qDims[0]!;
      index.addInitializers(int8Tensor(weightName, plan.qDims, plan.q), floatTensor(weightScale, [channels], plan.scales), int8Tensor(weightZero, [channels], new Int8Array(channels)));
      const dequantized = index.fresh(`${plan.weight.name}_dequantized`);
      nodes.push(nodeProto('DequantizeLinear', [weightName, weightScale, weightZero], [dequantized], { axis: { kind: 'int', value: 0 } }, index.fresh(`${base}_DequantizeLinear`)));
      nodes.push({ ...node, input: [node.input![0]!, dequantized, ...node.input!.slice(2)] });
      replaced.push(plan.weight.name ?? '');
      report.layers.push({ node: node.name ?? '', op: node.opType ?? '', weight: plan.weight.name ?? '', shape: tensorDims(plan.weight), compute: 'float' });
      continue;
    }
    const x = quantizeActivation(node.input![0]!);
    index.addInitializers(
      int8Tensor(weightName, plan.qDims, plan.q),
      floatTensor(weightScale, plan.scaleDims, plan.scales),
      int8Tensor(weightZero, [], new Int8Array(1)),
    );
    const integer = index.fresh(`${base}_int32`);
    const asFloat = index.fresh(`${base}_int32_as_float`);
    const combinedScale = index.fresh(`${base}_output_scale`);
    const output = node.output![0]!;
    const scaled = plan.bias ? index.fresh(`${base}_without_bias`) : output;
    nodes.push(nodeProto('MatMulInteger', [x.q, weightName, x.zero, weightZero], [integer], {}, index.fresh(`${base}_MatMulInteger`)));
    nodes.push(nodeProto('Cast', [integer], [asFloat], { to: { kind: 'int', value: DataType.FLOAT } }, index.fresh(`${base}_Cast`)));
    nodes.push(nodeProto('Mul', [x.scale, weightScale], [combinedScale], {}, index.fresh(`${base}_scale_Mul`)));
    nodes.push(nodeProto('Mul', [asFloat, combinedScale], [scaled], {}, index.fresh(`${base}_Mul`)));
    if (plan.bias) {
      const biasName = index.fresh(`${base}_bias`);
      index.addInitializers(floatTensor(biasName, plan.bias.dims, plan.bias.values));
      nodes.push(nodeProto('Add', [scaled, biasName], [output], {}, index.fresh(`${base}_bias_Add`)));
    }
    replaced.push(...plan.replaces);
    report.layers.push({ node: node.name ?? '', op: node.opType ?? '', weight: plan.weight.name ?? '', shape: tensorDims(plan.weight), compute: 'integer' });
  }
  graph.node = nodes;
  index.dropUnread(replaced);
  return report;
}

interface LayerPlan {
  mode: 'integer' | 'weights';
  weight: OnnxTensor;
  q: Int8Array;
  qDims: number[];
  /** Per output channel, already multiplied by Gemm's alpha; shaped to broadcast over the layer's output. */
  scales: Float32Array;
  scaleDims: number[];
  bias?: { values: Float32Array; dims: number[] };
  /** Initializers the quantized layer no longer reads. */
  replaces: string[];
}

function planLayer(node: OnnxNode, index: GraphIndex): LayerPlan | { reason: string } {
  const inputs = node.input ?? [];
  const weight = index.ownWeight(inputs[1]);
  if (!weight) return { reason: `its weight '${inputs[1] ?? ''}' is not a float constant read by this layer alone` };
  if (index.initializers.has(inputs[0] ?? '')) return { reason: 'its first input is a constant, not an activation' };
  const values = floatValues(weight);
  if (!values) return { reason: `its weight '${weight.name}' is not FLOAT data stored in the model file` };
  const dims = tensorDims(weight);

  if (node.opType === 'Conv') {
    if (dims.length < 3) return { reason: `its weight has rank ${dims.length}, a convolution's has 3 or more` };
    const channels = dims[0]!;
    const perChannel = values.length / channels;
    const { q, scales } = quantizeChannels(values, channels, (i) => Math.floor(i / perChannel), 127);
    return { mode: 'weights', weight, q, qDims: dims, scales, scaleDims: [channels], replaces: [weight.name ?? ''] };
  }

  if (dims.length !== 2) return { reason: `its weight has rank ${dims.length}; only 2-D weights are quantized` };
  if (node.opType === 'MatMul') {
    const { q, scales } = quantizeChannels(values, dims[1]!, (i) => i % dims[1]!, INTEGER_WEIGHT_MAX);
    return { mode: 'integer', weight, q, qDims: dims, scales, scaleDims: [dims[1]!], replaces: [weight.name ?? ''] };
  }
  // Gemm: Y = alpha * A * B' + beta * C, with A not transposed.
  if (intAttribute(node, 'transA', 0) !== 0) return { reason: 'Gemm with transA=1 is left in float' };
  const alpha = floatAttribute(node, 'alpha', 1);
  const beta = floatAttribute(node, 'beta', 1);
  const kn = asKByN(values, dims, intAttribute(node, 'transB', 0) === 1);
  const { q, scales } = quantizeChannels(kn.values, kn.n, (i) => i % kn.n, INTEGER_WEIGHT_MAX);
  for (let c = 0; c < scales.length; c++) scales[c]! *= alpha;
  let bias: LayerPlan['bias'];
  const replaces = [weight.name ?? ''];
  if (inputs[2]) {
    const c = index.ownWeight(inputs[2]);
    const cValues = c ? floatValues(c) : undefined;
    if (!c || !cValues) return { reason: `its C input '${inputs[2]}' is not a float constant read by this layer alone` };
    bias = { values: cValues.map((v) => v * beta), dims: tensorDims(c) };
    replaces.push(c.name ?? '');
  }
  return { mode: 'integer', weight, q, qDims: [kn.k, kn.n], scales, scaleDims: [kn.n], ...(bias ? { bias } : {}), replaces };
}
