/**
 * The element type (TensorProto.DataType) of every value in a graph, worked out from the graph's inputs,
 * initializers and each op's type rule: what a pass that changes types (float16 conversion) needs to know
 * about values the file does not describe, since exporters seldom write value_info for intermediate values.
 *
 * Only element types, not shapes: ONNX's own inference lives in the Python package and would be a large
 * port; element types follow from a short table because almost every ONNX op gives its outputs the type of
 * its first input. The exceptions are listed below, with the com.microsoft ops ONNX Runtime's optimiser writes.
 * An op this table does not know (another domain, a sequence op) takes its types from the graph's value_info
 * when the file has them, and is otherwise left unknown, which callers must treat as "cannot tell" rather than
 * guess.
 */
import { visitSubgraphs } from './onnx-graph';
import { AttributeType, DataType, int64ToNumber, type OnnxAttribute, type OnnxGraph, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from './onnx-proto';

/** Value name -> element type; a value missing from the map has a type this module cannot tell. */
export type ElementTypes = Map<string, number>;

const BOOL_OUTPUTS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Not', 'IsNaN', 'IsInf', 'RegexFullMatch']);
const INT64_OUTPUTS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);
const { FLOAT, INT64, INT32, BOOL, UINT8 } = DataType;

/** Ops with several outputs of different, fixed kinds: 'T' = the first input's type. */
const OUTPUT_KINDS: Record<string, readonly ('T' | number)[]> = {
  TopK: ['T', INT64],
  MaxPool: ['T', INT64],
  Unique: ['T', INT64, INT64, INT64],
  Dropout: ['T', BOOL],
  // Mean and InvStdDev are type U: float or bfloat16 by the schema, float in every exporter we know of.
  LayerNormalization: ['T', FLOAT, FLOAT],
  DynamicQuantizeLinear: [UINT8, FLOAT, UINT8],
  StringSplit: [DataType.STRING, INT64],
  // ONNX Runtime's own, registered in the ONNX domain; what its offline optimiser writes for RMSNorm.
  SimplifiedLayerNormalization: ['T', FLOAT],
};

/**
 * com.microsoft ops that ONNX Runtime's optimiser writes into the models it saves (fusions) or that exporters
 * use for transformers, none of which ONNX's type rules cover: their outputs, as above.
 */
const MICROSOFT_OUTPUT_KINDS: Record<string, readonly ('T' | number)[]> = {
  ...Object.fromEntries(['FusedConv', 'FusedGemm', 'FusedMatMul', 'NhwcConv', 'QuickGelu', 'Gelu', 'FastGelu', 'BiasGelu', 'BiasAdd',
    'BiasSoftmax', 'RotaryEmbedding', 'MatMulNBits', 'Attention', 'MultiHeadAttention', 'GroupQueryAttention'].map((op) => [op, ['T', 'T', 'T']])),
  SkipLayerNormalization: ['T', FLOAT, FLOAT, 'T'],
  SkipSimplifiedLayerNormalization: ['T', FLOAT, FLOAT, 'T'],
};

/** Ops whose output has the type of another input than the first. */
const TYPE_FROM_INPUT: Record<string, number> = { Where: 1, OneHot: 2, CastLike: 1, DequantizeLinear: 1, QLinearConv: 7, QLinearMatMul: 7 };

/** Ops whose output type an attribute sets: [attribute, type when it is absent ('T': the first input's)]. */
const TYPE_FROM_ATTRIBUTE: Record<string, [string, number | 'T']> = {
  Cast: ['to', FLOAT],
  EyeLike: ['dtype', 'T'],
  RandomNormal: ['dtype', FLOAT],
  RandomUniform: ['dtype', FLOAT],
  RandomNormalLike: ['dtype', 'T'],
  RandomUniformLike: ['dtype', 'T'],
  Bernoulli: ['dtype', 'T'],
  Multinomial: ['dtype', INT32],
  HannWindow: ['output_datatype', FLOAT],
  HammingWindow: ['output_datatype', FLOAT],
  BlackmanWindow: ['output_datatype', FLOAT],
  MelWeightMatrix: ['output_datatype', FLOAT],
};

const FIXED_TYPE: Record<string, number> = { MatMulInteger: INT32, ConvInteger: INT32, TfIdfVectorizer: FLOAT, ImageDecoder: UINT8, StringConcat: DataType.STRING };

function elemType(v: OnnxValueInfo): number | undefined {
  const t = v.type?.tensorType?.elemType;
  return t ? t : undefined;
}

