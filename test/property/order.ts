/** Node-order helpers for the stability tests: random topological orders and an order-free rendering. */
import type { GraphProto, ModelProto, NodeProto } from 'onnx-buf';
import { decodeModel } from '../../compiler/onnx/model.js';
import { renderGraphProto, rng } from '../helpers/graph.js';
import { modelBytes } from '../helpers/ort.js';

/** A random valid topological order of the main graph's nodes (Kahn's algorithm, random pick). */
export function shuffleNodes(m: ModelProto, seed: number): ModelProto {
  const copy = decodeModel(modelBytes(m));
  const g = copy.graph!;
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) if (o) producer.set(o, n);
  const reads = (n: NodeProto): string[] => [...n.input, ...subgraphFree(n)];
  const deps = new Map(g.node.map((n) => [n, new Set(reads(n).map((i) => producer.get(i)).filter((p): p is NodeProto => !!p && p !== n))]));
  const r = rng(seed);
  const done = new Set<NodeProto>();
  const order: NodeProto[] = [];
  while (order.length < g.node.length) {
    const ready = g.node.filter((n) => !done.has(n) && [...deps.get(n)!].every((d) => done.has(d)));
    const n = ready[Math.floor(r() * ready.length)]!;
    done.add(n);
    order.push(n);
  }
  g.node = order;
  return copy;
}

/** Names a node's subgraphs read (conservatively: every input name of every nested node). */
function subgraphFree(n: NodeProto): string[] {
  const out: string[] = [];
  const walk = (g: GraphProto) => {
    for (const m of g.node) {
      out.push(...m.input);
      for (const a of m.attribute) {
        if (a.g) walk(a.g);
        for (const s of a.graphs) walk(s);
      }
    }
  };
  for (const a of n.attribute) {
    if (a.g) walk(a.g);
    for (const s of a.graphs) walk(s);
  }
  return out;
}

/** The model as sorted lines: what it contains, not the order it lists nodes in. */
export function canonical(m: ModelProto): string {
  const graph = renderGraphProto(m.graph!).split('\n');
  const [head, ...rest] = graph;
  const fns = m.functions.map((f) => `function ${f.domain}.${f.name}<${f.overload}>(${f.input}) -> (${f.output}) ${f.node.length} nodes`).sort();
  const opsets = m.opsetImport.map((o) => `${o.domain}:${o.version}`).sort();
  return [`ir ${m.irVersion}`, `opsets ${opsets.join(',')}`, ...fns, head, ...rest.sort()].join('\n');
}

