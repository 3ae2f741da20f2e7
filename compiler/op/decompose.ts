/**
 * The reference decomposition of every RMSNorm variant in standard ONNX ops: the body of the
 * model-local FunctionProto that each fused node's `overload` names (SPEC section 3), so an
 * optimized model stays plain ONNX that onnxruntime runs as it is.
 *
 * Function identity. ONNX resolves a node to a model-local function by (domain, op_type,
 * overload), so a function's `name` is the node's op type (`RmsNorm`, `PreNorm`, `PostNorm`) and
 * its `overload` is the structural name from `functionName` (e.g. `prenorm_f16_high_performance`).
 * Everything that makes bodies differ is in that name: layer type, x dtype, param flags, the dtypes
 * of gamma/beta/bias/scale where they differ from the default, which optional inputs are present,
 * and k (number of normalized axes) when not 1. The model's opset is not in the name: one model has
 * one default-domain opset, so within a model the name is unique without it.
 *
 * Inputs are positional. The function declares the variant's signature inputs up to the last
 * present one (trailing absent optional inputs are left off, as the node leaves them off); an
 * interior absent input (written '' on the node) is still declared so positions line up, and the
 * body never reads it. That is why the body, and so the name, depends on which inputs are present.
 *
 * epsilon is not baked: the function declares the node's attributes and reads epsilon through a
 * Constant with `ref_attr_name: 'epsilon'`, so 32 layers with different epsilons share one function.
 *
 * Arithmetic (mirrored exactly by runtime/reference.ts):
 *   s     = x                             or  T(fp32(x) + fp32(residual) (+ fp32(bias)))   [sum output]
 *   rstd  = Reciprocal(Sqrt(ReduceMean(s*s, last k axes, keepdims) + eps))                 fp32
 *   y     = T(s * rstd * gamma)  |  gemma: T(s * rstd * (1 + gamma))  |  high_performance:
 *           T(fp32(T(s * rstd)) * fp32(T(gamma)))  (product of two T values is exact in fp32,
 *           so this is bit-identical to a Mul in T, and runs on every onnxruntime CPU build)
 *   v     = T(y + beta)  (or y)            -- what the original graph feeds its quantizer
 *   static:  q = QuantizeLinear(fp32(v), fp32 scale, int8 offset or 0)
 *   dynamic: scale = Max(ReduceMax(Abs(v)) / 127, 2^-23); q = Cast<int8>(Clip(Round(v / scale), -128, 127))
 */

import { create } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  type FunctionProto,
  FunctionProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type TensorProto,
  TensorProtoSchema,
  TensorProto_DataType,
} from 'onnx-buf';
import {
  type FloatDType,
  type InputRole,
  OP_TYPE,
  RMSFUSE_DOMAIN,
  type RmsNormParam,
  hasResidual,
  isDynamicQuant,
  isStaticQuant,
  signature,
  variantName,
} from './param.js';

/** What the decomposition needs to know about a fused node besides its param. */
export interface DecomposeIO {
  xDType: FloatDType;
  gammaDType: FloatDType;
  /** Defaults to xDType. */
  betaDType?: FloatDType;
  /** Static quant scale dtype; defaults to float32. */
  scaleDType?: FloatDType;
  /** Defaults to xDType. */
  biasDType?: FloatDType;
  /** Optional inputs (bias, beta, offset) that the node actually has; required inputs are implied. */
  present: Set<InputRole>;
  /** k: number of trailing normalized axes (gamma's rank). Default 1. */
  normalizedAxes?: number;
  /** The model's default-domain opset (>= 13). */
  opset: number;
}

/** Attribute names every fused node carries (SPEC section 3); the function declares them all. */
export const FUSED_ATTRIBUTE_NAMES = ['epsilon', 'quant_type', 'dynamic_quant', 'precision_mode', 'model_type', 'rstd', 'has_bias'] as const;

/** The scale floor of dynamic quantization (FLT_EPSILON): defines the all-zero row. */
export const DYNAMIC_SCALE_FLOOR = 2 ** -23;

const DT: Record<FloatDType, TensorProto_DataType> = {
  float32: TensorProto_DataType.FLOAT,
  float16: TensorProto_DataType.FLOAT16,
  bfloat16: TensorProto_DataType.BFLOAT16,
};
const SHORT: Record<FloatDType, string> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };

