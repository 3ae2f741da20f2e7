/**
 * Semantic mutations: changes that keep a model loadable but change what it computes or how a
 * site is wired, for differential fuzzing (differential.test.ts). Where onnxruntime still runs
 * the mutated model, the optimized one must compute the same.
 *
 * - const-value: a scalar constant (epsilon, exponent, 1/H, 1, 127, ...) gets another value;
 * - op-swap: an op becomes a sibling of the same arity (Sqrt -> Abs, ReduceMean -> ReduceMax,
 *   Mul -> Add, Div -> Mul, ...);
 * - reduce-axes: a reduction's axes or keepdims change;
 * - rewire: one input of a node reads another value of the graph (interior values get extra
 *   consumers, operands swap places);
 * - output: an intermediate value becomes a graph output;
 * - consumer: an intermediate value gets an extra consumer that is a graph output;
 * - insert: an Identity or a no-op Cast on an edge;
 * - weight-dims: a weight's dims get leading or trailing 1s.
 */
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, type GraphProto, type ModelProto, NodeProtoSchema, type TensorProto, ValueInfoProtoSchema } from 'onnx-buf';
import { tensorValues } from '../../compiler/onnx/tensor.js';
import { f32ToF16Bits } from '../../runtime/numeric.js';
import { rng } from '../helpers/graph.js';
import type { Rand } from './mutators.js';

const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T | undefined => (xs.length ? xs[int(r, xs.length)] : undefined);

const SWAPS: Record<string, string[]> = {
  Sqrt: ['Abs', 'Exp', 'Reciprocal'],
  Reciprocal: ['Neg', 'Sqrt', 'Abs'],
  ReduceMean: ['ReduceMax', 'ReduceSum', 'ReduceMin', 'ReduceL2', 'ReduceSumSquare'],
  ReduceSum: ['ReduceMean', 'ReduceMax', 'ReduceSumSquare'],
  ReduceSumSquare: ['ReduceSum', 'ReduceMean', 'ReduceL2', 'ReduceMax'],
  ReduceMax: ['ReduceMean', 'ReduceMin'],
  Mul: ['Add', 'Sub', 'Div', 'Pow'],
  Add: ['Mul', 'Sub', 'Max'],
  Div: ['Mul', 'Sub'],
  Pow: ['Mul', 'Div'],
  Sub: ['Add'],
  Round: ['Floor', 'Ceil'],
  Abs: ['Neg', 'Relu'],
};

function floatScalar(t: TensorProto): boolean {
  const n = t.dims.reduce((a, d) => a * Number(d), 1);
  return n === 1 && (t.dataType === 1 || t.dataType === 10);
}

function setScalar(t: TensorProto, v: number): void {
  if (t.dataType === 1) {
    t.rawData = new Uint8Array(Float32Array.of(v).buffer);
    t.floatData = [];
  } else {
    t.rawData = new Uint8Array(Uint16Array.of(f32ToF16Bits(v)).buffer);
    t.int32Data = [];
  }
}

function graphs(m: ModelProto): GraphProto[] {
  const out: GraphProto[] = [];
  const walk = (g: GraphProto) => {
    out.push(g);
    for (const n of g.node) for (const a of n.attribute) {
      if (a.g) walk(a.g);
      for (const s of a.graphs) walk(s);
    }
  };
  if (m.graph) walk(m.graph);
  return out;
}

/** Values produced by nodes of `g` (candidates for rewiring and new outputs). */
const produced = (g: GraphProto): string[] => g.node.flatMap((n) => n.output).filter((o) => o !== '');

type Semantic = (m: ModelProto, r: Rand) => boolean;

