/**
 * Number formats and comparisons shared by the CPU reference, the launchers and the tests.
 *
 * - fp16 / bf16 encode and decode with round-to-nearest-even (IEEE default; what ONNX Cast,
 *   WGSL `f16()` and Ascend CAST_RINT do).
 * - `compareWithTolerance` implements SPEC section 2's tolerances (ATB's golden tests).
 *
 * Encoding rounds the *exact* double value once, straight to the target format. For inputs
 * that are already fp32 values (everything the reference produces) this equals an fp32 -> fp16
 * conversion; for arbitrary doubles it avoids the double rounding a detour through fp32 would add.
 */

import type { FloatDType } from '../compiler/op/param.js';

export const fround = Math.fround;

/** Round to the nearest integer, ties to even (ONNX Round / QuantizeLinear, WGSL `round`). */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const d = x - f; // exact: x and f are within one binade-ish of each other for |x| < 2^52
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Saturate to int8. NaN becomes 0 (no ONNX-defined result; 0 keeps outputs deterministic). */
export function satInt8(x: number): number {
  if (Number.isNaN(x)) return 0;
  return x < -128 ? -128 : x > 127 ? 127 : x;
}

// ---------------------------------------------------------------------------------------------
// Generic binary16-like formats: sign, eBits exponent bits (bias 2^(eBits-1)-1), mBits mantissa bits.

interface Format {
  eBits: number;
  mBits: number;
  bias: number;
  /** Smallest normal value, 2^(1-bias). */
  minNormal: number;
  /** Values with |x| >= this round to infinity (midpoint between max finite and 2^(emax+1)). */
  overflow: number;
}

function format(eBits: number, mBits: number): Format {
  const bias = 2 ** (eBits - 1) - 1;
  const emax = bias; // largest unbiased exponent of a finite value
  return {
    eBits,
    mBits,
    bias,
    minNormal: 2 ** (1 - bias),
    overflow: (2 - 2 ** -(mBits + 1)) * 2 ** emax,
  };
}

const F16 = format(5, 10);
const BF16 = format(8, 7);

function encode(f: Format, x: number): number {
  const signBit = 1 << (f.eBits + f.mBits);
  const expAllOnes = ((1 << f.eBits) - 1) << f.mBits;
  if (Number.isNaN(x)) return expAllOnes | (1 << (f.mBits - 1)); // canonical quiet NaN
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  if (a >= f.overflow) return sign | expAllOnes; // includes Infinity
  if (a < f.minNormal) {
    // Subnormal: units of 2^(1-bias-mBits). Scaling by a power of two is exact in double.
    // A result of 2^mBits lands exactly on the smallest normal's encoding, which is correct.
    return sign | roundHalfEven(a * 2 ** (f.bias - 1 + f.mBits));
  }
  let e = Math.floor(Math.log2(a));
  // log2 may be off by one next to powers of two; fix it so 2^e <= a < 2^(e+1).
  if (2 ** e > a) e -= 1;
  else if (2 ** (e + 1) <= a) e += 1;
  let m = roundHalfEven(a * 2 ** (f.mBits - e)); // in [2^mBits, 2^(mBits+1)]
  if (m === 2 ** (f.mBits + 1)) {
    m /= 2;
    e += 1;
  }
  // e + bias < 2^eBits - 1 is guaranteed by the overflow check above.
  return sign | ((e + f.bias) << f.mBits) | (m - 2 ** f.mBits);
}

function decode(f: Format, b: number): number {
  const sign = (b >> (f.eBits + f.mBits)) & 1 ? -1 : 1;
  const e = (b >> f.mBits) & ((1 << f.eBits) - 1);
  const m = b & ((1 << f.mBits) - 1);
  if (e === (1 << f.eBits) - 1) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** (1 - f.bias - f.mBits);
  return sign * (2 ** f.mBits + m) * 2 ** (e - f.bias - f.mBits);
}

export const f32ToF16Bits = (x: number): number => encode(F16, x);
export const f16BitsToF32 = (b: number): number => decode(F16, b & 0xffff);
export const f32ToBf16Bits = (x: number): number => encode(BF16, x);
export const bf16BitsToF32 = (b: number): number => decode(BF16, b & 0xffff);

export function toF16Bits(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToF16Bits(a[i]!);
  return out;
}
export function fromF16Bits(a: ArrayLike<number>): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f16BitsToF32(a[i]!);
  return out;
}
export function toBf16Bits(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToBf16Bits(a[i]!);
  return out;
}
export function fromBf16Bits(a: ArrayLike<number>): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = bf16BitsToF32(a[i]!);
  return out;
}

/** Round a value to the nearest value dtype can hold (RNE); the result is a JS number. */
export function roundTo(dtype: FloatDType, x: number): number {
  switch (dtype) {
    case 'float32':
      return Math.fround(x);
    case 'float16':
      return decode(F16, encode(F16, x));
    case 'bfloat16':
      return decode(BF16, encode(BF16, x));
  }
}

