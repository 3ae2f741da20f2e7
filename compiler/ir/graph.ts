/**
 * The graph IR: a thin, indexed view over the decoded ONNX messages.
 *
 * Nodes wrap their NodeProto, and edits go straight into the GraphProto, so everything the
 * IR does not model (doc strings, metadata, unknown fields) is kept as it was. The IR adds
 * what passes need: producer and consumer indexes, constants, dtypes and shapes, subgraphs,
 * and an editing API (replace a set of nodes by new ones, remove what became dead).
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  NodeProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type SparseTensorProto,
  type TensorProto,
} from 'onnx-buf';
import { RmsfuseError } from '../errors.js';
import { readExternalBytes, isExternal, type ExternalRef } from '../onnx/external.js';
import { elementCount, tensorValues } from '../onnx/tensor.js';
import type { LoadedModel } from '../onnx/model.js';
import { inferGraphTypes, typeFromValueInfo, type TensorType } from './types.js';

/** AttributeProto.AttributeType codes used here. */
export const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, GRAPHS: 10 } as const;

export class Node {
  /** Graphs of this node's GRAPH/GRAPHS attributes (If branches, Loop/Scan bodies). */
  readonly subgraphs: Graph[] = [];
  /** Index in graph.nodes as of the last reindex (for order checks). */
  position = -1;
  constructor(
    readonly proto: NodeProto,
    readonly graph: Graph,
  ) {}

  get opType(): string { return this.proto.opType; }
  get domain(): string { return this.proto.domain; }
  get name(): string { return this.proto.name; }
  get inputs(): string[] { return this.proto.input; }
  get outputs(): string[] { return this.proto.output; }
  /** True for ops of the default ONNX domain ('' or 'ai.onnx') with this op type. */
  is(opType: string): boolean {
    return this.proto.opType === opType && (this.proto.domain === '' || this.proto.domain === 'ai.onnx');
  }
  attribute(name: string): AttributeProto | undefined {
    return this.proto.attribute.find((a) => a.name === name);
  }
  attrInt(name: string): number | undefined {
    const a = this.attribute(name);
    return a && a.type === ATTR.INT ? Number(a.i) : undefined;
  }
  attrInts(name: string): number[] | undefined {
    const a = this.attribute(name);
    return a && a.type === ATTR.INTS ? a.ints.map(Number) : undefined;
  }
  attrFloat(name: string): number | undefined {
    const a = this.attribute(name);
    return a && a.type === ATTR.FLOAT ? a.f : undefined;
  }
  /** A readable label for messages: the node's name, or its op type and first output. */
  get label(): string {
    return this.proto.name || `${this.proto.opType}(${this.proto.output[0] ?? ''})`;
  }
}

export interface Value {
  name: string;
  producer?: Node;
  /** Nodes reading it, including nodes whose subgraphs read it from this scope. */
  consumers: Node[];
  isGraphInput: boolean;
  isGraphOutput: boolean;
  initializer?: TensorProto;
  /** A sparse initializer of that name (named by its `values` tensor); never decoded. */
  sparseInitializer?: SparseTensorProto;
  type?: TensorType;
}

/** Constants up to this many elements are decoded for passes; weights never are. */
export const MAX_CONSTANT_ELEMENTS = 4096;

export class Graph {
  nodes: Node[] = [];
  values = new Map<string, Value>();
  constructor(
    readonly proto: GraphProto,
    readonly model: Model,
    /** The node owning this graph as a GRAPH attribute; undefined for the main graph. */
    readonly owner?: Node,
  ) {
    this.reindex();
  }

  get parent(): Graph | undefined { return this.owner?.graph; }
  get depth(): number { return this.parent ? this.parent.depth + 1 : 0; }

  /** Where this graph sits, for messages: `graph 'main'` or `subgraph 'body' of node Loop_3`. */
  where(): string {
    // Innermost first; deep nesting keeps its two innermost levels and the outermost one, so a
    // message stays short however deep the graph sits.
    const levels: string[] = [];
    let g: Graph = this;
    for (; g.owner; g = g.parent!) {
      const proto = g.proto;
      const attr = g.owner.proto.attribute.find((a) => a.g === proto || a.graphs.includes(proto));
      levels.push(`subgraph '${attr?.name ?? (proto.name || 'body')}' of node ${g.owner.label}`);
    }
    const shown = levels.length <= 4 ? levels : [...levels.slice(0, 2), `... ${levels.length - 3} more levels ...`, levels[levels.length - 1]!];
    return shown.reduceRight((outer, level) => `${level} (${outer})`, `graph '${g.proto.name || 'main'}'`);
  }

