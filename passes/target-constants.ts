/**
 * Constants the way an Ascend target needs them (SPEC section 2: "A target that needs them in T
 * gets converted constants made at fusion time; the report says so"): float weights (gamma,
 * beta, bias, scale) in x's dtype, a scalar scale/offset as [1], and zeros for an absent beta or
 * offset. The validator's non-strict Ascend view assumes exactly these conversions. Other
 * targets take the constants as they are (the function and the kernels convert).
 */
import { create } from '@bufbuild/protobuf';
import { type TensorProto, TensorProtoSchema } from 'onnx-buf';
import type { Graph } from '../compiler/ir/graph.js';
import { ONNX_DTYPE, dtypeName } from '../compiler/onnx/dtype.js';
import { tensorValues } from '../compiler/onnx/tensor.js';
import { type FloatDType, type InputRole, isDynamicQuant, isStaticQuant, signature } from '../compiler/op/param.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../runtime/numeric.js';
import { FLOAT_CODE, floatOf, type FusedPlan } from './plan.js';

const CONVERTIBLE: readonly InputRole[] = ['gamma', 'beta', 'bias', 'scale'];

function encode(values: ArrayLike<number>, dtype: FloatDType): Uint8Array<ArrayBuffer> {
  if (dtype === 'float32') return new Uint8Array(Float32Array.from(values).buffer);
  const bits = dtype === 'float16' ? f32ToF16Bits : f32ToBf16Bits;
  return new Uint8Array(Uint16Array.from(Array.from(values, bits)).buffer);
}

/** The full contents of a constant (weights included: gamma is H values). */
function readConstant(g: Graph, name: string): { values: number[]; dims: number[] } | undefined {
  const c = g.constantTensor(name);
  if (!c) return undefined;
  if (c.values) return { values: c.values, dims: c.shape };
  const v = tensorValues(c.tensor!, (t) => g.model.externalBytes(t));
  return v && { values: v, dims: c.shape };
}

/** Made constants by source name, dtype and dims, so shared weights are converted once per graph. */
export type ConstantCache = Map<string, string>;

export function adaptConstantsForAscend(g: Graph, plan: FusedPlan, cache: ConstantCache): FusedPlan {
  const T = plan.dtypes.x;
  const inputs = { ...plan.inputs };
  const dtypes = { ...plan.dtypes };
  const newInitializers = [...plan.newInitializers];
  const notes = [...plan.notes];
  const known = new Map(newInitializers.map((t) => [t.name, t]));
  const make = (key: string, base: string, dataType: number, dims: number[], raw: Uint8Array<ArrayBuffer>): string => {
    const have = cache.get(key);
    if (have && (g.values.has(have) || known.has(have))) return have;
    const t: TensorProto = create(TensorProtoSchema, { name: g.freshName(base), dims: dims.map(BigInt), dataType, rawData: raw });
    newInitializers.push(t);
    known.set(t.name, t);
    cache.set(key, t.name);
    return t.name;
  };
  const read = (name: string): { values: number[]; dims: number[]; dtype: number } | undefined => {
    const t = known.get(name);
    if (t) return { values: tensorValues(t)!, dims: t.dims.map(Number), dtype: t.dataType };
    const c = readConstant(g, name);
    const dt = g.type(name)?.dtype;
    return c && dt !== undefined ? { ...c, dtype: dt } : undefined;
  };

  for (const role of signature(plan.param).inputs) {
    const name = inputs[role];
    if (!name) continue;
    const c = read(name);
    if (!c) continue;
    let dims = c.dims;
    let dtype = c.dtype;
    if (CONVERTIBLE.includes(role) && floatOf({ dtype }) && dtype !== FLOAT_CODE[T]) dtype = FLOAT_CODE[T];
    if ((role === 'scale' || role === 'offset') && dims.length === 0) dims = [1];
    if (dtype === c.dtype && dims === c.dims) continue;
    const raw = dtype === ONNX_DTYPE.INT8 ? new Uint8Array(Int8Array.from(c.values).buffer) : encode(c.values, floatOf({ dtype })!);
    const made = make(`${name}|${dtype}|${dims}`, `${name}_${dtypeName(dtype)}`, dtype, dims, raw);
    inputs[role] = made;
    if (role !== 'x' && role !== 'residual' && role !== 'offset') dtypes[role as 'gamma' | 'beta' | 'bias' | 'scale'] = floatOf({ dtype })!;
    notes.push(`${role} '${name}' (${dtypeName(c.dtype)}[${c.dims}]) converted to ${dtypeName(dtype)}[${dims}] as '${made}' for the target`);
  }

  // Zeros for an absent beta / offset, which ATB's kernels read.
  const sig = signature(plan.param);
  const gammaDims = read(inputs.gamma ?? '')?.dims;
  if (sig.inputs.includes('beta') && !inputs.beta && gammaDims && (isStaticQuant(plan.param) || isDynamicQuant(plan.param))) {
    const n = gammaDims.reduce((a, b) => a * b, 1);
    inputs.beta = make(`zeros|${T}|${gammaDims}`, 'zero_beta', FLOAT_CODE[T], gammaDims, encode(new Array(n).fill(0), T));
    dtypes.beta = T;
    notes.push(`absent beta supplied as zeros '${inputs.beta}' for the target`);
  }
  if (sig.inputs.includes('offset') && !inputs.offset) {
    inputs.offset = make('zeros|int8|1', 'zero_offset', ONNX_DTYPE.INT8, [1], new Uint8Array(1));
    notes.push(`absent offset supplied as zero '${inputs.offset}' for the target`);
  }
  return { ...plan, inputs, dtypes, newInitializers, notes };
}
