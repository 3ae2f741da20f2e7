/**
 * Dtypes and shapes: read from value_info, inputs, outputs and initializers, then inferred
 * forward for the ops that make up RMSNorm sites (and MatMul, which feeds them in real
 * models). Passes use this to check "gamma broadcasts only along the normalized axes" and
 * "the last dim is H". Unknown stays unknown; nothing is guessed.
 */
import type { ValueInfoProto } from 'onnx-buf';
import { ONNX_DTYPE } from '../onnx/dtype.js';
import type { Graph, Node } from './graph.js';
import { fusedParam, isFusedNode } from './fused.js';
import { signature } from '../op/param.js';

/** A dim is a number, a symbolic name, or undefined when unknown. */
export type Dim = number | string | undefined;
export interface TensorType {
  /** ONNX TensorProto.DataType code. */
  dtype: number;
  /** undefined when even the rank is unknown. */
  shape?: Dim[];
}

export function typeFromValueInfo(info: ValueInfoProto): TensorType | undefined {
  const t = info.type?.value;
  if (!t || info.type?.value.case !== 'tensorType') return undefined;
  const tensor = info.type.value.value;
  const shape = tensor.shape?.dim.map((d): Dim =>
    d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : undefined,
  );
  return { dtype: tensor.elemType, shape };
}

const ELEMENTWISE_BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min']);
const ELEMENTWISE_UNARY = new Set([
  'Sqrt', 'Reciprocal', 'Abs', 'Neg', 'Round', 'Identity', 'Relu', 'Exp', 'Erf', 'Tanh', 'Sigmoid', 'Clip', 'Floor', 'Ceil',
  // Same dtype and shape as the input, too (activations, softmax, trigonometry).
  'Softmax', 'LogSoftmax', 'Gelu', 'FastGelu', 'QuickGelu', 'Log', 'Cos', 'Sin', 'Elu', 'Selu', 'Celu', 'LeakyRelu', 'HardSigmoid',
  'HardSwish', 'Softplus', 'Softsign', 'Mish', 'Sign', 'Trilu', 'CumSum',
]);
const REDUCE = new Set(['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceSumSquare', 'ReduceL2', 'ReduceProd']);

/** Numpy-style broadcast of two shapes; undefined when they cannot broadcast or a rank is unknown. */
export function broadcastShapes(a?: Dim[], b?: Dim[]): Dim[] | undefined {
  if (!a || !b) return undefined;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y) out.push(x);
    else if (x === undefined || y === undefined) out.push(typeof x === 'number' ? x : typeof y === 'number' ? y : undefined);
    else return undefined;
  }
  return out;
}

/** Two shapes that cannot describe the same tensor: other ranks, or two different static sizes. */
export function shapesConflict(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length !== b.length || a.some((d, i) => typeof d === 'number' && typeof b[i] === 'number' && d !== b[i]);
}

/** Normalises axes against a rank (negative axes count from the end); undefined if out of range. */
export function normalizeAxes(axes: number[], rank: number): number[] | undefined {
  const out = axes.map((a) => (a < 0 ? a + rank : a));
  return out.every((a) => a >= 0 && a < rank) ? [...new Set(out)].sort((x, y) => x - y) : undefined;
}

/**
 * The axes of a Reduce* node: from the `axes` attribute (ReduceSum before opset 13, the
 * others before 18) or from the constant second input (from those opsets on). undefined
 * when not constant; [] means "all axes" unless noop_with_empty_axes.
 */
export function reduceAxes(g: Graph, n: Node): number[] | undefined {
  const attr = n.attrInts('axes');
  if (attr) return attr;
  const input = n.inputs[1];
  if (input === undefined || input === '') return [];
  return g.constantValues(input);
}