  /** Rebuilds nodes, values, indexes and subgraphs from the GraphProto. */
  reindex(): void {
    const old = new Map(this.nodes.map((n) => [n.proto, n]));
    // Inferred types are kept by name: edits keep tensor names (fused outputs keep the names,
    // dtypes and shapes of what they replace), so a name's type stays valid across a rebuild.
    const oldTypes = new Map<string, TensorType>();
    for (const [name, val] of this.values) if (val.type) oldTypes.set(name, val.type);
    this.nodes = this.proto.node.map((p, i) => {
      const n = old.get(p) ?? new Node(p, this);
      n.position = i;
      return n;
    });
    this.values = new Map();
    const v = (name: string): Value => {
      let x = this.values.get(name);
      if (!x) {
        x = { name, consumers: [], isGraphInput: false, isGraphOutput: false };
        this.values.set(name, x);
      }
      return x;
    };
    const where = this.where();
    for (const i of this.proto.input) {
      const val = v(i.name);
      if (val.isGraphInput) throw new RmsfuseError(`${where}: input '${i.name}' is listed twice`);
      val.isGraphInput = true;
    }
    for (const t of this.proto.initializer) {
      const val = v(t.name);
      if (val.initializer) throw new RmsfuseError(`${where}: initializer '${t.name}' is defined twice`);
      val.initializer = t;
    }
    for (const sp of this.proto.sparseInitializer) {
      const name = sp.values?.name ?? '';
      const val = v(name);
      if (val.initializer || val.sparseInitializer) throw new RmsfuseError(`${where}: initializer '${name}' is defined twice`);
      val.sparseInitializer = sp;
      val.type = { dtype: sp.values?.dataType ?? 0, shape: sp.dims.map(Number) };
    }
    for (const n of this.nodes) {
      for (const o of n.outputs) {
        if (o === '') continue;
        const val = v(o);
        if (val.producer === n) throw new RmsfuseError(`${where}: node ${n.label} lists output '${o}' twice`);
        if (val.producer) {
          throw new RmsfuseError(`${where}: tensor '${o}' is produced twice, by ${val.producer.label} and by ${n.label}`);
        }
        if (val.isGraphInput) throw new RmsfuseError(`${where}: tensor '${o}' is a graph input and also produced by node ${n.label}`);
        if (val.initializer || val.sparseInitializer) throw new RmsfuseError(`${where}: tensor '${o}' is an initializer and also produced by node ${n.label}`);
        val.producer = n;
      }
    }
    for (const o of this.proto.output) {
      const val = v(o.name);
      if (val.isGraphOutput) throw new RmsfuseError(`${where}: output '${o.name}' is listed twice`);
      val.isGraphOutput = true;
    }
    for (const n of this.nodes) {
      if (n.subgraphs.length === 0) {
        for (const a of n.proto.attribute) {
          if (a.g) n.subgraphs.push(new Graph(a.g, this.model, n));
          for (const g of a.graphs) n.subgraphs.push(new Graph(g, this.model, n));
        }
      }
      if (n.subgraphs.length === 0) {
        // The common case, kept allocation-free: a node reading a name twice (Mul(x, x)) is
        // one consumer, and it is then the last one pushed.
        for (const name of n.inputs) {
          if (name === '') continue;
          const consumers = v(name).consumers;
          if (consumers[consumers.length - 1] !== n) consumers.push(n);
        }
        continue;
      }
      const read = new Set(n.inputs.filter((i) => i !== ''));
      for (const g of n.subgraphs) for (const name of g.freeNames()) read.add(name);
      for (const name of read) {
        // Names a subgraph takes from further out are not this scope's values.
        if (!n.inputs.includes(name) && !this.resolves(name)) continue;
        v(name).consumers.push(n);
      }
    }
    for (const info of [...this.proto.input, ...this.proto.output, ...this.proto.valueInfo]) {
      const val = this.values.get(info.name);
      if (val && !val.type) val.type = typeFromValueInfo(info);
    }
    for (const t of this.proto.initializer) {
      const val = this.values.get(t.name)!;
      val.type ??= { dtype: t.dataType, shape: t.dims.map(Number) };
    }
    if (oldTypes.size > 0) for (const [name, val] of this.values) if (!val.type && oldTypes.has(name)) val.type = oldTypes.get(name);
  }

