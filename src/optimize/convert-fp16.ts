/**
 * `tensorgate optimize --fp16`: weights and compute in float16, the model's inputs and outputs still float32, so
 * callers see the same signature and the file is about half the size. The same conversion as
 * onnxconverter-common's `convert_float_to_float16(keep_io_types=True)`, written against our own ONNX reader:
 *
 * - every FLOAT value a converted node reads or writes becomes FLOAT16: initializers and Constant tensors are
 *   rewritten, Cast-to-FLOAT becomes Cast-to-FLOAT16;
 * - nodes that must stay float32 (FLOAT16_BLOCKED_OPS, other domains, If/Loop/Scan with their bodies, nodes whose
 *   types we cannot tell) are left as they are, and Casts are put wherever a value crosses between the two;
 * - a float graph input gets a Cast to FLOAT16 before its first float16 reader, a float graph output a Cast to
 *   FLOAT from its float16 producer (which writes a new internal name; the output keeps its own).
 *
 * Which values are float is worked out by src/onnx/element-types.ts, since files rarely say.
 */
import { inferElementTypes, type ElementTypes } from '../onnx/element-types';
import { GraphIndex, outerScopeReads, renameOuterScopeRead, subgraphNames, visitSubgraphs } from '../onnx/onnx-graph';
import { AttributeType, DataType, int64ToNumber, type OnnxAttribute, type OnnxModel, type OnnxNode, type OnnxTensor } from '../onnx/onnx-proto';
import { float16Tensor, floatValues, isExternal, tensorDims } from '../onnx/onnx-tensors';

export interface Fp16Report {
  /** FLOAT initializers (and Constant node tensors) stored as FLOAT16 now. */
  tensorsConverted: number;
  /** Nodes left computing in float32 (op types that must stay float32), as "OpType name" strings. */
  keptFloat32: string[];
}

const { FLOAT, FLOAT16 } = DataType;

/**
 * Ops kept in float32. The first group is onnxconverter-common's DEFAULT_OP_BLOCK_LIST, kept whole: ai.onnx.ml
 * ops (no float16 versions), ops whose results float16 spoils (TopK and NonMaxSuppression rank near-ties; Range
 * and CumSum accumulate rounding error along their length), ops with a float32-only input (Resize's and
 * Upsample's `scales`), and ops that lacked float16 kernels in common execution providers when the list was
 * drawn up (RoiAlign, Min, Max). The second group is ours: ops whose float type a schema or an attribute fixes, which
 * converting the node around them would contradict (quantization scales are float32 before opset 19; random
 * and window ops take their output type from a `dtype` attribute; TfIdfVectorizer always writes float; Celu
 * is defined for float only).
 */
export const FLOAT16_BLOCKED_OPS: ReadonlySet<string> = new Set([
  'ArrayFeatureExtractor', 'Binarizer', 'CastMap', 'CategoryMapper', 'DictVectorizer', 'FeatureVectorizer', 'Imputer',
  'LabelEncoder', 'LinearClassifier', 'LinearRegressor', 'Normalizer', 'OneHotEncoder', 'RandomUniformLike', 'SVMClassifier',
  'SVMRegressor', 'Scaler', 'TreeEnsembleClassifier', 'TreeEnsembleRegressor', 'ZipMap', 'NonMaxSuppression', 'TopK',
  'RoiAlign', 'Resize', 'Range', 'CumSum', 'Min', 'Max', 'Upsample',
  'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'QLinearConv', 'QLinearMatMul',
  'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'Bernoulli', 'Multinomial', 'EyeLike',
  'HannWindow', 'HammingWindow', 'BlackmanWindow', 'MelWeightMatrix', 'TfIdfVectorizer', 'Celu',
]);

/** Periodic ops: they and the nodes computing their argument stay float32 (see chooseFloat16Nodes). */
const ANGLE_OPS: ReadonlySet<string> = new Set(['Sin', 'Cos']);

