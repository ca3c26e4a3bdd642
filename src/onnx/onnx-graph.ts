/**
 * Looking around an ONNX graph while rewriting it: initializers by name, how many nodes read each value, and
 * fresh names that collide with nothing already in the graph (ONNX names every value exactly once).
 */
import { int64ToNumber, type OnnxGraph, type OnnxNode, type OnnxTensor } from './onnx-proto';

export class GraphIndex {
  readonly initializers = new Map<string, OnnxTensor>();
  /** Value name -> the nodes that read it (graph outputs count as one reader each). */
  readonly readers = new Map<string, number>();
  private readonly taken = new Set<string>();

  constructor(readonly graph: OnnxGraph) {
    for (const t of graph.initializer ?? []) {
      this.initializers.set(t.name ?? '', t);
      this.taken.add(t.name ?? '');
    }
    for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) this.taken.add(v.name ?? '');
    for (const node of graph.node ?? []) {
      for (const name of node.input ?? []) if (name) this.readers.set(name, (this.readers.get(name) ?? 0) + 1);
      for (const name of node.output ?? []) this.taken.add(name);
      if (node.name) this.taken.add(node.name);
      visitSubgraphs(node, (g) => {
        for (const inner of g.node ?? []) for (const name of inner.input ?? []) if (name) this.readers.set(name, (this.readers.get(name) ?? 0) + 1);
      });
    }
    for (const o of graph.output ?? []) this.readers.set(o.name ?? '', (this.readers.get(o.name ?? '') ?? 0) + 1);
  }

  /** `base`, or `base_2`, `base_3`... whichever no value or node in the graph has yet; then it is taken. */
  fresh(base: string): string {
    let name = base;
    for (let i = 2; this.taken.has(name); i++) name = `${base}_${i}`;
    this.taken.add(name);
    return name;
  }

  /** A FLOAT initializer read by this node only (a weight that can be rewritten without touching another node). */
  ownWeight(name: string | undefined): OnnxTensor | undefined {
    if (!name) return undefined;
    const t = this.initializers.get(name);
    return t && this.readers.get(name) === 1 && !(this.graph.input ?? []).some((i) => i.name === name) ? t : undefined;
  }

  /** Adds initializers (fresh names already taken with `fresh`). */
  addInitializers(...tensors: OnnxTensor[]): void {
    this.graph.initializer ??= [];
    for (const t of tensors) {
      this.graph.initializer.push(t);
      this.initializers.set(t.name ?? '', t);
    }
  }

  /** Drops initializers no node reads any more (the float weights a pass replaced). */
  dropUnread(names: Iterable<string>): void {
    const drop = new Set(names);
    this.graph.initializer = (this.graph.initializer ?? []).filter((t) => !drop.has(t.name ?? ''));
    for (const name of drop) this.initializers.delete(name);
  }
}

/** Calls `visit` for each graph held in a node's attributes (If, Loop, Scan bodies). */
export function visitSubgraphs(node: OnnxNode, visit: (g: OnnxGraph) => void): void {
  for (const a of node.attribute ?? []) {
    if (a.g) visit(a.g);
    for (const g of a.graphs ?? []) visit(g);
  }
}

/** An attribute's integer value, or `fallback` when the node does not set it. */
export function intAttribute(node: OnnxNode, name: string, fallback: number): number {
  const a = (node.attribute ?? []).find((x) => x.name === name);
  return a ? int64ToNumber(a.i) : fallback;
}

export function floatAttribute(node: OnnxNode, name: string, fallback: number): number {
  const a = (node.attribute ?? []).find((x) => x.name === name);
  return a && typeof a.f === 'number' && a.type === 1 ? a.f : fallback;
}

/** Names a graph defines itself: its inputs, initializers and node outputs. */
function definedIn(g: OnnxGraph, enclosing: ReadonlySet<string>): Set<string> {
  const scope = new Set(enclosing);
  for (const v of g.input ?? []) scope.add(v.name ?? '');
  for (const t of g.initializer ?? []) scope.add(t.name ?? '');
  for (const n of g.node ?? []) for (const o of n.output ?? []) scope.add(o);
  return scope;
}

/** Visits every name a graph (and its nested graphs) reads or outputs from scopes outside `enclosing`. */
function visitOuterNames(g: OnnxGraph, enclosing: ReadonlySet<string>, visit: (names: string[], i: number) => void): void {
  const scope = definedIn(g, enclosing);
  const outerOnly = (names: string[]) => names.forEach((x, i) => { if (x && !scope.has(x)) visit(names, i); });
  for (const n of g.node ?? []) {
    if (n.input) outerOnly(n.input);
    visitSubgraphs(n, (inner) => visitOuterNames(inner, scope, visit));
  }
  // An If branch may output an outer value directly, by name.
  const outputs = (g.output ?? []).map((o) => o.name ?? '');
  outerOnly(outputs);
  (g.output ?? []).forEach((o, i) => { o.name = outputs[i]; });
}

/**
 * The values of the enclosing graph that a node's subgraphs (If, Loop, Scan bodies) read by name: inputs of
 * the node in all but syntax, so a pass that renames or retypes a value must treat them as such.
 */
export function outerScopeReads(node: OnnxNode): Set<string> {
  const names = new Set<string>();
  visitSubgraphs(node, (g) => visitOuterNames(g, new Set(), (list, i) => names.add(list[i]!)));
  return names;
}

/** Makes a node's subgraphs read `to` wherever they read the enclosing graph's value `from`. */
export function renameOuterScopeRead(node: OnnxNode, from: string, to: string): void {
  visitSubgraphs(node, (g) => visitOuterNames(g, new Set(), (list, i) => { if (list[i] === from) list[i] = to; }));
}

/** Every name defined inside a node's subgraphs, at any depth (fresh names for the enclosing graph avoid them). */
export function subgraphNames(node: OnnxNode): Set<string> {
  const names = new Set<string>();
  const walk = (g: OnnxGraph): void => {
    for (const name of definedIn(g, new Set())) names.add(name);
    for (const n of g.node ?? []) {
      if (n.name) names.add(n.name);
      visitSubgraphs(n, walk);
    }
  };
  visitSubgraphs(node, walk);
  return names;
}