  /** True if `name` is defined in this graph itself (input, initializer or node output). */
  defines(name: string): boolean {
    const v = this.values.get(name);
    return !!v && (v.isGraphInput || !!v.initializer || !!v.sparseInitializer || !!v.producer);
  }

  private resolves(name: string): boolean {
    return this.defines(name);
  }

  /** Names this graph (and its nested subgraphs) reads without defining: its outer-scope inputs. */
  freeNames(): Set<string> {
    const free = new Set<string>();
    for (const n of this.nodes) {
      for (const i of n.inputs) if (i !== '' && !this.defines(i)) free.add(i);
      for (const g of n.subgraphs) for (const i of g.freeNames()) if (!this.defines(i)) free.add(i);
    }
    for (const o of this.proto.output) if (!this.defines(o.name)) free.add(o.name);
    return free;
  }

  /** Looks a value up here and then in enclosing scopes. */
  lookup(name: string): Value | undefined {
    if (this.defines(name)) return this.values.get(name);
    return this.parent?.lookup(name) ?? this.values.get(name);
  }

  producer(name: string): Node | undefined {
    return this.values.get(name)?.producer;
  }
  consumers(name: string): Node[] {
    return this.values.get(name)?.consumers ?? [];
  }
  isGraphOutput(name: string): boolean {
    return this.values.get(name)?.isGraphOutput ?? false;
  }
  type(name: string): TensorType | undefined {
    return this.lookup(name)?.type;
  }

  /**
   * The constant behind a name: an initializer (not overridable by a graph input) or the
   * `value*` attribute of a Constant node, looked up through enclosing scopes.
   */
  constantTensor(name: string): { tensor?: TensorProto; values?: number[]; shape: number[] } | undefined {
    const v = this.lookup(name);
    if (!v) return undefined;
    if (v.initializer && !v.isGraphInput) return { tensor: v.initializer, shape: v.initializer.dims.map(Number) };
    const p = v.producer;
    if (!p || !p.is('Constant')) return undefined;
    const a = p.proto.attribute[0];
    if (!a) return undefined;
    switch (a.name) {
      case 'value': return a.t ? { tensor: a.t, shape: a.t.dims.map(Number) } : undefined;
      case 'value_float': return { values: [a.f], shape: [] };
      case 'value_floats': return { values: a.floats.slice(), shape: [a.floats.length] };
      case 'value_int': return { values: [Number(a.i)], shape: [] };
      case 'value_ints': return { values: a.ints.map(Number), shape: [a.ints.length] };
      default: return undefined;
    }
  }

  /** Values of a small constant (at most MAX_CONSTANT_ELEMENTS), reading external data if needed. */
  constantValues(name: string): number[] | undefined {
    const c = this.constantTensor(name);
    if (!c) return undefined;
    if (c.values) return c.values;
    const t = c.tensor!;
    if (elementCount(t) > MAX_CONSTANT_ELEMENTS) return undefined;
    return tensorValues(t, (x) => this.model.externalBytes(x));
  }

  isConstant(name: string): boolean {
    return this.constantTensor(name) !== undefined;
  }

