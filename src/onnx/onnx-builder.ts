/**
 * Writing ONNX graphs from TypeScript: the bundled models (tools/build-models.ts), the test fixtures and the
 * optimisation passes (src/optimize) build nodes, initializers and value infos with these helpers, so what
 * they write is readable code rather than opaque binaries produced by Python.
 *
 * Everything here is deterministic: the same calls produce the same bytes, so regenerated models do not show
 * up as spurious diffs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttributeType, DataType, encodeModel, type OnnxAttribute, type OnnxDimension, type OnnxModel, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from './onnx-proto';

export { DataType, encodeModel };

/**
 * Opset 17 needs IR version 8. Both are pinned rather than "latest" so that
 * the models load on every ONNX Runtime release we support.
 */
export const OPSET_VERSION = 17;
export const IR_VERSION = 8;

/** A dimension: a fixed size, or a symbolic name (dim_param) such as "batch". */
export type Dim = number | string;

/**
 * A typed attribute value. ONNX distinguishes int from float attributes
 * (e.g. Gemm's alpha is a float, transB an int), and a JS number cannot tell
 * us which one is meant, so callers say it explicitly via `attr.*`.
 */
export type Attribute =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'floats'; readonly value: readonly number[] };

export const attr = {
  int: (value: number): Attribute => ({ kind: 'int', value }),
  ints: (value: readonly number[]): Attribute => ({ kind: 'ints', value }),
  float: (value: number): Attribute => ({ kind: 'float', value }),
  floats: (value: readonly number[]): Attribute => ({ kind: 'floats', value }),
};

export type Attributes = Readonly<Record<string, Attribute>>;

/** Describes a graph input or output: name, element type and shape. */
export function valueInfo(name: string, elemType: DataType, shape: readonly Dim[]): OnnxValueInfo {
  const dim = shape.map((d): OnnxDimension => {
    if (typeof d === 'string') return { dimParam: d };
    if (!Number.isInteger(d) || d < 0) throw new Error(`${name}: invalid fixed dimension ${d}`);
    return { dimValue: d };
  });
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function checkSize(name: string, dims: readonly number[], length: number): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== length) {
    throw new Error(`${name}: dims [${dims.join(', ')}] need ${expected} values, got ${length}`);
  }
}

/**
 * A FLOAT initializer. The values go into raw_data, written explicitly
 * little-endian (as the ONNX spec requires) instead of copying the typed
 * array's memory, so the bytes do not depend on the host's endianness.
 */
export function floatTensor(name: string, dims: readonly number[], data: Float32Array | readonly number[]): OnnxTensor {
  checkSize(name, dims, data.length);
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return { name, dataType: DataType.FLOAT, dims: [...dims], rawData: raw };
}

/** An INT64 initializer (raw_data, little-endian). Numbers must be safe integers. */
export function int64Tensor(name: string, dims: readonly number[], data: BigInt64Array | readonly number[]): OnnxTensor {
  checkSize(name, dims, data.length);
  const raw = new Uint8Array(data.length * 8);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Error(`${name}: ${v} is not a safe integer`);
    view.setBigInt64(i * 8, BigInt(v), true);
  }
  return { name, dataType: DataType.INT64, dims: [...dims], rawData: raw };
}

function attributeProto(name: string, a: Attribute): OnnxAttribute {
  const T = AttributeType;
  switch (a.kind) {
    case 'int':
      if (!Number.isSafeInteger(a.value)) throw new Error(`attribute ${name}: ${a.value} is not an integer`);
      return { name, type: T.INT, i: a.value };
    case 'ints':
      if (!a.value.every(Number.isSafeInteger)) throw new Error(`attribute ${name}: non-integer in [${a.value.join(', ')}]`);
      return { name, type: T.INTS, ints: [...a.value] };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...a.value] };
  }
}

/** A node. Attributes are emitted sorted by name so output never depends on object key order. */
export function nodeProto(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Attributes = {},
  name?: string,
): OnnxNode {
  const attribute = Object.keys(attributes)
    .sort()
    .map((k) => attributeProto(k, attributes[k]!));
  return { opType, input: [...inputs], output: [...outputs], attribute, ...(name ? { name } : {}) };
}

/**
 * Collects inputs, outputs, initializers and nodes of one graph. Nodes are
 * appended in call order, which is therefore already a topological order as
 * long as a node is added after the nodes producing its inputs (ONNX requires
 * topologically sorted nodes).
 */
export class GraphBuilder {
  private readonly inputs: OnnxValueInfo[] = [];
  private readonly outputs: OnnxValueInfo[] = [];
  private readonly initializers: OnnxTensor[] = [];
  private readonly nodes: OnnxNode[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** Declares a graph input and returns its name, for use as a node input. */
  input(name: string, elemType: DataType, shape: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  /** Declares a graph output; some node must produce a tensor with this name. */
  output(name: string, elemType: DataType, shape: readonly Dim[]): string {
    this.outputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  /** Adds a constant tensor (weights, shapes, axes) and returns its name. */
  initializer(tensor: OnnxTensor): string {
    if (!tensor.name) throw new Error('initializer needs a name');
    this.claim(tensor.name);
    this.initializers.push(tensor);
    return tensor.name;
  }

  /**
   * Adds a single-output node and returns the output's name. Without an
   * explicit `output` the name is derived from the op type and a counter
   * (e.g. "Relu_3"), which is stable because it depends only on call order.
   */
  node(opType: string, inputs: readonly string[], attributes: Attributes = {}, output?: string): string {
    const index = this.counter++;
    const out = output ?? `${opType}_${index}`;
    this.claim(out);
    this.nodes.push(nodeProto(opType, inputs, [out], attributes, `${opType}_node_${index}`));
    return out;
  }

  /** Finishes the graph and wraps it in a ModelProto (opset 17, IR version 8). */
  build(options: { docString?: string } = {}): OnnxModel {
    for (const o of this.outputs) {
      if (!this.names.has(o.name!)) throw new Error(`graph ${this.name}: output ${o.name} is never produced`);
    }
    return {
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET_VERSION }],
      producerName: 'tensorgate-tools',
      ...(options.docString ? { docString: options.docString } : {}),
      graph: {
        name: this.name,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
        node: this.nodes,
      },
    };
  }

  /** ONNX requires every value name to be assigned exactly once (SSA form). */
  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`graph ${this.name}: name ${name} is defined twice`);
    this.names.add(name);
  }
}

/** Writes a model to `file`, creating parent directories; returns the byte count. */
export function saveModel(file: string, model: OnnxModel): number {
  const bytes = encodeModel(model);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return bytes.length;
}
