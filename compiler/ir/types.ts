/**
 * Dtypes and shapes: read from value_info, inputs, outputs and initializers, then inferred
 * forward for the ops that make up RMSNorm sites (and MatMul, which feeds them in real
 * models). Passes use this to check "gamma broadcasts only along the normalized axes" and
 * "the last dim is H". Unknown stays unknown; nothing is guessed.
 */
import type { ValueInfoProto } from 'onnx-buf';
import { ONNX_DTYPE } from '../onnx/dtype.js';
import type { Graph, Node } from './graph.js';

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
const ELEMENTWISE_UNARY = new Set(['Sqrt', 'Reciprocal', 'Abs', 'Neg', 'Round', 'Identity', 'Relu', 'Exp', 'Erf', 'Tanh', 'Sigmoid', 'Clip', 'Floor', 'Ceil']);
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
    if (v && !v.type) v.type = type;
  };
  const op = n.opType;
  if (n.domain !== '' && n.domain !== 'ai.onnx') return;
  if (ELEMENTWISE_BINARY.has(op)) {
    const a = t(0), b = t(1);
    if (a && b) set(0, { dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) });
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
    const target = n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined;
    if (!x || !target) return set(0, x && { dtype: x.dtype });
    const shape: Dim[] = target.map((d, i) => (d === 0 ? x.shape?.[i] : d === -1 ? undefined : d));
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
  }
}

export function inferGraphTypes(g: Graph): void {
  for (const n of g.nodes) inferNodeTypes(g, n);
}
