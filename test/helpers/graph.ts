/**
 * Test helper: a tiny DSL for building ONNX graphs with onnx-buf, and a stable text rendering
 * of graphs for Before/Expected comparisons.
 *
 *   const g = new GraphBuilder({ opset: 17 });
 *   const x = g.input('x', 'float16', ['batch', 'seq', 64]);
 *   const w = g.init('w', 'float16', [64], ones(64));
 *   g.scope('/model/layers.0/input_layernorm');
 *   const x32 = g.op('Cast', [x], { to: DT.float32 });
 *   ...
 *   g.output(y, 'float16', ['batch', 'seq', 64]);
 *   const bytes = g.bytes();
 *
 * Attribute values: integers become INT, integer arrays INTS, strings STRING, `float(v)` FLOAT,
 * `floats([..])` FLOATS, a TensorProto TENSOR, a GraphProto GRAPH.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  type AttributeProto,
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type TensorProto,
  TensorProtoSchema,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
  type FunctionProto,
} from 'onnx-buf';
import { dtypeName } from '../../compiler/onnx/dtype.js';
import { halfToNumber, tensorValues } from '../../compiler/onnx/tensor.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../../runtime/numeric.js';
import { rng } from '../../runtime/random.js';

export type ElemType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool';
/** ONNX TensorProto.DataType codes by name. */
export const DT: Record<ElemType, number> = {
  float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, bfloat16: 16,
};
export type Dims = (number | string)[];

/** Marks a number as a FLOAT attribute (plain numbers become INT). */
export class FloatAttr { constructor(readonly v: number) {} }
export class FloatsAttr { constructor(readonly v: number[]) {} }
export const float = (v: number): FloatAttr => new FloatAttr(v);
export const floats = (v: number[]): FloatsAttr => new FloatsAttr(v);
export type AttrValue = number | number[] | string | FloatAttr | FloatsAttr | TensorProto | GraphProto;

const T = AttributeProto_AttributeType;

export function makeAttribute(name: string, v: AttrValue): AttributeProto {
  if (v instanceof FloatAttr) return create(AttributeProtoSchema, { name, type: T.FLOAT, f: v.v });
  if (v instanceof FloatsAttr) return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: v.v });
  if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(v) });
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: T.INTS, ints: v.map((x) => BigInt(x)) });
  if (v.$typeName === 'onnx.TensorProto') return create(AttributeProtoSchema, { name, type: T.TENSOR, t: v });
  return create(AttributeProtoSchema, { name, type: T.GRAPH, g: v });
}

export function valueInfo(name: string, dtype?: ElemType, dims?: Dims): ValueInfoProto {
  if (dtype === undefined) return create(ValueInfoProtoSchema, { name });
  const tensor = create(TypeProto_TensorSchema, { elemType: DT[dtype] });
  if (dims) {
    tensor.shape = create(TensorShapeProtoSchema, {
      dim: dims.map((d) =>
        create(TensorShapeProto_DimensionSchema, {
          value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
        }),
      ),
    });
  }
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensor } }) });
}

/** A tensor with raw little-endian data; fp16/bf16 values are rounded to the nearest (RNE). */
export function makeTensor(name: string, dtype: ElemType, dims: number[], values: ArrayLike<number>): TensorProto {
  const n = values.length;
  let raw: Uint8Array<ArrayBuffer>;
  switch (dtype) {
    case 'float32': raw = new Uint8Array(Float32Array.from(values).buffer); break;
    case 'float16': raw = new Uint8Array(Uint16Array.from(Array.from(values, f32ToF16Bits)).buffer); break;
    case 'bfloat16': raw = new Uint8Array(Uint16Array.from(Array.from(values, f32ToBf16Bits)).buffer); break;
    case 'int8': raw = new Uint8Array(Int8Array.from(values).buffer); break;
    case 'uint8': case 'bool': raw = Uint8Array.from(values); break;
    case 'int32': raw = new Uint8Array(Int32Array.from(values).buffer); break;
    case 'int64': raw = new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer); break;
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== n) throw new Error(`makeTensor ${name}: ${n} values for dims [${dims}]`);
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: DT[dtype], rawData: raw });
}

