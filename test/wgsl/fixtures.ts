/**
 * Shared by the WGSL tests: fused-node descriptions of every variant, input data with the row
 * magnitudes that matter (large, tiny, all-zero), and the comparison of launcher outputs with
 * runtime/reference.ts under SPEC section 2's tolerances.
 */
import {
  OP_TYPE,
  defaultParam,
  signature,
  type DType,
  type FloatDType,
  type FusedNodeDesc,
  type InputRole,
  type LayerType,
  type OutputRole,
  type RmsNormParam,
  type TensorDesc,
} from '../../compiler/op/param.js';
import {
  compareWithTolerance,
  fromBf16Bits,
  fromF16Bits,
  roundArrayTo,
  toBf16Bits,
  toF16Bits,
  type CompareKind,
} from '../../runtime/numeric.js';
import { rmsNormReference, type RefInputs, type RefOutputs } from '../../runtime/reference.js';
import type { TensorData, TensorNames } from '../../runtime/webgpu/runtime.js';
import { rng } from '../helpers/graph.js';

export interface Variant {
  name: string;
  param: RmsNormParam;
  /** Optional inputs the node has (bias, beta, offset). */
  present: InputRole[];
}

function variant(name: string, layer: LayerType, over: Partial<RmsNormParam>, present: InputRole[] = []): Variant {
  return { name, param: { ...defaultParam(layer, 1e-5), ...over }, present };
}

const int8 = { quantType: 'int8' as const };
const dyn = { quantType: 'int8' as const, dynamicQuant: 'symmetric' as const };

/** Every variant of SPEC section 2 (and rmsfuse's extensions), with the optional inputs it is tested with. */
export const VARIANTS: Variant[] = [
  variant('norm', 'Norm', {}),
  variant('norm gemma', 'Norm', { modelType: 'gemma' }),
  variant('norm high_performance', 'Norm', { precisionMode: 'high_performance' }),
  variant('norm rstd', 'Norm', { rstd: true }),
  variant('norm int8 static', 'Norm', int8, ['beta', 'offset']),
  variant('norm int8 dynamic', 'Norm', dyn, ['beta']),
  variant('norm int8 dynamic, no beta', 'Norm', dyn),
  variant('prenorm', 'PreNorm', {}),
  variant('prenorm bias', 'PreNorm', { hasBias: true }, ['bias']),
  variant('prenorm high_performance', 'PreNorm', { precisionMode: 'high_performance' }),
  variant('postnorm', 'PostNorm', {}),
  variant('postnorm bias', 'PostNorm', { hasBias: true }, ['bias']),
  variant('prenorm int8 static', 'PreNorm', int8, ['beta', 'offset']),
  variant('postnorm int8 static', 'PostNorm', int8, ['offset']),
  variant('prenorm int8 dynamic', 'PreNorm', dyn, ['beta']),
  variant('postnorm int8 dynamic', 'PostNorm', dyn),
];

export function findVariant(name: string): Variant {
  const v = VARIANTS.find((x) => x.name === name);
  if (!v) throw new Error(`no variant '${name}'`);
  return v;
}

export interface DescOptions {
  /** dtype of gamma/beta/bias (default: x's). */
  weights?: FloatDType;
  scale?: 'float32' | 'float16';
}

/**
 * A fused node of `v` with activations of `xDType` and rows of H; tensor names are `<node>.<role>`,
 * rows are symbolic ('N'). Absent optional inputs follow ONNX: '' inside, left off at the end.
 */
export function makeDesc(node: string, v: Variant, xDType: FloatDType, H: number, o: DescOptions = {}): FusedNodeDesc {
  const sig = signature(v.param);
  const dtypeOf = (role: InputRole): DType => {
    if (role === 'x' || role === 'residual') return xDType;
    if (role === 'scale') return o.scale ?? 'float32';
    if (role === 'offset') return 'int8';
    return o.weights ?? xDType;
  };
  const shapeOf = (role: InputRole | OutputRole): (number | string)[] =>
    role === 'scale' || role === 'offset' ? [] : role === 'gamma' || role === 'beta' || role === 'bias' ? [H] : ['N', H];
  const inputs: TensorDesc[] = sig.inputs.map((role) => {
    const absent = sig.optional.includes(role) && !v.present.includes(role);
    return { name: absent ? '' : `${node}.${role}`, role, dtype: dtypeOf(role), shape: shapeOf(role), initializer: role !== 'x' && role !== 'residual' };
  });
  while (inputs.length > 0 && inputs[inputs.length - 1]!.name === '') inputs.pop();
  const outputs: TensorDesc[] = sig.outputs.map((role) => ({
    name: `${node}.${role}`,
    role,
    dtype: role === 'q' ? 'int8' : role === 'rstd' || role === 'scale' ? 'float32' : xDType,
    shape: role === 'rstd' || role === 'scale' ? ['N', 1] : ['N', H],
  }));
  return { node, opType: OP_TYPE[v.param.layerType], param: v.param, inputs, outputs };
}