  /**
   * Replaces `remove` by `add`. The new nodes take the place of the last removed node, so
   * everything they read is already computed there; `sortTopologically` repairs the order if a
   * consumer of a new output sat in between.
   *
   * The indexes are updated in place (cost in the size of the edit, not of the graph), so a pass
   * fusing site after site stays linear. Initializers appended to `proto.initializer` for the
   * new nodes are picked up. Edits involving subgraphs, or a graph whose node list was changed
   * behind the index, fall back to a full `reindex`.
   */
  replace(remove: Node[], add: NodeProto[]): Node[] {
    const gone = new Set(remove.map((n) => n.proto));
    let at = -1;
    this.proto.node.forEach((p, i) => {
      if (gone.has(p)) at = i;
    });
    if (at < 0) throw new Error('replace: none of the nodes to remove is in this graph');
    const hasSubgraph = (p: NodeProto) => p.attribute.some((a) => a.g || a.graphs.length > 0);
    if (!this.indexMatchesProto() || remove.some((n) => n.subgraphs.length > 0) || add.some(hasSubgraph)) {
      const kept: NodeProto[] = [];
      this.proto.node.forEach((p, i) => {
        if (!gone.has(p)) kept.push(p);
        if (i === at) kept.push(...add);
      });
      this.proto.node = kept;
      this.reindex();
      this.sortTopologically();
      return add.map((p) => this.nodes.find((n) => n.proto === p)!);
    }

    const added = add.map((p) => new Node(p, this));
    const keptProtos: NodeProto[] = [];
    const keptNodes: Node[] = [];
    this.nodes.forEach((n, i) => {
      if (!gone.has(n.proto)) {
        keptProtos.push(n.proto);
        keptNodes.push(n);
      }
      if (i === at) {
        keptProtos.push(...add);
        keptNodes.push(...added);
      }
    });
    const touched = new Set<string>();
    for (const n of this.nodes) if (gone.has(n.proto)) this.unindexNode(n, touched);
    this.proto.node = keptProtos;
    this.nodes = keptNodes;
    keptNodes.forEach((n, i) => (n.position = i));
    for (const n of added) this.indexOutputs(n);
    for (const n of added) this.indexInputs(n);
    this.adoptNewInitializers(added);
    this.dropOrphans(touched);
    if (!this.addedInOrder(added)) this.sortTopologically();
    return added;
  }

  /**
   * Removes these nodes (and nothing else) from the graph, updating the indexes in place.
   * Whatever read their outputs now reads nothing: use it for nodes that became dead.
   */
  removeNodes(nodes: Iterable<Node>): void {
    const gone = new Set<NodeProto>();
    for (const n of nodes) gone.add(n.proto);
    if (gone.size === 0) return;
    if (!this.indexMatchesProto() || this.nodes.some((n) => gone.has(n.proto) && n.subgraphs.length > 0)) {
      this.proto.node = this.proto.node.filter((p) => !gone.has(p));
      this.reindex();
      return;
    }
    const touched = new Set<string>();
    for (const n of this.nodes) if (gone.has(n.proto)) this.unindexNode(n, touched);
    this.nodes = this.nodes.filter((n) => !gone.has(n.proto));
    this.proto.node = this.nodes.map((n) => n.proto);
    this.nodes.forEach((n, i) => (n.position = i));
    this.dropOrphans(touched);
  }

  /** Removes initializers by name (graph inputs of the same name stay), updating the indexes. */
  removeInitializers(names: Iterable<string>): void {
    const drop = new Set(names);
    if (drop.size === 0) return;
    this.proto.initializer = this.proto.initializer.filter((t) => !drop.has(t.name));
    for (const name of drop) {
      const v = this.values.get(name);
      if (v) v.initializer = undefined;
    }
    this.dropOrphans(drop);
  }

  /** Removes nodes whose outputs nobody reads and that are not graph outputs. Returns the count. */
  removeDeadNodes(): number {
    const isDead = (n: Node) => n.outputs.every((o) => o === '' || (this.consumers(o).length === 0 && !this.isGraphOutput(o)));
    let removed = 0;
    let candidates = this.nodes;
    for (;;) {
      const dead = candidates.filter(isDead);
      if (dead.length === 0) return removed;
      // Only the producers of what the dead nodes read can die next.
      const next = new Set<Node>();
      for (const n of dead) for (const i of n.inputs) {
        const p = i === '' ? undefined : this.values.get(i)?.producer;
        if (p) next.add(p);
      }
      this.removeNodes(dead);
      removed += dead.length;
      const alive = new Set(this.nodes);
      candidates = [...next].filter((n) => alive.has(n));
    }
  }