export interface BuilderOptions {
  /** Default-domain opset (default 17). */
  opset?: number;
  /** Graph name (default 'g'). */
  name?: string;
  irVersion?: number;
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly valueInfos: ValueInfoProto[] = [];
  readonly opset: number;
  private prefix = '';
  private counter = 0;
  private names = new Set<string>();

  constructor(readonly options: BuilderOptions = {}) {
    this.opset = options.opset ?? 17;
  }

  /** Node names from now on are `${scope}/${OpType}` (made unique with _1, _2 ...); '' for plain names. */
  scope(s: string): this {
    this.prefix = s;
    return this;
  }

  private fresh(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: ElemType, dims?: Dims): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  output(name: string, dtype?: ElemType, dims?: Dims): string {
    this.outputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /** Adds a value_info entry (type annotation of an intermediate tensor). */
  info(name: string, dtype: ElemType, dims?: Dims): string {
    this.valueInfos.push(valueInfo(name, dtype, dims));
    return name;
  }

  init(name: string, dtype: ElemType, dims: number[], values: ArrayLike<number>): string {
    const n = this.fresh(name);
    this.initializers.push(makeTensor(n, dtype, dims, values));
    return n;
  }

  /** A scalar initializer. */
  scalar(value: number, dtype: ElemType = 'float32', name = 'c'): string {
    return this.init(name, dtype, [], [value]);
  }

  /** A Constant node holding a tensor (scalar when dims is []). */
  constant(values: number | number[], dtype: ElemType = 'float32', dims?: number[]): string {
    const vals = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [vals.length]);
    const name = this.fresh(this.prefix ? `${this.prefix}/Constant` : `Constant_${this.counter++}`);
    const out = this.fresh(`${name}_output_0`);
    this.nodes.push(create(NodeProtoSchema, {
      name, opType: 'Constant', input: [], output: [out], attribute: [makeAttribute('value', makeTensor('', dtype, d, vals))],
    }));
    return out;
  }

  /** Axes as the opset wants them for ReduceMean-like ops (attribute before 18, input from 18). */
  reduce(opType: string, x: string, axes: number[] | undefined, keepdims = 1, opts: OpOptions = {}): string {
    const axesAsInput = opType === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    if (axes === undefined) return this.op(opType, [x], { keepdims }, opts);
    if (axesAsInput) return this.op(opType, [x, this.init('axes', 'int64', [axes.length], axes)], { keepdims }, opts);
    return this.op(opType, [x], { axes, keepdims }, opts);
  }

  /** Adds a node; returns its first output's name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: OpOptions = {}): string {
    return this.opN(opType, inputs, attrs, { ...opts, outputs: opts.outputs ?? 1 })[0]!;
  }

  /** Adds a node with several outputs; returns their names. */
  opN(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: OpOptions & { outputs?: number | string[] } = {}): string[] {
    const name = opts.name ?? this.fresh(this.prefix ? `${this.prefix}/${opType}` : `${opType}_${this.counter++}`);
    this.names.add(name);
    const outs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: opts.outputs ?? 1 }, (_, i) => this.fresh(`${name}_output_${i}`));
    for (const o of outs) this.names.add(o);
    this.nodes.push(create(NodeProtoSchema, {
      name, opType, domain: opts.domain ?? '', input: inputs, output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
    }));
    return outs;
  }

  graph(): GraphProto {
    return create(GraphProtoSchema, {
      name: this.options.name ?? 'g',
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer: this.initializers,
      valueInfo: this.valueInfos,
    });
  }

  model(extra: { opsets?: Record<string, number>; functions?: FunctionProto[] } = {}): ModelProto {
    return create(ModelProtoSchema, {
      irVersion: BigInt(this.options.irVersion ?? 8),
      producerName: 'rmsfuse-test',
      opsetImport: [
        create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(this.opset) }),
        ...Object.entries(extra.opsets ?? {}).map(([domain, v]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(v) })),
      ],
      graph: this.graph(),
      functions: extra.functions ?? [],
    });
  }

  bytes(): Uint8Array {
    return toBinary(ModelProtoSchema, this.model(), { writeUnknownFields: true });
  }
}

export interface OpOptions {
  name?: string;
  domain?: string;
  outputs?: number | string[];
}

