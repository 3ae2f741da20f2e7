/**
 * Small WGSL building blocks the generator assembles: buffer declarations with their load/store
 * functions, number-format conversions and the row reductions. Each helper returns plain WGSL
 * text for one concern, so `generate.ts` reads as the kernel's outline.
 *
 * Conventions: a "unit" is `vecWidth` consecutive elements; every load returns and every store
 * takes the f32 vector type `V` of that width (f32 for width 1). Element indices of row tensors
 * are `row * UNITS + u`, of per-H tensors (gamma, beta, bias) just `u`.
 */
import type { DType, InputRole, OutputRole } from '../../compiler/op/param.js';

export type VecWidth = 1 | 2 | 4;

/**
 * How a tensor's elements sit in its storage buffer:
 * f32 / f16 (native WGSL types), f16x2 / bf16x2 (two halves per u32, low half first, i.e. the
 * little-endian byte order of a Uint16Array), i8x4 (four int8 per u32, low byte first).
 */
export type Packing = 'f32' | 'f16' | 'f16x2' | 'bf16x2' | 'i8x4';

/** How many elements a tensor has: rows * H, H (gamma, beta, bias) or one per row (rstd, scale). */
export type Extent = 'rows' | 'vector' | 'perRow';

export interface WgslBinding {
  /** `@binding(n)` in `@group(0)`. */
  binding: number;
  /** WGSL variable name (the role). */
  name: string;
  role: InputRole | OutputRole;
  dtype: DType;
  access: 'read' | 'read_write';
  packing: Packing;
  /**
   * Elements smaller than a word are OR-ed into a zeroed buffer with atomicOr, because a word can
   * hold elements of two rows (or of two threads); the launcher clears the buffer first.
   */
  atomic: boolean;
  extent: Extent;
}

export const vecF32 = (vw: VecWidth): string => (vw === 1 ? 'f32' : `vec${vw}<f32>`);

/** An f32 literal that parses back to exactly `v` (v must be an fp32 value). */
export function f32Lit(v: number): string {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) throw new Error(`not a finite f32: ${v}`);
  return `${f}f`;
}

/** The WGSL element type of a binding's storage array. */
function storageElement(b: WgslBinding, vw: VecWidth): string {
  const w = b.extent === 'perRow' ? 1 : vw;
  switch (b.packing) {
    case 'f32':
      return w === 1 ? 'f32' : `vec${w}<f32>`;
    case 'f16':
      return w === 1 ? 'f16' : `vec${w}<f16>`;
    case 'f16x2':
    case 'bf16x2':
      // vec4 of halves = two words; vec2 = one word; a single half lives in a shared word.
      return b.atomic ? 'atomic<u32>' : w === 4 ? 'vec2<u32>' : 'u32';
    case 'i8x4':
      return b.atomic ? 'atomic<u32>' : 'u32';
  }
}

export function declareBinding(b: WgslBinding, vw: VecWidth): string {
  const access = b.access === 'read' ? 'read' : 'read_write';
  return `@group(0) @binding(${b.binding}) var<storage, ${access}> ${b.name}: array<${storageElement(b, vw)}>;`;
}

/** Decoders from a packed u32 word to two f32 values (only the helpers a kernel uses are emitted). */
export const BF16_HELPERS = `// bf16 is the high half of an f32: widening is a shift, narrowing rounds to nearest even.
fn bf16x2_unpack(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}
fn bf16_bits(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) { return 0x7fc0u; } // NaN stays a (quiet) NaN
  return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u;
}
fn bf16x2_pack(v: vec2<f32>) -> u32 {
  return bf16_bits(v.x) | (bf16_bits(v.y) << 16u);
}`;

function unpackFn(p: Packing): string {
  return p === 'bf16x2' ? 'bf16x2_unpack' : 'unpack2x16float';
}
function packFn(p: Packing): string {
  return p === 'bf16x2' ? 'bf16x2_pack' : 'pack2x16float';
}