  /** True when `nodes` mirrors `proto.node` (no edit of the node list behind the index). */
  private indexMatchesProto(): boolean {
    const protos = this.proto.node;
    if (protos.length !== this.nodes.length) return false;
    for (let i = 0; i < protos.length; i++) if (this.nodes[i]!.proto !== protos[i]) return false;
    return true;
  }

  private value(name: string): Value {
    let x = this.values.get(name);
    if (!x) {
      x = { name, consumers: [], isGraphInput: false, isGraphOutput: false };
      this.values.set(name, x);
    }
    return x;
  }

  /** Takes a node out of the producer and consumer indexes; records the names it touched. */
  private unindexNode(n: Node, touched: Set<string>): void {
    for (const o of n.outputs) {
      if (o === '') continue;
      const v = this.values.get(o);
      if (v?.producer === n) v.producer = undefined;
      touched.add(o);
    }
    const reads = new Set(n.inputs);
    for (const g of n.subgraphs) for (const name of g.freeNames()) reads.add(name);
    for (const name of reads) {
      if (name === '') continue;
      const v = this.values.get(name);
      const k = v ? v.consumers.indexOf(n) : -1;
      if (k >= 0) v!.consumers.splice(k, 1);
      touched.add(name);
    }
  }

  private indexOutputs(n: Node): void {
    for (const o of n.outputs) {
      if (o === '') continue;
      const val = this.value(o);
      if (val.producer === n) throw new RmsfuseError(`${this.where()}: node ${n.label} lists output '${o}' twice`);
      if (val.producer) throw new RmsfuseError(`${this.where()}: tensor '${o}' is produced twice, by ${val.producer.label} and by ${n.label}`);
      if (val.isGraphInput) throw new RmsfuseError(`${this.where()}: tensor '${o}' is a graph input and also produced by node ${n.label}`);
      if (val.initializer || val.sparseInitializer) throw new RmsfuseError(`${this.where()}: tensor '${o}' is an initializer and also produced by node ${n.label}`);
      val.producer = n;
    }
  }

  private indexInputs(n: Node): void {
    for (const name of n.inputs) {
      if (name === '') continue;
      const consumers = this.value(name).consumers;
      if (consumers[consumers.length - 1] !== n) consumers.push(n);
    }
  }

  /** Initializers the new nodes read that were appended to proto.initializer since the last index. */
  private adoptNewInitializers(added: Node[]): void {
    let byName: Map<string, TensorProto> | undefined;
    for (const n of added) {
      for (const name of n.inputs) {
        if (name === '' || this.lookupDefined(name)) continue;
        byName ??= new Map(this.proto.initializer.map((t) => [t.name, t]));
        const t = byName.get(name);
        if (!t) continue;
        const v = this.value(name);
        v.initializer = t;
        v.type ??= { dtype: t.dataType, shape: t.dims.map(Number) };
      }
    }
  }

  /** Forgets values that nothing defines or reads any more (as a full reindex would). */
  private dropOrphans(names: Iterable<string>): void {
    for (const name of names) {
      const v = this.values.get(name);
      if (v && !v.producer && v.consumers.length === 0 && !v.isGraphInput && !v.isGraphOutput && !v.initializer && !v.sparseInitializer) {
        this.values.delete(name);
      }
    }
  }

  /** After a replace: do the new nodes sit after what they read and before what reads them? */
  private addedInOrder(added: Node[]): boolean {
    for (const n of added) {
      for (const name of n.inputs) {
        const p = name === '' ? undefined : this.values.get(name)?.producer;
        if (p && p.position >= n.position) return false;
      }
      for (const o of n.outputs) {
        if (o === '') continue;
        for (const c of this.values.get(o)?.consumers ?? []) if (c.position <= n.position) return false;
      }
    }
    return true;
  }

  /**
   * Test aid: throws if the incrementally kept indexes differ from a fresh index of the same
   * GraphProto (producers, consumers, flags, initializers).
   */
  checkIndex(): void {
    const fresh = new Graph(this.proto, this.model, this.owner);
    const describe = (g: Graph) =>
      [...g.values.values()]
        .map((v) =>
          [
            v.name,
            v.producer?.proto.name ?? '-',
            v.consumers.map((c) => c.proto.name).sort().join(','),
            v.isGraphInput ? 'in' : '',
            v.isGraphOutput ? 'out' : '',
            v.initializer ? 'init' : '',
          ].join('|'),
        )
        .sort()
        .join('\n');
    const a = describe(this);
    const b = describe(fresh);
    if (a !== b) throw new Error(`graph index out of date:\n--- kept\n${a}\n--- fresh\n${b}`);
    if (this.nodes.some((n, i) => n.proto !== this.proto.node[i] || n.position !== i)) throw new Error('graph node list out of date');
  }