// ---------------------------------------------------------------------------------------------
// Stable text rendering (Before/Expected style).

function fmtFloat(f: number): string {
  return Number.isInteger(f) ? f.toFixed(1) : String(Number(Math.fround(f).toPrecision(7)));
}

function fmtTensor(t: TensorProto): string {
  const dims = t.dims.map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const vals = n <= 8 ? tensorValues(t) : undefined;
  const v = vals ? ` ${vals.length === 1 && dims.length === 0 ? fmtNum(vals[0]!) : `[${vals.map(fmtNum).join(', ')}]`}` : '';
  return `${dtypeName(t.dataType)}[${dims.join(',')}]${v}`;
}
const fmtNum = (x: number): string => (Number.isInteger(x) ? String(x) : String(Number(Math.fround(x).toPrecision(7))));

function fmtAttr(a: AttributeProto, indent: string): string {
  switch (a.type) {
    case T.FLOAT: return `${a.name}=${fmtFloat(a.f)}`;
    case T.INT: return `${a.name}=${a.i}`;
    case T.STRING: return `${a.name}='${new TextDecoder().decode(a.s)}'`;
    case T.INTS: return `${a.name}=[${a.ints.join(',')}]`;
    case T.FLOATS: return `${a.name}=[${a.floats.map(fmtFloat).join(',')}]`;
    case T.TENSOR: return `${a.name}=${a.t ? fmtTensor(a.t) : '?'}`;
    case T.GRAPH: return `${a.name}={\n${renderGraphProto(a.g!, indent + '    ')}${indent}  }`;
    default: return `${a.name}=<${a.type}>`;
  }
}

function fmtType(v: ValueInfoProto): string {
  if (v.type?.value.case !== 'tensorType') return '?';
  const t = v.type.value.value;
  const dims = t.shape?.dim.map((d) => (d.value.case === 'dimValue' ? String(d.value.value) : d.value.case === 'dimParam' ? d.value.value : '?'));
  return `${dtypeName(t.elemType)}${dims ? `[${dims.join(',')}]` : ''}`;
}

/**
 * One line per node: `name: out1, out2 = domain.Op<overload>(in1, in2) {attrs}`; graph inputs,
 * outputs and initializers (with small values) first. Nested graphs are indented.
 */
export function renderGraphProto(g: GraphProto, indent = ''): string {
  const lines: string[] = [];
  lines.push(`${indent}graph ${g.name}(${g.input.map((i) => `${i.name}: ${fmtType(i)}`).join(', ')}) -> (${g.output.map((o) => `${o.name}: ${fmtType(o)}`).join(', ')})`);
  for (const t of g.initializer) lines.push(`${indent}  init ${t.name}: ${fmtTensor(t)}`);
  for (const n of g.node) {
    const op = `${n.domain ? `${n.domain}.` : ''}${n.opType}${n.overload ? `<${n.overload}>` : ''}`;
    const attrs = n.attribute.length ? ` {${n.attribute.map((a) => fmtAttr(a, indent)).join(', ')}}` : '';
    lines.push(`${indent}  ${n.name}: ${n.output.join(', ')} = ${op}(${n.input.map((i) => (i === '' ? "''" : i)).join(', ')})${attrs}`);
  }
  return lines.join('\n') + '\n';
}

/** The whole model: opset imports, functions (name and overload only), ir_version, main graph. */
export function renderModel(m: ModelProto): string {
  const opsets = m.opsetImport.map((o) => `${o.domain || 'ai.onnx'}:${o.version}`).join(', ');
  const fns = m.functions.map((f) => `  function ${f.domain}.${f.name}<${f.overload}>(${f.input.join(', ')}) -> (${f.output.join(', ')})`).join('\n');
  return `ir ${m.irVersion}; opsets ${opsets}\n${fns ? fns + '\n' : ''}${renderGraphProto(m.graph!)}`;
}

/** Values of a tensor, fp16 decoded (test convenience). */
export function tensorNumbers(t: TensorProto): number[] {
  return tensorValues(t) ?? [];
}
export { halfToNumber };

export { rng };

/** n values uniform in [lo, hi). */
export function randomValues(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}