/** Inputs any type may reach (the node's output type does not follow them): no Cast needed in front. */
const ANY_TYPE_INPUT: Record<string, number> = { Cast: 0, CastLike: 0, Shape: 0, Size: 0 };
/** Outputs that stay FLOAT when their node is converted (LayerNormalization's Mean and InvStdDev are type U). */
const FLOAT32_OUTPUTS: Record<string, readonly number[]> = { LayerNormalization: [1, 2] };

/** The largest finite float16. Larger weights (e.g. -1e9 attention masks) saturate here instead of becoming infinite. */
const FLOAT16_MAX = 65504;

/**
 * A FLOAT tensor's values as FLOAT16, in place (name, dims and the rest kept). Rounds to nearest even; finite
 * values beyond +-65504 saturate to +-65504 (an infinite mask or bias would turn sums into NaN); infinities
 * and NaN stay what they are; magnitudes below 2^-25 (half the smallest float16 subnormal, ~3e-8) become a
 * signed zero, the nearest float16, which moves them by less than 3e-8. Returns false when the values live
 * in an external file and were left alone.
 */
function toFloat16InPlace(t: OnnxTensor): boolean {
  const values = floatValues(t);
  if (!values) return false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isFinite(v) && Math.abs(v) > FLOAT16_MAX) values[i] = Math.sign(v) * FLOAT16_MAX;
  }
  t.rawData = float16Tensor(t.name ?? '', tensorDims(t), values).rawData;
  t.dataType = FLOAT16;
  t.floatData = [];
  return true;
}

/**
 * A Constant's or ConstantOfShape's float value as a FLOAT16 `value` tensor, whichever attribute held it (a
 * ConstantOfShape without one gets ONNX's default, a 0, as float16). True when it rewrote a tensor it had.
 */
function convertConstant(node: OnnxNode): boolean {
  const attributes = node.attribute ?? [];
  const value = attributes.find((a) => a.name === 'value');
  if (node.opType === 'ConstantOfShape' && !value) {
    node.attribute = [...attributes, { name: 'value', type: AttributeType.TENSOR, t: float16Tensor('', [1], new Float32Array(1)) }];
    return false;
  }
  if (value?.t?.dataType === FLOAT) return toFloat16InPlace(value.t);
  const a = attributes.find((x) => x.name === 'value_float' || x.name === 'value_floats');
  if (!a) return false;
  const values = a.name === 'value_float' ? [a.f ?? 0] : (a.floats ?? []);
  const t: OnnxTensor = { dataType: FLOAT, dims: a.name === 'value_float' ? [] : [values.length], floatData: [...values] };
  toFloat16InPlace(t);
  node.attribute = [{ name: 'value', type: AttributeType.TENSOR, t } as OnnxAttribute];
  return true;
}

/** False for a float Constant this pass cannot rewrite (a sparse value, or one in an external file): it stays float32. */
function convertible(node: OnnxNode): boolean {
  if (node.opType !== 'Constant') return true;
  const a = node.attribute?.[0];
  return a?.name === 'value_float' || a?.name === 'value_floats' || (a?.name === 'value' && !!a.t && !isExternal(a.t));
}

/** Constant and Cast nodes convert when a float16 node reads them; otherwise there is no reason to. */
function isFollower(node: OnnxNode): boolean {
  const op = node.opType;
  if (op === 'Cast') return (node.attribute ?? []).some((a) => a.name === 'to' && int64ToNumber(a.i) === FLOAT);
  return op === 'Constant' || op === 'ConstantOfShape';
}

function hasSubgraph(node: OnnxNode): boolean {
  let found = false;
  visitSubgraphs(node, () => { found = true; });
  return found;
}