/** The element type of a Constant node's value, whichever of its attributes holds it. */
export function constantType(node: OnnxNode): number | undefined {
  const a = (node.attribute ?? [])[0] as OnnxAttribute | undefined;
  switch (a?.name) {
    case 'value': return a.t?.dataType;
    case 'value_float': case 'value_floats': return FLOAT;
    case 'value_int': case 'value_ints': return INT64;
    case 'value_string': case 'value_strings': return DataType.STRING;
    case 'sparse_value': return ((a as { sparseTensor?: { values?: OnnxTensor } }).sparseTensor)?.values?.dataType;
    default: return undefined;
  }
}

/** Output types of If, Loop and Scan: what their bodies declare (Loop's body also yields the condition first). */
function subgraphOutputTypes(node: OnnxNode): (number | undefined)[] | undefined {
  const bodies: OnnxGraph[] = [];
  visitSubgraphs(node, (g) => bodies.push(g));
  const body = bodies[0];
  if (!body) return undefined;
  const types = (body.output ?? []).map(elemType);
  return node.opType === 'Loop' && (node.domain ?? '') === '' ? types.slice(1) : types;
}

function attributeType(node: OnnxNode, name: string): number | undefined {
  const a = (node.attribute ?? []).find((x) => x.name === name && x.type === AttributeType.INT);
  return a ? int64ToNumber(a.i) : undefined;
}

/** What one node's outputs are, given its inputs' types; undefined entries for outputs it cannot tell. */
export function nodeOutputTypes(node: OnnxNode, typeOf: (name: string) => number | undefined): (number | undefined)[] {
  const op = node.opType ?? '';
  const outputs = node.output ?? [];
  const first = typeOf(node.input?.[0] ?? '');
  const all = (t: number | undefined) => outputs.map(() => t);
  const kindsIn = (table: Record<string, readonly ('T' | number)[]>) => table[op] && outputs.map((_, i) => (table[op]![i] === 'T' ? first : table[op]![i]));
  if (node.domain === 'com.microsoft') return kindsIn(MICROSOFT_OUTPUT_KINDS) ?? all(undefined);
  if (!['', 'ai.onnx'].includes(node.domain ?? '')) return all(undefined);
  if (op.startsWith('Sequence') || op.startsWith('Optional') || op === 'SplitToSequence' || op === 'ConcatFromSequence') return all(undefined);
  if (op === 'If' || op === 'Loop' || op === 'Scan') return subgraphOutputTypes(node) ?? all(undefined);
  if (op === 'Constant') return all(constantType(node));
  if (op === 'ConstantOfShape') return all((node.attribute ?? []).find((a) => a.name === 'value')?.t?.dataType ?? FLOAT);
  if (op === 'QuantizeLinear') return all(node.input?.[2] ? typeOf(node.input[2]) : UINT8);
  if (BOOL_OUTPUTS.has(op)) return all(BOOL);
  if (INT64_OUTPUTS.has(op)) return all(INT64);
  if (op in FIXED_TYPE) return all(FIXED_TYPE[op]);
  if (op in TYPE_FROM_INPUT) return all(typeOf(node.input?.[TYPE_FROM_INPUT[op]!] ?? ''));
  if (op in TYPE_FROM_ATTRIBUTE) {
    const [name, fallback] = TYPE_FROM_ATTRIBUTE[op]!;
    return all(attributeType(node, name) ?? (fallback === 'T' ? first : fallback));
  }
  return kindsIn(OUTPUT_KINDS) ?? all(first);
}

/**
 * Every value's element type in `graph` (not inside its subgraphs): inputs, initializers, then each node in
 * order (ONNX keeps nodes topologically sorted). Rules come first; value_info and the graph's declared outputs
 * fill in what the rules cannot tell.
 */
export function inferElementTypes(graph: OnnxGraph): ElementTypes {
  const types: ElementTypes = new Map();
  const declared = new Map<string, number>();
  for (const v of [...(graph.valueInfo ?? []), ...(graph.output ?? [])]) {
    const t = elemType(v);
    if (t) declared.set(v.name ?? '', t);
  }
  for (const t of graph.initializer ?? []) if (t.dataType) types.set(t.name ?? '', t.dataType);
  for (const s of (graph.sparseInitializer ?? []) as { values?: OnnxTensor }[]) if (s.values?.dataType) types.set(s.values.name ?? '', s.values.dataType);
  for (const v of graph.input ?? []) {
    const t = elemType(v);
    if (t) types.set(v.name ?? '', t);
  }
  for (const node of graph.node ?? []) {
    const inferred = nodeOutputTypes(node, (name) => types.get(name));
    (node.output ?? []).forEach((name, i) => {
      const t = inferred[i] ?? declared.get(name);
      if (name && t) types.set(name, t);
    });
  }
  return types;
}