export const SEMANTIC: Record<string, Semantic> = {
  'const-value': (m, r) => {
    const g = m.graph!;
    const scalars = [
      ...g.initializer.filter(floatScalar),
      ...g.node.filter((n) => n.opType === 'Constant').flatMap((n) => n.attribute.map((a) => a.t).filter((t): t is TensorProto => !!t && floatScalar(t))),
    ];
    const t = pick(r, scalars);
    if (!t) return false;
    const old = tensorValues(t)?.[0] ?? 0;
    const v = pick(r, [0, -1, 1e-12, 2, 3, -0.5, 0.5, 1.5, 1e30, NaN, old * (1 + 2 ** -20), -old, old * 2])!;
    setScalar(t, v);
    return true;
  },
  'op-swap': (m, r) => {
    const n = pick(r, graphs(m).flatMap((g) => g.node.filter((x) => SWAPS[x.opType] && x.domain === '')));
    if (!n) return false;
    n.opType = pick(r, SWAPS[n.opType]!)!;
    if (n.opType === 'ReduceL2' || n.opType.startsWith('Reduce')) return true;
    n.attribute = n.attribute.filter((a) => a.name !== 'axes' && a.name !== 'keepdims');
    return true;
  },
  'reduce-axes': (m, r) => {
    const n = pick(r, m.graph!.node.filter((x) => x.opType.startsWith('Reduce')));
    if (!n) return false;
    const axes = pick(r, [[0], [1], [-2], [0, 1], [-1, -2], [], [-1]])!;
    const keep = n.attribute.find((a) => a.name === 'keepdims');
    if (r() < 0.3 && keep) keep.i = keep.i === 1n ? 0n : 1n;
    else if (n.attribute.some((a) => a.name === 'axes')) {
      n.attribute = n.attribute.map((a) => (a.name === 'axes' ? create(AttributeProtoSchema, { name: 'axes', type: 7, ints: axes.map(BigInt) }) : a));
    } else if (n.input[1]) {
      const t = m.graph!.initializer.find((x) => x.name === n.input[1]);
      if (!t) return false;
      t.dims = [BigInt(axes.length)];
      t.rawData = new Uint8Array(BigInt64Array.from(axes.map(BigInt)).buffer);
      t.int64Data = [];
    } else return false;
    return true;
  },
  rewire: (m, r) => {
    const g = m.graph!;
    const i = int(r, g.node.length);
    const n = g.node[i];
    if (!n?.input.length) return false;
    // Only values defined before the node (keeps the graph acyclic), graph inputs included.
    const before = [...g.input.map((v) => v.name), ...g.node.slice(0, i).flatMap((x) => x.output)].filter((v) => v !== '');
    const v = pick(r, before);
    if (!v) return false;
    n.input[int(r, n.input.length)] = v;
    return true;
  },
  output: (m, r) => {
    const g = m.graph!;
    const outs = new Set(g.output.map((o) => o.name));
    const v = pick(r, produced(g).filter((x) => !outs.has(x)));
    if (!v) return false;
    g.output.push(create(ValueInfoProtoSchema, { name: v }));
    return true;
  },
  consumer: (m, r) => {
    const g = m.graph!;
    const v = pick(r, produced(g));
    if (!v) return false;
    const out = `${v}__extra_use`;
    g.node.push(create(NodeProtoSchema, { name: `${v}__neg`, opType: 'Neg', input: [v], output: [out] }));
    g.output.push(create(ValueInfoProtoSchema, { name: out }));
    return true;
  },
  insert: (m, r) => {
    const g = m.graph!;
    const i = int(r, g.node.length);
    const n = g.node[i];
    if (!n?.input.length) return false;
    const k = int(r, n.input.length);
    const src = n.input[k]!;
    if (!src) return false;
    const out = `${src}__inserted_${i}_${k}`;
    const cast = r() < 0.5;
    g.node.splice(
      i,
      0,
      create(NodeProtoSchema, {
        name: out,
        opType: cast ? 'Cast' : 'Identity',
        input: [src],
        output: [out],
        attribute: cast ? [create(AttributeProtoSchema, { name: 'to', type: 2, i: 1n })] : [],
      }),
    );
    n.input[k] = out;
    return true;
  },
  'weight-dims': (m, r) => {
    const t = pick(r, m.graph!.initializer.filter((x) => x.dims.length >= 1 && x.dims.reduce((a, d) => a * Number(d), 1) > 1));
    if (!t) return false;
    t.dims = r() < 0.5 ? [1n, ...t.dims] : [...t.dims, 1n];
    return true;
  },
};

export const SEMANTIC_NAMES = Object.keys(SEMANTIC);

/** Applies one semantic mutation in place; false when it found nothing to change. */
export function mutateSemantic(m: ModelProto, name: string, seed: number): boolean {
  return SEMANTIC[name]!(m, rng(seed));
}