/**
 * Which nodes compute in float16: all but the blocked, and
 * - Constants and Casts to float only when a float16 node reads them (otherwise converting gains nothing);
 * - not the nodes that compute a Sin's or Cos's argument, back as far as nothing else reads their results:
 *   a periodic function of a rounded angle is off by as much as the angle was (float16 rounds an angle near
 *   400, a rotary position embedding's at position 400, to a multiple of 0.25 radians; measured on tiny-lm,
 *   this rule took the largest logit difference at position 400 from 0.15 to 0.005).
 */
function chooseFloat16Nodes(nodes: readonly OnnxNode[], types: ElementTypes, implicit: readonly Set<string>[], readers: ReadonlyMap<string, number[]>) {
  const isFloat = (name: string) => types.get(name) === FLOAT;
  const float16 = nodes.map(() => true);
  const angle = nodes.map(() => false);
  const kept: number[] = [];
  nodes.forEach((n, i) => {
    const values = [...(n.input ?? []), ...(n.output ?? []), ...implicit[i]!].filter((x) => x);
    const unknown = values.some((x) => !types.has(x));
    const otherDomain = !['', 'ai.onnx'].includes(n.domain ?? '');
    angle[i] = !otherDomain && ANGLE_OPS.has(n.opType ?? '');
    if (!(otherDomain || unknown || angle[i] || hasSubgraph(n) || FLOAT16_BLOCKED_OPS.has(n.opType ?? ''))) return;
    float16[i] = false;
    if (unknown || values.some(isFloat)) kept.push(i);
  });
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (!float16[i]) continue;
    const floatReaders = (nodes[i]!.output ?? []).filter(isFloat).flatMap((y) => readers.get(y) ?? []);
    if (isFollower(nodes[i]!)) float16[i] = floatReaders.some((r) => float16[r]) && convertible(nodes[i]!);
    else if (floatReaders.length > 0 && floatReaders.every((r) => !float16[r]) && floatReaders.some((r) => angle[r])) {
      float16[i] = false;
      angle[i] = true;
      kept.push(i);
    }
  }
  const keptFloat32 = kept.sort((a, b) => a - b).map((i) => {
    const n = nodes[i]!;
    return `${['', 'ai.onnx'].includes(n.domain ?? '') ? '' : `${n.domain}.`}${n.opType} ${n.name || `#${i}`}`;
  });
  return { float16, keptFloat32 };
}