/** `fn load_<name>(i: u32) -> V`: one unit of a float tensor (an input, or an output read back), widened to f32. */
export function loadFn(b: WgslBinding, vw: VecWidth): string {
  const V = vecF32(vw);
  const head = `fn load_${b.name}(i: u32) -> ${V} {`;
  let body: string;
  switch (b.packing) {
    case 'f32':
      body = `return ${b.name}[i];`;
      break;
    case 'f16':
      body = `return ${V}(${b.name}[i]);`;
      break;
    case 'f16x2':
    case 'bf16x2': {
      const un = unpackFn(b.packing);
      if (vw === 4) body = `let w = ${b.name}[i];\n  return vec4<f32>(${un}(w.x), ${un}(w.y));`;
      else if (vw === 2) body = `return ${un}(${b.name}[i]);`;
      else if (b.atomic) body = `return ${un}(atomicLoad(&${b.name}[i >> 1u]))[i & 1u];`; // an output read back
      else body = `return ${un}(${b.name}[i >> 1u])[i & 1u];`;
      break;
    }
    case 'i8x4':
      throw new Error('int8 tensors are outputs only');
  }
  return `${head}\n  ${body}\n}`;
}

/** `fn store_<name>(i: u32, v: V)`: one unit of a float output, narrowed from f32. */
export function storeFn(b: WgslBinding, vw: VecWidth): string {
  const V = vecF32(vw);
  const head = `fn store_${b.name}(i: u32, v: ${V}) {`;
  let body: string;
  switch (b.packing) {
    case 'f32':
      body = `${b.name}[i] = v;`;
      break;
    case 'f16':
      body = `${b.name}[i] = ${vw === 1 ? 'f16' : `vec${vw}<f16>`}(v);`;
      break;
    case 'f16x2':
    case 'bf16x2': {
      const pk = packFn(b.packing);
      if (vw === 4) body = `${b.name}[i] = vec2<u32>(${pk}(v.xy), ${pk}(v.zw));`;
      else if (vw === 2) body = `${b.name}[i] = ${pk}(v);`;
      else body = `atomicOr(&${b.name}[i >> 1u], (${pk}(vec2<f32>(v, 0.0)) & 0xffffu) << ((i & 1u) * 16u));`;
      break;
    }
    case 'i8x4':
      throw new Error('use storeQFn for int8 outputs');
  }
  return `${head}\n  ${body}\n}`;
}

/**
 * `fn store_q(i: u32, v: V)`: v holds integers in [-128, 127] (already rounded and saturated);
 * packed four per word with shifts and masks (pack4xI8Clamp needs a language extension that not
 * every implementation has).
 */
export function storeQFn(b: WgslBinding, vw: VecWidth): string {
  const V = vecF32(vw);
  const byte = (e: string): string => `(u32(i32(${e})) & 0xffu)`;
  let body: string;
  if (vw === 4) {
    body = `${b.name}[i] = ${byte('v.x')} | (${byte('v.y')} << 8u) | (${byte('v.z')} << 16u) | (${byte('v.w')} << 24u);`;
  } else if (vw === 2) {
    // Unit i covers bytes 2i and 2i+1: the low or the high half of word i/2.
    body = `atomicOr(&${b.name}[i >> 1u], (${byte('v.x')} | (${byte('v.y')} << 8u)) << ((i & 1u) * 16u));`;
  } else {
    body = `atomicOr(&${b.name}[i >> 2u], ${byte('v')} << ((i & 3u) * 8u));`;
  }
  return `fn store_${b.name}(i: u32, v: ${V}) {\n  ${body}\n}`;
}

/**
 * `fn round_t(v: V) -> V`: round f32 values to the activation dtype T and widen them back
 * (the sum of PreNorm, y before quantization, the high_performance steps).
 */
