/**
 * Checking an Ascend kernel against the CPU reference: seeded random inputs in the kernel's
 * dtypes, decoding of its outputs, comparison within SPEC's tolerances (runtime/numeric.ts),
 * and the GM traffic figure of merit (bytes moved against SPEC's minimum).
 */
import type { DType, FloatDType } from '../../compiler/op/param.js';
import { isDynamicQuant } from '../../compiler/op/param.js';
import { DTYPE_BYTES, kernelParams, paramElements, type AscendKernelSpec, type KernelParam } from '../../codegen/ascendc/spec.js';
import { compareWithTolerance, fromBf16Bits, fromF16Bits, roundTo, toBf16Bits, toF16Bits, type CompareKind } from '../numeric.js';
import { rmsNormReference, type RefInputs, type RefOutputs } from '../reference.js';
import type { GmTraffic } from './harness.js';
import { rng } from '../random.js';

export { rng };

/** Little-endian bytes of values in a dtype (values already representable in it). */
export function encode(dtype: DType, values: ArrayLike<number>): Uint8Array {
  switch (dtype) {
    case 'float32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'float16':
      return new Uint8Array(toF16Bits(values).buffer);
    case 'bfloat16':
      return new Uint8Array(toBf16Bits(values).buffer);
    case 'int8':
      return new Uint8Array(Int8Array.from(values).buffer);
    case 'uint8':
      return Uint8Array.from(values);
    case 'int32':
      return new Uint8Array(Int32Array.from(values).buffer);
    case 'int64':
      return new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
  }
}

/** Values of little-endian bytes in a dtype. */
export function decode(dtype: DType, bytes: Uint8Array): Float32Array | Int8Array | Int32Array | Uint8Array {
  const copy = bytes.slice().buffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(copy);
    case 'float16':
      return fromF16Bits(new Uint16Array(copy));
    case 'bfloat16':
      return fromBf16Bits(new Uint16Array(copy));
    case 'int8':
      return new Int8Array(copy);
    case 'uint8':
      return new Uint8Array(copy);
    case 'int32':
      return new Int32Array(copy);
    case 'int64':
      return Int32Array.from(new BigInt64Array(copy), (v) => Number(v));
  }
}

const isFloat = (d: DType): d is FloatDType => d === 'float32' || d === 'float16' || d === 'bfloat16';

export interface CaseData {
  /** Device bytes of every input argument, by kernel argument name. */
  inputs: Record<string, Uint8Array>;
  /** The same values for the reference. */
  ref: RefInputs;
}

/**
 * n random values of a float dtype with magnitudes in [2^-8, 2^maxExp) (log-uniform, random
 * sign), as the values and their bytes. 16-bit values are drawn as bit patterns, so they are
 * exactly representable without a rounding pass.
 */
function randomFloats(dtype: FloatDType, n: number, maxExp: number, r: () => number): { values: Float32Array; bytes: Uint8Array } {
  if (dtype === 'float32') {
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = (r() < 0.5 ? -1 : 1) * 2 ** (Math.floor(r() * (maxExp + 8)) - 8) * (1 + r());
    return { values, bytes: new Uint8Array(values.buffer) };
  }
  const [bias, mBits] = dtype === 'float16' ? [15, 10] : [127, 7];
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const e = Math.floor(r() * (maxExp + 8)) - 8 + bias;
    bits[i] = ((r() < 0.5 ? 1 : 0) << 15) | (e << mBits) | Math.floor(r() * (1 << mBits));
  }
  return { values: dtype === 'float16' ? fromF16Bits(bits) : fromBf16Bits(bits), bytes: new Uint8Array(bits.buffer) };
}

/**
 * Random inputs for `rows` rows: activations up to 4 in magnitude, weights up to 2, a static
 * scale that sends part of the values into int8 saturation, offsets in [-8, 8]. For dynamic
 * quantization without beta, row 0 is all zeros (the 2^-23 scale floor).
 */