  /**
   * Stable topological order (original order wherever it is already valid). Throws on a
   * cycle, naming a node on it.
   */
  sortTopologically(): void {
    if (this.isSorted()) return;
    const index = new Map(this.nodes.map((n, i) => [n, i]));
    const pending = new Map<Node, number>();
    const users = new Map<Node, Node[]>();
    const depsOf = new Map<Node, Set<Node>>();
    for (const n of this.nodes) {
      const deps = new Set<Node>();
      const reads = [...n.inputs, ...n.subgraphs.flatMap((g) => [...g.freeNames()])];
      for (const i of reads) {
        const p = i === '' ? undefined : this.producer(i);
        if (p && p !== n) deps.add(p);
        else if (p === n) throw new RmsfuseError(`${this.where()} has a cycle: node ${n.label} reads its own output '${i}'`);
      }
      depsOf.set(n, deps);
      pending.set(n, deps.size);
      for (const d of deps) (users.get(d) ?? users.set(d, []).get(d)!).push(n);
    }
    // A binary heap keyed by original index keeps the order stable.
    const heap: Node[] = [];
    const push = (n: Node) => {
      heap.push(n);
      let i = heap.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (index.get(heap[p]!)! <= index.get(heap[i]!)!) break;
        [heap[p], heap[i]] = [heap[i]!, heap[p]!];
        i = p;
      }
    };
    const pop = (): Node => {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < heap.length && index.get(heap[l]!)! < index.get(heap[m]!)!) m = l;
          if (r < heap.length && index.get(heap[r]!)! < index.get(heap[m]!)!) m = r;
          if (m === i) break;
          [heap[m], heap[i]] = [heap[i]!, heap[m]!];
          i = m;
        }
      }
      return top;
    };
    for (const [n, c] of pending) if (c === 0) push(n);
    const order: Node[] = [];
    while (heap.length) {
      const n = pop();
      order.push(n);
      for (const u of users.get(n) ?? []) {
        const c = pending.get(u)! - 1;
        pending.set(u, c);
        if (c === 0) push(u);
      }
    }
    if (order.length !== this.nodes.length) {
      const cycle = findCycle(this.nodes.filter((n) => pending.get(n)! > 0), depsOf);
      // A cycle through thousands of nodes would make an unreadable message: show its ends.
      const labels = cycle.map((n) => n.label);
      const shown = labels.length <= 12 ? labels : [...labels.slice(0, 6), `... (${labels.length - 11} more nodes) ...`, ...labels.slice(-5)];
      throw new RmsfuseError(`${this.where()} has a cycle: ${shown.join(' -> ')}`);
    }
    if (order.some((n, i) => n !== this.nodes[i])) {
      this.proto.node = order.map((n) => n.proto);
      this.nodes = order;
      order.forEach((n, i) => (n.position = i));
    }
  }

  /**
   * True when every node comes after the producers of everything it reads (exporters write
   * graphs this way): one pass, no allocation per node. A sorted graph has no cycle.
   */
  private isSorted(): boolean {
    for (let i = 0; i < this.nodes.length; i++) this.nodes[i]!.position = i;
    for (let i = 0; i < this.nodes.length; i++) {
      const n = this.nodes[i]!;
      for (const name of n.inputs) {
        const p = name === '' ? undefined : this.values.get(name)?.producer;
        if (p && p.position >= i) return false;
      }
      for (const g of n.subgraphs) {
        for (const name of g.freeNames()) {
          const p = this.values.get(name)?.producer;
          if (p && p.position >= i) return false;
        }
      }
    }
    return true;
  }

  /** Checks on load: every input produced somewhere (here, outer scopes, or graph inputs), no cycles. */
  validate(): void {
    for (const n of this.nodes) {
      for (const i of n.inputs) {
        if (i === '') continue;
        // Inline of lookupDefined for the common case (defined in this graph): one Map lookup.
        const v = this.values.get(i);
        if (v && (v.producer || v.isGraphInput || v.initializer || v.sparseInitializer)) continue;
        if (!this.parent?.lookupDefined(i)) {
          throw new RmsfuseError(`${this.where()}: node ${n.label} reads '${i}', which no node, initializer or graph input provides`);
        }
      }
    }
    for (const o of this.proto.output) {
      if (!this.lookupDefined(o.name)) throw new RmsfuseError(`${this.where()}: output '${o.name}' is not produced by any node, initializer or input`);
    }
    this.sortTopologically();
    for (const n of this.nodes) for (const g of n.subgraphs) g.validate();
  }

  private lookupDefined(name: string): boolean {
    return this.defines(name) || (this.parent?.lookupDefined(name) ?? false);
  }

  /** This graph and every nested subgraph, outermost first. */
  *allGraphs(): Generator<Graph> {
    yield this;
    for (const n of this.nodes) for (const g of n.subgraphs) yield* g.allGraphs();
  }

  /** A name not used for any value in this model (for new intermediate tensors). */
  freshName(base: string): string {
    return this.model.freshName(base);
  }
}