/** Converts a decoded model in place: weights and compute to float16, the model's inputs and outputs kept float32. */
export function convertToFloat16(model: OnnxModel): Fp16Report {
  const graph = model.graph;
  if (!graph) throw new Error('the model has no graph');
  const nodes = graph.node ?? [];
  const types = inferElementTypes(graph);
  const isFloat = (name: string | undefined) => !!name && types.get(name) === FLOAT;
  const index = new GraphIndex(graph);
  const inner = new Set<string>();
  for (const n of nodes) for (const name of subgraphNames(n)) inner.add(name);
  const fresh = (base: string): string => {
    let name = index.fresh(base);
    while (inner.has(name)) name = index.fresh(base); // a name a subgraph uses would shadow or be shadowed
    return name;
  };
  const graphInputs = new Set((graph.input ?? []).map((v) => v.name ?? ''));
  const graphOutputs = new Set((graph.output ?? []).map((v) => v.name ?? ''));

  // What each node reads, its subgraphs' outer-scope reads included; and who reads each value.
  const implicit = nodes.map((n) => outerScopeReads(n));
  const readers = new Map<string, number[]>();
  nodes.forEach((n, i) => {
    for (const name of new Set([...(n.input ?? []), ...implicit[i]!])) if (name) readers.set(name, [...(readers.get(name) ?? []), i]);
  });

  const { float16, keptFloat32 } = chooseFloat16Nodes(nodes, types, implicit, readers);

  // Initializers a float16 node reads become FLOAT16, unless they double as graph inputs or outputs.
  let tensorsConverted = 0;
  const home = new Map<string, { name: string; type: number }>(); // where a FLOAT value lives now, and as what
  for (const t of graph.initializer ?? []) {
    const name = t.name ?? '';
    if (t.dataType !== FLOAT || graphInputs.has(name) || graphOutputs.has(name)) continue;
    if (!(readers.get(name) ?? []).some((r) => float16[r]) || !toFloat16InPlace(t)) continue;
    tensorsConverted++;
    home.set(name, { name, type: FLOAT16 });
  }
  const homeOf = (name: string) => home.get(name) ?? { name, type: types.get(name) ?? 0 };

  // A FLOAT value in the type a reader wants: itself, or (once per value and type) a Cast placed before that reader.
  const out: OnnxNode[] = [];
  const casts = new Map<string, string>();
  const castNode = (from: string, to: string, type: number): OnnxNode =>
    ({ opType: 'Cast', name: fresh(`${to}_cast`), input: [from], output: [to], attribute: [{ name: 'to', type: AttributeType.INT, i: type }] });
  const asType = (name: string, type: number): string => {
    const h = homeOf(name);
    if (h.type === type) return h.name;
    const key = `${name}\u0000${type}`;
    let cast = casts.get(key);
    if (!cast) {
      cast = fresh(`${name}_${type === FLOAT16 ? 'fp16' : 'fp32'}`);
      out.push(castNode(h.name, cast, type));
      casts.set(key, cast);
    }
    return cast;
  };

  nodes.forEach((n, i) => {
    const op = n.opType ?? '';
    const want = float16[i] ? FLOAT16 : FLOAT;
    const x0 = n.input?.[0] ?? '';
    n.input = (n.input ?? []).map((x, k) => (!isFloat(x) ? x : ANY_TYPE_INPUT[op] === k ? homeOf(x).name : asType(x, want)));
    for (const x of implicit[i]!) {
      if (!isFloat(x)) continue;
      const name = asType(x, FLOAT);
      if (name !== x) renameOuterScopeRead(n, x, name);
    }
    if (float16[i]) {
      if (op === 'Cast') for (const a of n.attribute ?? []) if (a.name === 'to' && int64ToNumber(a.i) === FLOAT) a.i = FLOAT16;
      if ((op === 'Constant' || op === 'ConstantOfShape') && convertConstant(n)) tensorsConverted++;
    }
    // A Cast of a float16 value to float16 (e.g. a weight the exporter already stored as float16) is dropped.
    const y0 = n.output?.[0] ?? '';
    if (float16[i] && op === 'Cast' && isFloat(y0) && !graphOutputs.has(y0) && homeOf(x0).type === FLOAT16) {
      home.set(y0, homeOf(x0));
      return;
    }
    const after: OnnxNode[] = [];
    (n.output ?? []).forEach((y, k) => {
      if (!isFloat(y) || !float16[i] || FLOAT32_OUTPUTS[op]?.includes(k)) return;
      if (!graphOutputs.has(y)) {
        home.set(y, { name: y, type: FLOAT16 });
        return;
      }
      const internal = fresh(`${y}_fp16`);
      n.output![k] = internal;
      home.set(y, { name: internal, type: FLOAT16 });
      casts.set(`${y}\u0000${FLOAT}`, y);
      after.push(castNode(internal, y, FLOAT));
    });
    out.push(n, ...after);
  });
  graph.node = out;

  // value_info keeps its shapes with the new element types, renamed where an output's producer was; entries
  // for values that no longer exist (dropped Casts) go.
  const produced = new Set(out.flatMap((n) => n.output ?? []));
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => {
    const name = v.name ?? '';
    if (!isFloat(name)) return true;
    const h = homeOf(name);
    if (h.name !== name && !graphOutputs.has(name)) return false; // an alias of a dropped Cast's input
    if (!produced.has(h.name) && !index.initializers.has(h.name) && !graphInputs.has(h.name)) return false;
    v.name = h.name;
    if (v.type?.tensorType) v.type.tensorType.elemType = h.type;
    return true;
  });
  return { tensorsConverted, keptFloat32 };
}