export function inferNodeTypes(g: Graph, n: Node): void {
  const t = (i: number) => (n.inputs[i] ? g.type(n.inputs[i]!) : undefined);
  const set = (i: number, type: TensorType | undefined) => {
    const name = n.outputs[i];
    if (!name || !type) return;
    const v = g.values.get(name);
    if (!v) return;
    // Fill what is missing. A declared shape (value_info) stays, unless the op's own inputs
    // contradict it (another rank, another static size): the ops decide what a value holds, and
    // a stale value_info must not make a site look fusable (found by the differential fuzzer).
    if (!v.type) v.type = type;
    else if (v.type.dtype !== type.dtype || !type.shape) return;
    else if (!v.type.shape || shapesConflict(v.type.shape, type.shape)) v.type = { ...v.type, shape: type.shape };
  };
  const op = n.opType;
  if (isFusedNode(n)) return inferFusedTypes(g, n);
  if (n.domain !== '' && n.domain !== 'ai.onnx') return;
  if (ELEMENTWISE_BINARY.has(op)) {
    const a = t(0), b = t(1);
    if (a && b) set(0, { dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) });
    else if (a || b) set(0, { dtype: (a ?? b)!.dtype });
  } else if (COMPARE.has(op)) {
    const a = t(0), b = t(1);
    set(0, { dtype: ONNX_DTYPE.BOOL, shape: a && b ? broadcastShapes(a.shape, b.shape) : undefined });
  } else if (ELEMENTWISE_UNARY.has(op)) {
    set(0, t(0));
  } else if (op === 'Cast') {
    set(0, { dtype: n.attrInt('to') ?? 0, shape: t(0)?.shape });
  } else if (op === 'CastLike') {
    set(0, { dtype: t(1)?.dtype ?? 0, shape: t(0)?.shape });
  } else if (REDUCE.has(op)) {
    const x = t(0);
    if (!x) return;
    const axes = reduceAxes(g, n);
    const keep = (n.attrInt('keepdims') ?? 1) === 1;
    if (!x.shape || axes === undefined) return set(0, { dtype: x.dtype });
    const all = axes.length === 0 && (n.attrInt('noop_with_empty_axes') ?? 0) === 0;
    const norm = all ? x.shape.map((_, i) => i) : normalizeAxes(axes, x.shape.length);
    if (!norm) return;
    const shape: Dim[] = [];
    x.shape.forEach((d, i) => {
      if (!norm.includes(i)) shape.push(d);
      else if (keep) shape.push(1);
    });
    set(0, { dtype: x.dtype, shape });
  } else if (op === 'QuantizeLinear') {
    const zp = t(2);
    const outAttr = n.attrInt('output_dtype');
    set(0, { dtype: zp?.dtype ?? (outAttr || ONNX_DTYPE.UINT8), shape: t(0)?.shape });
  } else if (op === 'DequantizeLinear') {
    set(0, { dtype: t(1)?.dtype ?? ONNX_DTYPE.FLOAT, shape: t(0)?.shape });
  } else if (op === 'Unsqueeze') {
    const x = t(0);
    const axes = n.attrInts('axes') ?? (n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined);
    if (!x?.shape || !axes) return set(0, x && { dtype: x.dtype });
    const rank = x.shape.length + axes.length;
    const norm = normalizeAxes(axes, rank);
    if (!norm) return;
    const shape: Dim[] = [];
    for (let i = 0, j = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : x.shape[j++]);
    set(0, { dtype: x.dtype, shape });
  } else if (op === 'Reshape') {
    const x = t(0);
    const target = n.inputs[1] ? shapeValue(g, n.inputs[1]) : undefined;
    if (!x || !target) return set(0, x && { dtype: x.dtype });
    const allowzero = (n.attrInt('allowzero') ?? 0) === 1;
    const shape: Dim[] = target.map((d, i) => (d === 0 && !allowzero ? x.shape?.[i] : d === -1 ? undefined : d));
    // -1: the element count of x divided by the other dims, when all are numbers.
    const minus = target.indexOf(-1);
    if (minus >= 0 && x.shape) {
      const total = x.shape.reduce<number | undefined>((a, d) => (a !== undefined && typeof d === 'number' ? a * d : undefined), 1);
      const rest = shape.reduce<number | undefined>((a, d, i) => (i === minus ? a : a !== undefined && typeof d === 'number' ? a * d : undefined), 1);
      if (total !== undefined && rest) shape[minus] = total / rest;
    }
    set(0, { dtype: x.dtype, shape });
  } else if (op === 'Transpose') {
    const x = t(0);
    if (!x?.shape) return set(0, x && { dtype: x.dtype });
    const perm = n.attrInts('perm') ?? x.shape.map((_, i) => x.shape!.length - 1 - i);
    set(0, { dtype: x.dtype, shape: perm.map((p) => x.shape![p]) });
  } else if (op === 'Where') {
    const c = t(0), a = t(1), b = t(2);
    if (a || b) set(0, { dtype: (a ?? b)!.dtype, shape: c && a && b ? broadcastShapes(broadcastShapes(c.shape, a.shape), b.shape) : undefined });
  } else if (op === 'Expand') {
    const x = t(0);
    const target = n.inputs[1] ? shapeValue(g, n.inputs[1]) : undefined;
    if (x) set(0, { dtype: x.dtype, shape: target ? broadcastShapes(x.shape, target) : undefined });
  } else if (op === 'Shape') {
    const x = t(0);
    const start = n.attrInt('start') ?? 0;
    const end = n.attrInt('end');
    const len = x?.shape ? x.shape.slice(start, end).length : undefined;
    set(0, { dtype: ONNX_DTYPE.INT64, shape: len === undefined ? undefined : [len] });
  } else if (op === 'Concat') {
    const ins = n.inputs.map((_, i) => t(i));
    const first = ins.find((x) => x);
    if (!first) return;
    if (ins.some((x) => !x?.shape)) return set(0, { dtype: first.dtype });
    const rank = ins[0]!.shape!.length;
    const axis = (n.attrInt('axis') ?? 0) < 0 ? (n.attrInt('axis') ?? 0) + rank : (n.attrInt('axis') ?? 0);
    const shape: Dim[] = ins[0]!.shape!.map((d, i) => {
      if (i !== axis) return ins.map((x) => x!.shape![i]).find((v) => v !== undefined) ?? d;
      return ins.reduce<Dim>((a, x) => (typeof a === 'number' && typeof x!.shape![i] === 'number' ? a + (x!.shape![i] as number) : undefined), 0);
    });
    set(0, { dtype: first.dtype, shape });
  } else if (op === 'Gather') {
    const x = t(0), idx = t(1);
    if (!x) return;
    if (!x.shape || !idx?.shape) return set(0, { dtype: x.dtype });
    const axis = (n.attrInt('axis') ?? 0) < 0 ? (n.attrInt('axis') ?? 0) + x.shape.length : (n.attrInt('axis') ?? 0);
    set(0, { dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] });
  } else if (op === 'Squeeze') {
    const x = t(0);
    const axes = n.attrInts('axes') ?? (n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined);
    if (!x?.shape || !axes) return set(0, x && { dtype: x.dtype });
    const norm = normalizeAxes(axes, x.shape.length);
    if (norm) set(0, { dtype: x.dtype, shape: x.shape.filter((_, i) => !norm.includes(i)) });
  } else if (op === 'Slice') {
    const x = t(0);
    if (!x) return;
    const starts = n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined;
    const ends = n.inputs[2] ? g.constantValues(n.inputs[2]) : undefined;
    const axes = n.inputs[3] ? g.constantValues(n.inputs[3]) : starts?.map((_, i) => i);
    const steps = n.inputs[4] ? g.constantValues(n.inputs[4]) : starts?.map(() => 1);
    if (!x.shape) return set(0, { dtype: x.dtype });
    const shape: Dim[] = [...x.shape];
    const norm = axes && normalizeAxes(axes, x.shape.length);
    if (!starts || !ends || !axes || !steps || !norm || norm.length !== axes.length) {
      // Rank is kept; the sliced dims are unknown unless every axis is known.
      const known = axes && normalizeAxes(axes, x.shape.length);
      return set(0, { dtype: x.dtype, shape: shape.map((d, i) => (known && !known.includes(i) ? d : undefined)) });
    }
    axes.forEach((a, j) => {
      const i = a < 0 ? a + x.shape!.length : a;
      const d = x.shape![i];
      if (typeof d !== 'number' || steps[j] !== 1) return void (shape[i] = undefined);
      const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
      shape[i] = Math.max(0, clamp(ends[j]!) - clamp(starts[j]!));
    });
    set(0, { dtype: x.dtype, shape });
  } else if (op === 'MatMul') {
    const a = t(0), b = t(1);
    if (a?.shape && b?.shape && a.shape.length >= 2 && b.shape.length >= 2) {
      const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
      if (batch) set(0, { dtype: a.dtype, shape: [...batch, a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]] });
    } else if (a && b?.shape?.length === 2 && a.shape) {
      set(0, { dtype: a.dtype, shape: [...a.shape.slice(0, -1), b.shape[1]] });
    }
  } else if (op === 'Constant') {
    const c = g.constantTensor(n.outputs[0]!);
    if (c?.tensor) set(0, { dtype: c.tensor.dataType, shape: c.shape });
    else if (c) set(0, { dtype: n.proto.attribute[0]?.name.includes('float') ? ONNX_DTYPE.FLOAT : ONNX_DTYPE.INT64, shape: c.shape });
  } else if (SAME_TYPE_FIRST_OUTPUT.has(op)) {
    // Normalizations, Dropout: output 0 has x's dtype and shape.
    set(0, t(0));
  }
}