/**
 * A cycle among `stuck` nodes (those a topological sort could not place): every one of them
 * waits for at least one other stuck node, so walking "waits for" edges must revisit a node.
 * Returns the cycle in data-flow order, first node repeated at the end.
 */
function findCycle(stuck: Node[], depsOf: Map<Node, Set<Node>>): Node[] {
  const isStuck = new Set(stuck);
  const seenAt = new Map<Node, number>();
  const path: Node[] = [];
  let n = stuck[0]!;
  while (!seenAt.has(n)) {
    seenAt.set(n, path.length);
    path.push(n);
    n = [...depsOf.get(n)!].find((d) => isStuck.has(d))!;
  }
  const cycle = path.slice(seenAt.get(n)!).reverse();
  // Start at the node that comes first in the graph, so the message is the same on every run.
  const order = new Map(stuck.map((s, i) => [s, i]));
  const start = cycle.reduce((best, c, i) => (order.get(c)! < order.get(cycle[best]!)! ? i : best), 0);
  const rotated = [...cycle.slice(start), ...cycle.slice(0, start)];
  return [...rotated, rotated[0]!];
}

export class Model {
  readonly graph: Graph;
  private usedNames?: Set<string>;
  constructor(readonly loaded: LoadedModel) {
    this.graph = new Graph(loaded.proto.graph!, this);
  }
  get proto(): ModelProto { return this.loaded.proto; }

  /** The imported opset version of a domain ('' = default ONNX domain), or undefined. */
  opset(domain = ''): number | undefined {
    const d = domain === 'ai.onnx' ? '' : domain;
    const o = this.proto.opsetImport.find((x) => (x.domain === 'ai.onnx' ? '' : x.domain) === d);
    return o ? Number(o.version) : undefined;
  }

  externalBytes(t: TensorProto): Uint8Array {
    const ref: ExternalRef | undefined = this.loaded.external.find((r) => r.tensor === t);
    if (!ref || !isExternal(t)) throw new Error(`tensor '${t.name}' has no external data`);
    return readExternalBytes(ref, this.loaded.dir);
  }

  freshName(base: string): string {
    if (!this.usedNames) {
      this.usedNames = new Set();
      for (const g of this.graph.allGraphs()) {
        for (const n of g.proto.node) {
          this.usedNames.add(n.name);
          for (const o of n.output) this.usedNames.add(o);
        }
        for (const v of g.values.keys()) this.usedNames.add(v);
      }
    }
    let name = base;
    for (let i = 1; this.usedNames.has(name); i++) name = `${base}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  /** Infers dtypes and shapes for the ops of an RMSNorm site, in every graph. */
  inferTypes(): void {
    for (const g of this.graph.allGraphs()) inferGraphTypes(g);
  }
}

export function newNode(fields: MessageInitShape<typeof NodeProtoSchema>): NodeProto {
  return create(NodeProtoSchema, fields);
}