/** The optional inputs this variant's signature has slots for, filtered to those present. */
function presentOptional(param: RmsNormParam, present: Set<InputRole>): Set<InputRole> {
  const sig = signature(param);
  return new Set(sig.optional.filter((r) => sig.inputs.includes(r) && present.has(r)));
}

function checkIO(param: RmsNormParam, io: DecomposeIO): void {
  if (!(io.opset >= 13)) throw new Error(`decompose: default-domain opset ${io.opset} is below 13`);
  const k = io.normalizedAxes ?? 1;
  if (!Number.isInteger(k) || k < 1) throw new Error(`decompose: normalizedAxes must be a positive integer, got ${k}`);
  const sig = signature(param);
  if (sig.inputs.includes('bias') && param.hasBias !== io.present.has('bias')) {
    // has_bias says whether the bias input exists; a disagreement would give a body the name does not describe.
    throw new Error(`decompose: has_bias=${param.hasBias ? 1 : 0} but the bias input is ${io.present.has('bias') ? 'present' : 'absent'}`);
  }
}

/**
 * The structural name of the function for (param, io): the `overload` of the FunctionProto and
 * of every node calling it. Equal structure gives an equal name, different bodies different names.
 */
export function functionName(param: RmsNormParam, io: DecomposeIO): string {
  const parts = [variantName(param, io.xDType)];
  const opt = presentOptional(param, io.present);
  const sig = signature(param);
  if (io.gammaDType !== io.xDType) parts.push(`g${SHORT[io.gammaDType]}`);
  if (opt.has('bias') && (io.biasDType ?? io.xDType) !== io.xDType) parts.push(`bias${SHORT[io.biasDType!]}`);
  if (opt.has('beta')) parts.push((io.betaDType ?? io.xDType) === io.xDType ? 'beta' : `beta${SHORT[io.betaDType!]}`);
  if (sig.inputs.includes('scale') && (io.scaleDType ?? 'float32') !== 'float32') parts.push(`s${SHORT[io.scaleDType!]}`);
  if (opt.has('offset')) parts.push('zp');
  const k = io.normalizedAxes ?? 1;
  if (k !== 1) parts.push(`k${k}`);
  return parts.join('_');
}

/** The function's formal inputs: the signature up to the last present input (see file comment). */
export function functionInputs(param: RmsNormParam, present: Set<InputRole>): InputRole[] {
  const sig = signature(param);
  let last = -1;
  sig.inputs.forEach((r, i) => {
    if (!sig.optional.includes(r) || present.has(r)) last = i;
  });
  return sig.inputs.slice(0, last + 1);
}

// ---------------------------------------------------------------------------------------------
// A small node builder.

function attrInt(name: string, i: number): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) });
}
function attrInts(name: string, ints: number[]): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: ints.map(BigInt) });
}
function attrTensor(name: string, t: TensorProto): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.TENSOR, t });
}

function scalarF32(v: number): TensorProto {
  return create(TensorProtoSchema, { dims: [], dataType: TensorProto_DataType.FLOAT, floatData: [v] });
}

/** Appends nodes to a list, naming intermediate values uniquely. */
export class BodyBuilder {
  readonly nodes: NodeProto[] = [];
  private n = 0;

  constructor(private readonly prefix = '') {}

  fresh(hint: string): string {
    return `${this.prefix}${hint}_${this.n++}`;
  }

  op(opType: string, inputs: string[], attrs: AttributeProto[] = [], out?: string): string {
    const o = out ?? this.fresh(opType.toLowerCase());
    this.nodes.push(create(NodeProtoSchema, { opType, input: inputs, output: [o], attribute: attrs }));
    return o;
  }

  constF32(v: number, hint = 'c'): string {
    return this.op('Constant', [], [attrTensor('value', scalarF32(v))], this.fresh(hint));
  }

  /** A Constant whose float value is the calling node's attribute `attr`. */
  constAttrF32(attr: string): string {
    const a = create(AttributeProtoSchema, { name: 'value_float', refAttrName: attr, type: AttributeProto_AttributeType.FLOAT });
    return this.op('Constant', [], [a], this.fresh(attr));
  }