/** Comparisons: bool output, broadcast shape. */
const COMPARE = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor']);
const SAME_TYPE_FIRST_OUTPUT = new Set(['LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization', 'Dropout', 'InstanceNormalization', 'BatchNormalization']);

/**
 * The elements of a small int64 shape tensor as dims (symbolic where they come from a
 * symbolic input dim): a constant, Shape(x), and Gather/Slice/Concat/Unsqueeze/Squeeze/Cast of
 * those, as exporters build Reshape and Expand targets. undefined when not traceable.
 */
export function shapeValue(g: Graph, name: string, depth = 0): Dim[] | undefined {
  if (depth > 16) return undefined;
  const c = g.isConstant(name) ? g.constantValues(name) : undefined;
  if (c) return c;
  const n = g.producer(name);
  if (!n || (n.domain !== '' && n.domain !== 'ai.onnx')) return undefined;
  const sub = (i: number): Dim[] | undefined => (n.inputs[i] ? shapeValue(g, n.inputs[i]!, depth + 1) : undefined);
  switch (n.opType) {
    case 'Shape': {
      const s = g.type(n.inputs[0] ?? '')?.shape;
      if (!s) return undefined;
      return s.slice(n.attrInt('start') ?? 0, n.attrInt('end'));
    }
    case 'Cast': case 'Identity': return sub(0);
    case 'Concat': {
      const parts = n.inputs.map((_, i) => sub(i));
      return parts.every((p) => p) ? parts.flatMap((p) => p!) : undefined;
    }
    case 'Unsqueeze': case 'Squeeze': case 'Reshape': {
      const v = sub(0);
      return v && v.length <= 1 ? v : undefined;
    }
    case 'Gather': {
      const v = sub(0);
      const idx = n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined;
      if (!v || !idx || (n.attrInt('axis') ?? 0) !== 0) return undefined;
      return idx.map((i) => v[i < 0 ? i + v.length : i]);
    }
    case 'Slice': {
      const v = sub(0);
      const st = n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined;
      const en = n.inputs[2] ? g.constantValues(n.inputs[2]) : undefined;
      const steps = n.inputs[4] ? g.constantValues(n.inputs[4]) : [1];
      if (!v || !st || !en || st.length !== 1 || steps?.[0] !== 1) return undefined;
      const clamp = (x: number) => Math.max(0, Math.min(v.length, x < 0 ? x + v.length : x));
      return v.slice(clamp(st[0]!), clamp(en[0]!));
    }
    default: return undefined;
  }
}