export function randomCase(spec: AscendKernelSpec, rows: number, seed = 1): CaseData {
  const r = rng(seed);
  const H = spec.H;
  const inputs: Record<string, Uint8Array> = {};
  const ref: Partial<RefInputs> = {};
  const zeroRow0 = isDynamicQuant(spec.param) && !spec.present.includes('beta') && rows > 1;
  for (const p of kernelParams(spec).filter((q) => q.direction === 'in')) {
    if (p.role === 'offset') {
      const v = Math.floor(r() * 17) - 8;
      inputs[p.name] = encode(p.dtype, [v]);
      ref.offset = v;
      continue;
    }
    if (!isFloat(p.dtype)) throw new Error(`random inputs: '${p.name}' has non-float dtype ${p.dtype}`);
    if (p.role === 'scale') {
      const v = roundTo(p.dtype, 1 / 40 + r() / 80);
      inputs[p.name] = encode(p.dtype, [v]);
      ref.scale = v;
      continue;
    }
    const { values, bytes } = randomFloats(p.dtype, paramElements(p, rows, H), p.extent === 'rows' ? 2 : 1, r);
    if (zeroRow0 && p.extent === 'rows') {
      values.fill(0, 0, H);
      bytes.fill(0, 0, H * DTYPE_BYTES[p.dtype]);
    }
    inputs[p.name] = bytes;
    (ref as Record<string, unknown>)[p.role] = values;
  }
  return { inputs, ref: ref as RefInputs };
}

export interface OutputCheck {
  name: string;
  ok: boolean;
  message: string;
}

const REF_KEY: Record<string, keyof RefOutputs> = { y: 'y', q: 'q', rstd: 'rstd', scaleOut: 'scale', sum: 'sum' };

function compareKind(p: KernelParam, xDType: FloatDType): CompareKind {
  if (p.name === 'q') return 'int8';
  if (p.name === 'scaleOut') return 'scale';
  if (p.name === 'rstd') return 'float32';
  return xDType;
}

/** Compares every output of a launch with the reference, within SPEC's tolerances. */
export function checkOutputs(spec: AscendKernelSpec, ref: RefInputs, outputs: Record<string, Uint8Array>): OutputCheck[] {
  const expected = rmsNormReference(spec.param, spec.xDType, spec.H, ref);
  return kernelParams(spec)
    .filter((p) => p.direction === 'out')
    .map((p) => {
      const want = expected[REF_KEY[p.name]!];
      const got = outputs[p.name];
      if (!want) return { name: p.name, ok: false, message: `${p.name}: the reference has no such output` };
      if (!got) return { name: p.name, ok: false, message: `${p.name}: missing from the kernel's outputs` };
      const r = compareWithTolerance(decode(p.dtype, got), want, compareKind(p, spec.xDType), { label: p.name });
      return { name: p.name, ok: r.ok, message: r.message };
    });
}

/**
 * SPEC's minimal GM traffic of a launch (KERNELS.md bytes table plus the unavoidable extras):
 * every activation read once and every output written once, the per-H tensors (gamma, beta,
 * bias) and the static scale and offset once per core, the per-row outputs once per row.
 */
export function minimumGmBytes(spec: AscendKernelSpec, rows: number, blockDim: number): number {
  let total = 0;
  for (const p of kernelParams(spec)) {
    const once = paramElements(p, rows, spec.H) * DTYPE_BYTES[p.dtype];
    total += p.extent === 'vector' || p.extent === 'scalar' ? once * blockDim : once;
  }
  return total;
}

export interface TrafficFigure {
  /** GM bytes the kernel moved. */
  measured: number;
  minimum: number;
  /** measured / minimum: 1.00 is the memory-bound optimum. */
  ratio: number;
  /** Both per element of x (rows * H). */
  measuredPerElement: number;
  minimumPerElement: number;
}

export function trafficFigure(spec: AscendKernelSpec, rows: number, blockDim: number, gm: GmTraffic[]): TrafficFigure {
  const measured = gm.reduce((s, g) => s + g.read + g.written, 0);
  const minimum = minimumGmBytes(spec, rows, blockDim);
  const elems = Math.max(1, rows * spec.H);
  return { measured, minimum, ratio: measured / minimum, measuredPerElement: measured / elems, minimumPerElement: minimum / elems };
}