  constI64(values: number[], dims: number[] | null, hint = 'shape'): string {
    const t = create(TensorProtoSchema, {
      dims: (dims ?? [values.length]).map(BigInt),
      dataType: TensorProto_DataType.INT64,
      int64Data: values.map(BigInt),
    });
    return this.op('Constant', [], [attrTensor('value', t)], this.fresh(hint));
  }

  constI8Scalar(v: number, hint = 'zp'): string {
    const t = create(TensorProtoSchema, { dims: [], dataType: TensorProto_DataType.INT8, int32Data: [v] });
    return this.op('Constant', [], [attrTensor('value', t)], this.fresh(hint));
  }

  /** Cast to dtype; a no-op when from === to, unless `out` must be produced (then Identity). */
  cast(v: string, from: FloatDType, to: FloatDType, out?: string): string {
    if (from === to) return out ? this.op('Identity', [v], [], out) : v;
    return this.op('Cast', [v], [attrInt('to', DT[to])], out);
  }

  castTo(v: string, to: TensorProto_DataType, out?: string): string {
    return this.op('Cast', [v], [attrInt('to', to)], out);
  }

  /** Round an fp32 value to T and back (fp32 -> T -> fp32); nothing for T = fp32. */
  roundThrough(v32: string, t: FloatDType): string {
    if (t === 'float32') return v32;
    return this.cast(this.cast(v32, 'float32', t), t, 'float32');
  }

  /** ReduceMean/ReduceMax over the given axes with keepdims=1, axes as the opset has them. */
  reduce(opType: 'ReduceMean' | 'ReduceMax', v: string, axes: number[], opset: number, out?: string): string {
    const keep = attrInt('keepdims', 1);
    if (opset >= 18) return this.op(opType, [v, this.constI64(axes, null, 'axes')], [keep], out);
    return this.op(opType, [v], [attrInts('axes', axes), keep], out);
  }
}

/** Names of the decomposition's values that callers (other lowerings) may want. */
export interface DecompositionValues {
  /** Norm input in fp32 (x, or the residual sum rounded to T). */
  s32: string;
  /** rstd, fp32, keepdims shape. */
  rstd: string;
  /** Norm result in T. */
  yT: string;
  /** Residual sum in T (Pre/PostNorm). */
  sumT?: string;
  /** Quantized output (int8). */
  q?: string;
  /** Dynamic scale, fp32. */
  scale?: string;
}

/**
 * Emit the decomposition into `b`. `names` maps each signature role to the value name holding
 * it (absent optional inputs: missing or ''); `outNames` maps output roles to the names the
 * outputs must get (roles not listed get fresh names). epsilon is a value name (fp32 scalar).
 */