/**
 * Output types of a fused node (SPEC 2): y and sum in x's dtype and shape, q int8 of x's shape,
 * rstd and the dynamic scale fp32 with the normalized axes (gamma's rank, leading 1s aside) set to 1.
 */
function inferFusedTypes(g: Graph, n: Node): void {
  const param = fusedParam(n);
  if (typeof param === 'string') return;
  const sig = signature(param);
  const x = g.type(n.inputs[0] ?? '');
  const gammaName = n.inputs[sig.inputs.indexOf('gamma')];
  const gamma = gammaName ? g.type(gammaName) : undefined;
  if (!x) return;
  let k = 1;
  if (gamma?.shape && gamma.shape.length > 1) {
    let i = 0;
    while (i < gamma.shape.length - 1 && gamma.shape[i] === 1) i++;
    k = gamma.shape.length - i;
  }
  const reduced = x.shape?.map((d, i) => (i >= x.shape!.length - k ? 1 : d));
  sig.outputs.forEach((role, i) => {
    const name = n.outputs[i];
    if (!name) return;
    const v = g.values.get(name);
    if (!v || v.type) return;
    if (role === 'y' || role === 'sum') v.type = { dtype: x.dtype, shape: x.shape };
    else if (role === 'q') v.type = { dtype: ONNX_DTYPE.INT8, shape: x.shape };
    else v.type = { dtype: ONNX_DTYPE.FLOAT, shape: reduced };
  });
}

export function inferGraphTypes(g: Graph): void {
  for (const n of g.nodes) inferNodeTypes(g, n);
}