/** A launcher's tensor names: the node's ONNX input and output names. */
export function tensorNames(desc: FusedNodeDesc): TensorNames {
  return { inputs: desc.inputs.map((t) => t.name), outputs: desc.outputs.map((t) => t.name) };
}

/** Values as the launcher takes them: fp32 -> Float32Array, fp16/bf16 -> Uint16Array bits. */
export function encode(dtype: DType, values: Float32Array): TensorData {
  if (dtype === 'float16') return toF16Bits(values);
  if (dtype === 'bfloat16') return toBf16Bits(values);
  if (dtype === 'float32') return values;
  throw new Error(`encode: ${dtype}`);
}

export function decode(dtype: DType, a: TensorData): Float32Array {
  if (dtype === 'float16') return fromF16Bits(a);
  if (dtype === 'bfloat16') return fromBf16Bits(a);
  if (dtype === 'float32') return a as Float32Array;
  throw new Error(`decode: ${dtype}`);
}

export interface DataOptions {
  seed: number;
  /** Rows set to zero in x (and residual): the dynamic-quant floor case. */
  zeroRows?: number[];
}

/**
 * Row magnitudes cycle through 1, a large and a tiny factor, so statistics are tested away from 1.
 * Large stays inside fp16's range after the residual add; tiny makes epsilon matter.
 */
function rowFactor(dtype: FloatDType, r: number): number {
  const large = dtype === 'float32' ? 1e4 : 300;
  const tiny = dtype === 'float32' ? 1e-4 : 2e-3;
  return [1, large, tiny, 0.5][r % 4]!;
}

export interface CaseData {
  /** Launcher inputs keyed by tensor name. */
  inputs: Record<string, TensorData>;
  ref: RefInputs;
}

export function makeData(desc: FusedNodeDesc, H: number, rows: number, o: DataOptions): CaseData {
  const next = rng(o.seed);
  const xDType = desc.inputs[0]!.dtype as FloatDType;
  const zero = new Set(o.zeroRows ?? []);
  const inputs: Record<string, TensorData> = {};
  const ref: RefInputs = { x: new Float32Array(0), gamma: new Float32Array(0) };
  for (const t of desc.inputs) {
    if (t.name === '') continue;
    const role = t.role as InputRole;
    if (role === 'scale') {
      // A QDQ scale that keeps most values inside int8 with some saturation.
      const s = roundArrayTo(t.dtype as FloatDType, new Float32Array([0.021]));
      inputs[t.name] = encode(t.dtype, s);
      ref.scale = s[0]!;
      continue;
    }
    if (role === 'offset') {
      const z = new Int8Array([-3]);
      inputs[t.name] = z;
      ref.offset = z[0]!;
      continue;
    }
    const n = role === 'x' || role === 'residual' ? rows * H : H;
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let u = next() * 2 - 1;
      if (role === 'x' || role === 'residual') {
        const r = Math.floor(i / H);
        u = zero.has(r) ? 0 : u * rowFactor(xDType, r);
      } else if (role === 'gamma') u = 0.5 + next(); // weights near 1, as trained norms have
      else u *= 0.1; // beta, bias: small offsets
      v[i] = u;
    }
    roundArrayTo(t.dtype as FloatDType, v);
    inputs[t.name] = encode(t.dtype, v);
    ref[role as 'x' | 'gamma' | 'residual' | 'bias' | 'beta'] = v;
  }
  return { inputs, ref };
}

export function reference(desc: FusedNodeDesc, H: number, ref: RefInputs): RefOutputs {
  return rmsNormReference(desc.param, desc.inputs[0]!.dtype as FloatDType, H, ref);
}

/** How each output is compared (SPEC 2): floats in their dtype, rstd as fp32, int8 |diff| <= 1, scale 2^-8. */
function kindOf(t: TensorDesc): CompareKind {
  if (t.role === 'q') return 'int8';
  if (t.role === 'scale') return 'scale';
  return t.dtype as FloatDType;
}

/** Compares every output the launcher returned with the reference; returns failure messages. */
export function compareOutputs(desc: FusedNodeDesc, got: Record<string, TensorData>, want: RefOutputs, label: string): string[] {
  const errors: string[] = [];
  for (const t of desc.outputs) {
    const a = got[t.name];
    const e = want[t.role as keyof RefOutputs];
    if (!a) {
      errors.push(`${label}: output ${t.name} missing`);
      continue;
    }
    if (!e) throw new Error(`${label}: the reference has no ${t.role}`);
    const actual = t.role === 'q' ? a : decode(t.dtype, a);
    const r = compareWithTolerance(actual, e, kindOf(t), { label: `${label} ${t.role}` });
    if (!r.ok) errors.push(r.message);
  }
  return errors;
}