/** Round every element to dtype, in place; returns the array. */
export function roundArrayTo(dtype: FloatDType, a: Float32Array): Float32Array {
  if (dtype === 'float32') return a; // a Float32Array already holds fp32 values
  for (let i = 0; i < a.length; i++) a[i] = roundTo(dtype, a[i]!);
  return a;
}

// ---------------------------------------------------------------------------------------------
// Tolerances (SPEC section 2)

/**
 * What is being compared: a float output in its dtype, int8 quantized output, or the
 * per-row scale of dynamic quantization.
 */
export type CompareKind = FloatDType | 'int8' | 'scale';

export interface CompareResult {
  ok: boolean;
  /** Largest error seen (relative for floats and scale, absolute for int8) and where. */
  worst: { index: number; error: number; actual: number; expected: number };
  /** Elements over the per-element tolerance. */
  badCount: number;
  message: string;
}

/** Relative tolerance per float kind (an element is bad when its relative error is above it). */
export const REL_TOL: Record<FloatDType | 'scale', number> = {
  float32: 1e-3,
  float16: 1e-3,
  bfloat16: 2 ** -7,
  scale: 2 ** -8,
};

/**
 * Denominator floor of the relative error: the smallest normal of the dtype. Below it a format
 * has fewer significant bits, so one rounding step is a larger relative change; with this floor a
 * difference of one subnormal ulp counts as 2^-23 (fp32), 2^-10 (fp16) or 2^-7 (bf16), all within
 * tolerance, while any larger discrepancy near zero still counts as an error.
 */
export const REL_FLOOR: Record<FloatDType | 'scale', number> = {
  float32: 2 ** -126,
  float16: 2 ** -14,
  bfloat16: 2 ** -126,
  scale: 2 ** -126,
};

/** Fraction of elements that may be over tolerance for float outputs ("fewer than 0.1%"). */
export const FLOAT_BAD_FRACTION = 1e-3;

export interface CompareOptions {
  /** Override REL_FLOOR for this comparison. */
  absFloor?: number;
  /** Name printed in the message. */
  label?: string;
}

/**
 * Compare actual against expected per SPEC:
 * - int8: every |a - e| <= 1;
 * - fp32/fp16/bf16: relative error |a - e| / max(|e|, floor) over REL_TOL counts as bad, and
 *   the output passes when badCount < 0.1% of the elements (so small tensors must be all good);
 * - scale: every relative error <= 2^-8.
 * NaN matches NaN, an infinity matches only itself.
 */
export function compareWithTolerance(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  kind: CompareKind,
  opts: CompareOptions = {},
): CompareResult {
  const label = opts.label ? `${opts.label}: ` : '';
  const worst = { index: -1, error: 0, actual: NaN, expected: NaN };
  if (actual.length !== expected.length) {
    return { ok: false, worst, badCount: Math.max(actual.length, expected.length), message: `${label}length ${actual.length} != expected ${expected.length}` };
  }
  const n = expected.length;
  const tol = kind === 'int8' ? 1 : REL_TOL[kind];
  const floor = kind === 'int8' ? 0 : (opts.absFloor ?? REL_FLOOR[kind]);
  let badCount = 0;
  const firstBad: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    let err: number;
    if (Number.isNaN(a) || Number.isNaN(e)) err = Number.isNaN(a) && Number.isNaN(e) ? 0 : Infinity;
    else if (a === e) err = 0; // also equal infinities
    else if (!Number.isFinite(a) || !Number.isFinite(e)) err = Infinity;
    else if (kind === 'int8') err = Math.abs(a - e);
    else err = Math.abs(a - e) / Math.max(Math.abs(e), floor);
    if (err > worst.error || (worst.index < 0 && i === 0)) {
      worst.index = i;
      worst.error = err;
      worst.actual = a;
      worst.expected = e;
    }
    if (err > tol) {
      badCount++;
      if (firstBad.length < 5) firstBad.push(`[${i}] ${a} vs ${e} (err ${err.toPrecision(3)})`);
    }
  }
  const allowed = kind === 'int8' || kind === 'scale' ? 0 : FLOAT_BAD_FRACTION * n;
  // "fewer than 0.1%": badCount must be strictly below the allowance, except that none bad always passes.
  const ok = badCount === 0 || badCount < allowed;
  const what = kind === 'int8' ? '|diff| > 1' : `rel err > ${tol}`;
  const message = ok
    ? `${label}ok (${kind}, ${n} elements, ${badCount} ${what}, worst ${worst.error.toPrecision(3)} at ${worst.index})`
    : `${label}${badCount}/${n} elements ${what} (${kind}; allowed ${kind === 'int8' || kind === 'scale' ? 0 : `< ${allowed}`}); ` +
      `worst ${worst.error.toPrecision(3)} at [${worst.index}] ${worst.actual} vs ${worst.expected}; first: ${firstBad.join(', ')}`;
  return { ok, worst, badCount, message };
}