export function buildDecomposition(
  b: BodyBuilder,
  param: RmsNormParam,
  io: DecomposeIO,
  names: Partial<Record<InputRole, string>>,
  outNames: Partial<Record<'y' | 'q' | 'rstd' | 'scale' | 'sum', string>>,
  epsilon: string,
): DecompositionValues {
  checkIO(param, io);
  const T = io.xDType;
  const k = io.normalizedAxes ?? 1;
  const axes = Array.from({ length: k }, (_, i) => i - k);
  const opt = presentOptional(param, io.present);
  const has = (r: InputRole): boolean => (r === 'bias' || r === 'beta' || r === 'offset' ? opt.has(r) : true) && !!names[r];
  const need = (r: InputRole): string => {
    const v = names[r];
    if (!v) throw new Error(`decompose: missing input ${r}`);
    return v;
  };

  // s: x, or T(x + residual (+ bias)) computed in fp32 and rounded to T once.
  let s32: string;
  let sumT: string | undefined;
  if (hasResidual(param)) {
    let acc = b.op('Add', [b.cast(need('x'), T, 'float32'), b.cast(need('residual'), T, 'float32')]);
    if (has('bias')) acc = b.op('Add', [acc, b.cast(need('bias'), io.biasDType ?? T, 'float32')]);
    // The sum output is only an output for PreNorm; PostNorm keeps it internal.
    const sumOut = param.layerType === 'PreNorm' ? outNames.sum : undefined;
    sumT = b.cast(acc, 'float32', T, sumOut);
    s32 = T === 'float32' ? sumT : b.cast(sumT, T, 'float32');
  } else {
    s32 = b.cast(need('x'), T, 'float32');
  }

  const sq = b.op('Mul', [s32, s32]);
  const ms = b.reduce('ReduceMean', sq, axes, io.opset);
  const rstd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [ms, epsilon])])], [], param.rstd ? outNames.rstd : undefined);
  const n32 = b.op('Mul', [s32, rstd]);

  const wantY = param.quantType !== 'int8' || (isStaticQuant(param) && param.layerType === 'PostNorm');
  const yOut = wantY ? outNames.y : undefined;
  let yT: string;
  if (param.precisionMode === 'high_performance') {
    // T(s*rstd) times T(gamma): product exact in fp32, one rounding to T = a Mul in T.
    const nT = b.roundThrough(n32, T);
    const gT = b.roundThrough(b.cast(need('gamma'), io.gammaDType, 'float32'), T);
    yT = b.cast(b.op('Mul', [nT, gT]), 'float32', T, yOut);
  } else {
    let g32 = b.cast(need('gamma'), io.gammaDType, 'float32');
    if (param.modelType === 'gemma') g32 = b.op('Add', [g32, b.constF32(1, 'one')]);
    yT = b.cast(b.op('Mul', [n32, g32]), 'float32', T, yOut);
  }
  const vals: DecompositionValues = { s32, rstd, yT, ...(sumT !== undefined ? { sumT } : {}) };
  if (param.quantType !== 'int8') return vals;

  // v = T(y + beta) in fp32 numbers (beta absent: y).
  let v32 = b.cast(yT, T, 'float32');
  if (has('beta')) v32 = b.roundThrough(b.op('Add', [v32, b.cast(need('beta'), io.betaDType ?? T, 'float32')]), T);

  if (isStaticQuant(param)) {
    // Reshape to scalars: a 1-element [1] scale would otherwise read as per-axis quantization.
    const scalarShape = b.constI64([], [0], 'scalar_shape');
    const scale32 = b.op('Reshape', [b.cast(need('scale'), io.scaleDType ?? 'float32', 'float32'), scalarShape]);
    const zp = has('offset') ? b.op('Reshape', [need('offset'), scalarShape]) : b.constI8Scalar(0);
    vals.q = b.op('QuantizeLinear', [v32, scale32, zp], [], outNames.q);
  } else if (isDynamicQuant(param)) {
    const absmax = b.reduce('ReduceMax', b.op('Abs', [v32]), axes, io.opset);
    const scale = b.op('Max', [b.op('Div', [absmax, b.constF32(127, 'c127')]), b.constF32(DYNAMIC_SCALE_FLOOR, 'floor')], [], outNames.scale);
    const r = b.op('Round', [b.op('Div', [v32, scale])]);
    const c = b.op('Clip', [r, b.constF32(-128, 'lo'), b.constF32(127, 'hi')]);
    vals.q = b.castTo(c, TensorProto_DataType.INT8, outNames.q);
    vals.scale = scale;
  }
  return vals;
}

/**
 * The model-local FunctionProto for a fused node with this param and io: domain rmsfuse,
 * name = the node's op type, overload = functionName(param, io).
 */
export function buildFunction(param: RmsNormParam, io: DecomposeIO): FunctionProto {
  checkIO(param, io);
  const sig = signature(param);
  const inputs = functionInputs(param, io.present);
  const b = new BodyBuilder();
  const names: Partial<Record<InputRole, string>> = {};
  // Interior absent inputs are declared (positions) but not handed to the body.
  const opt = presentOptional(param, io.present);
  for (const r of inputs) if (!sig.optional.includes(r) || opt.has(r)) names[r] = r;
  const outNames: Partial<Record<'y' | 'q' | 'rstd' | 'scale' | 'sum', string>> = {};
  for (const o of sig.outputs) outNames[o] = o;
  const eps = b.constAttrF32('epsilon');
  buildDecomposition(b, param, io, names, outNames, eps);
  return create(FunctionProtoSchema, {
    name: OP_TYPE[param.layerType],
    domain: RMSFUSE_DOMAIN,
    overload: functionName(param, io),
    input: inputs,
    output: sig.outputs,
    attribute: [...FUSED_ATTRIBUTE_NAMES],
    node: b.nodes,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(io.opset) })],
    docString: `rmsfuse reference decomposition of ${functionName(param, io)} (SPEC section 2)`,
  });
}
