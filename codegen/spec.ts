/**
 * The target-independent part of a kernel spec, derived from a fused node's description.
 * Each target (codegen/wgsl, codegen/ascendc) extends it with its own tuning fields and
 * keys its kernels by `specKey`: a canonical serialisation of the whole spec, so two
 * nodes share a kernel exactly when everything the generator reads is equal.
 */
import type { DType, FloatDType, FusedNodeDesc, InputRole, RmsNormParam } from '../compiler/op/param.js';

export interface KernelSpecBase {
  param: RmsNormParam;
  /** Activation dtype T (x, residual, y, sum). */
  xDType: FloatDType;
  /** dtype of each present input other than x (gamma may be fp32 with fp16 x, scale fp32, offset int8). */
  inputDTypes: Partial<Record<InputRole, DType>>;
  /** Optional inputs the node actually has (bias, beta, offset); absent ones are zero. */
  present: InputRole[];
  /** Elements per normalized row: the product of the last k dims (k = gamma's rank). */
  H: number;
}

/** Canonical JSON: object keys sorted at every level, so equal specs give equal strings. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** FNV-1a 64-bit of the canonical serialisation, as 16 hex digits. Deterministic across runs. */
export function specHash(spec: object): string {
  let h = 0xcbf29ce484222325n;
  const s = canonicalJson(spec);
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/** Numeric H of a desc: the product of x's trailing dims covered by gamma's rank. */
export function normalizedSize(desc: FusedNodeDesc): number {
  const x = desc.inputs.find((t) => t.role === 'x');
  const gamma = desc.inputs.find((t) => t.role === 'gamma');
  if (!x || !gamma) throw new Error(`fused node '${desc.node}' lacks x or gamma`);
  const k = Math.max(1, gamma.shape.length === 0 ? 1 : trailingRank(gamma.shape));
  const dims = x.shape.slice(-k);
  let H = 1;
  for (const d of dims) {
    if (typeof d !== 'number' || d <= 0) {
      throw new Error(`fused node '${desc.node}': the normalized dims of '${x.name}' must be static, got [${x.shape.join(', ')}]`);
    }
    H *= d;
  }
  return H;
}

/** gamma [1,...,1,H] normalizes one axis; [A,B] normalizes two. Leading 1s do not count. */
function trailingRank(shape: (number | string)[]): number {
  let i = 0;
  while (i < shape.length - 1 && shape[i] === 1) i++;
  return shape.length - i;
}

export function baseSpec(desc: FusedNodeDesc): KernelSpecBase {
  const x = desc.inputs.find((t) => t.role === 'x')!;
  const inputDTypes: Partial<Record<InputRole, DType>> = {};
  const present: InputRole[] = [];
  for (const t of desc.inputs) {
    if (t.name === '') continue;
    const role = t.role as InputRole;
    if (role !== 'x') inputDTypes[role] = t.dtype;
    if (role === 'bias' || role === 'beta' || role === 'offset') present.push(role);
  }
  return { param: desc.param, xDType: x.dtype as FloatDType, inputDTypes, present, H: normalizedSize(desc) };
}