export function roundFn(name: string, dtype: 'float32' | 'float16' | 'bfloat16', f16Native: boolean, vw: VecWidth): string {
  const V = vecF32(vw);
  let body: string;
  if (dtype === 'float32') body = 'return v;';
  else if (dtype === 'float16' && f16Native) body = `return ${V}(${vw === 1 ? 'f16' : `vec${vw}<f16>`}(v));`;
  else {
    const one =
      dtype === 'float16'
        ? (e: string) => `unpack2x16float(pack2x16float(vec2<f32>(${e}, 0.0))).x`
        : (e: string) => `bitcast<f32>(bf16_bits(${e}) << 16u)`;
    body = vw === 1 ? `return ${one('v')};` : `return ${V}(${['x', 'y', 'z', 'w'].slice(0, vw).map((c) => one(`v.${c}`)).join(', ')});`;
  }
  return `fn ${name}(v: ${V}) -> ${V} {\n  ${body}\n}`;
}

/** How a workgroup's rows reduce a per-thread partial to the row's total. */
export type ReductionLayout =
  /** One row per workgroup: subgroupAdd/Max, then one partial per subgroup through workgroup memory. */
  | { kind: 'subgroup'; workgroupSize: number }
  /** R rows of T threads: a tree in workgroup memory, one barrier per level. */
  | { kind: 'tree'; rows: number; threadsPerRow: number }
  /** One thread per row: nothing to reduce. */
  | { kind: 'none' };

/** Smallest subgroup size WGSL allows; sizes the array of per-subgroup partials. */
const MIN_SUBGROUP_SIZE = 4;
/** The tree stops at this many partials; each thread then adds them up (saves the last barriers). */
const TREE_FLAT = 8;

/**
 * `fn reduce_<op>(v: f32, ...) -> f32`: the row's sum (or max) of v, returned to every thread of
 * the row. Must be called from uniform control flow (it contains barriers), once per kernel
 * for each op (its workgroup array is not re-armed for a second call).
 * Returns the function text and the parameters its call needs.
 */
export function reductionFn(op: 'sum' | 'max', layout: ReductionLayout): { source: string; args: string } {
  const combine = op === 'sum' ? (a: string, b: string) => `${a} + ${b}` : (a: string, b: string) => `max(${a}, ${b})`;
  const name = `reduce_${op}`;
  const arr = `red_${op}`;
  if (layout.kind === 'none') {
    return { source: `fn ${name}(v: f32) -> f32 {\n  return v;\n}`, args: '' };
  }
  if (layout.kind === 'subgroup') {
    const slots = Math.max(1, layout.workgroupSize / MIN_SUBGROUP_SIZE);
    const sg = op === 'sum' ? 'subgroupAdd' : 'subgroupMax';
    // Subgroups of a 1-D workgroup are taken to be runs of consecutive invocations (as on every
    // Dawn backend), so lid / sg_size numbers them; the one-row layout is the only user.
    const source = `var<workgroup> ${arr}: array<f32, ${slots}>;
fn ${name}(v: f32, lid: u32, sg_lane: u32, sg_size: u32) -> f32 {
  let part = ${sg}(v);
  if (sg_lane == 0u) { ${arr}[lid / sg_size] = part; }
  workgroupBarrier();
  var total = ${arr}[0];
  for (var k = 1u; k < (${layout.workgroupSize}u + sg_size - 1u) / sg_size; k++) {
    total = ${combine('total', `${arr}[k]`)};
  }
  return total;
}`;
    return { source, args: ', lid, sg_lane, sg_size' };
  }
  const T = layout.threadsPerRow;
  const flat = Math.min(T, TREE_FLAT);
  // Tree levels until `flat` partials are left (none when T <= TREE_FLAT).
  const levels =
    T / 2 >= flat
      ? `
  for (var s = ${T / 2}u; s >= ${flat}u; s = s >> 1u) {
    if (t < s) { ${arr}[i] = ${combine(`${arr}[i]`, `${arr}[i + s]`)}; }
    workgroupBarrier();
  }`
      : '';
  const source = `var<workgroup> ${arr}: array<f32, ${layout.rows * T}>;
fn ${name}(v: f32, r: u32, t: u32) -> f32 {
  let i = r * ${T}u + t;
  ${arr}[i] = v;
  workgroupBarrier();${levels}
  var total = ${arr}[r * ${T}u];
  for (var k = 1u; k < ${flat}u; k++) {
    total = ${combine('total', `${arr}[r * ${T}u + k]`)};
  }
  return total;
}`;
  return { source, args: ', r, t' };
}
