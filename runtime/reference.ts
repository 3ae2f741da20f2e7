/**
 * CPU reference of every RMSNorm variant of SPEC section 2.
 *
 * The arithmetic mirrors the ONNX decomposition in compiler/op/decompose.ts step by step
 * (fp32 rounding after every op), so the two agree to the last fp32 bit except where
 * onnxruntime sums in another order. Decisions (shared with the decomposition):
 *
 * - Statistics are fp32: s*s is exact in double (24-bit mantissas), the row sum is accumulated
 *   in double and the mean rounded once to fp32 (more accurate than any fp32 summation order);
 *   then fp32 Add(eps), Sqrt, Reciprocal, each rounded, like Sqrt -> Reciprocal in the graph.
 * - sum = T(x + residual (+ bias)): the adds are fp32 ((x + residual) + bias), rounded to T once;
 *   the norm then reads that rounded sum, so y is Norm(sum) exactly as returned.
 * - high_performance: y = T( T(s*rstd) * T(gamma) ). The product of two fp16 (or bf16) values is
 *   exact in fp32, so one rounding of it equals an fp16 multiply. For fp16 x (the only dtype ATB
 *   allows) this is SPEC's fp16 formula; other T use T the same way (HF Llama casts to the input dtype).
 * - Quantization quantizes what the original graph feeds QuantizeLinear: the norm output rounded to
 *   T, plus beta, rounded to T again: v = T(T(y) + beta) (with beta absent v = T(y)). Then
 *   static: q = sat_int8(round_half_even(fp32(v / scale)) + offset);
 *   dynamic: scale_row = max(fp32(max|v| / 127), 2^-23), q = sat_int8(round_half_even(fp32(v / scale_row))).
 *   The 2^-23 floor makes an all-zero row give scale 2^-23 and q = 0 (the original graph divides 0/0).
 * - Dynamic quantization takes its per-row maximum over the normalized axes (H elements), i.e.
 *   the last axis for k = 1; scale has rstd's shape.
 * - gamma, beta, bias, scale, offset arrive as fp32 numbers already decoded from their dtypes
 *   (an fp32 gamma with fp16 x is used at fp32 precision, SPEC: "the math above converts them").
 */

import { type FloatDType, type RmsNormParam, hasResidual, isDynamicQuant, isStaticQuant } from '../compiler/op/param.js';
import { fround, roundHalfEven, roundTo, satInt8 } from './numeric.js';

export interface RefInputs {
  /** Activation, rows * H values already representable in xDType. */
  x: Float32Array;
  /** H values (normalized axes flattened). */
  gamma: Float32Array;
  residual?: Float32Array;
  bias?: Float32Array;
  beta?: Float32Array;
  /** Static quant scale (scalar). */
  scale?: number;
  /** Static quant zero point (int8 value); absent = 0. */
  offset?: number;
}

export interface RefOutputs {
  /** Norm result, values representable in xDType. */
  y?: Float32Array;
  q?: Int8Array;
  /** One fp32 per row. */
  rstd?: Float32Array;
  /** Dynamic quant scale, one fp32 per row. */
  scale?: Float32Array;
  /** x + residual (+ bias) in xDType. */
  sum?: Float32Array;
}

/** The smallest dynamic-quant scale (FLT_EPSILON, as vLLM): defines the all-zero row. */
export const DYNAMIC_SCALE_FLOOR = 2 ** -23;

function checkLen(name: string, a: Float32Array | undefined, n: number): void {
  if (a && a.length !== n) throw new Error(`reference: ${name} has ${a.length} elements, expected ${n}`);
}

/**
 * Per-row rstd in fp32: rstd = 1 / sqrt(mean(s*s) + eps), following the fp32 op sequence of the
 * decomposition (mean accumulated in double, see the file comment).
 */
export function rowRstd(s: ArrayLike<number>, offset: number, H: number, epsilon: number): number {
  let acc = 0;
  for (let i = 0; i < H; i++) {
    const v = s[offset + i]!;
    acc += v * v;
  }
  const mean = fround(acc / H);
  return fround(1 / fround(Math.sqrt(fround(mean + fround(epsilon)))));
}

export function rmsNormReference(param: RmsNormParam, xDType: FloatDType, H: number, inputs: RefInputs): RefOutputs {
  const { x, gamma } = inputs;
  if (!(H > 0) || x.length % H !== 0) throw new Error(`reference: x has ${x.length} elements, not a multiple of H = ${H}`);
  checkLen('gamma', gamma, H);
  checkLen('beta', inputs.beta, H);
  checkLen('bias', inputs.bias, H);
  const n = x.length;
  const rows = n / H;
  const T = (v: number): number => roundTo(xDType, v);
  const out: RefOutputs = {};

  // The row values the norm reads: x, or the residual sum rounded to T.
  let s: Float32Array = x;
  if (hasResidual(param)) {
    const res = inputs.residual;
    if (!res) throw new Error(`reference: ${param.layerType} needs a residual`);
    checkLen('residual', res, n);
    const bias = inputs.bias;
    s = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let v = fround(x[i]! + res[i]!);
      if (bias) v = fround(v + bias[i % H]!);
      s[i] = T(v);
    }
    if (param.layerType === 'PreNorm') out.sum = s;
  }

  const rstd = new Float32Array(rows);
  const y = new Float32Array(n);
  const hp = param.precisionMode === 'high_performance';
  const gemma = param.modelType === 'gemma';
  // The gamma factor as the decomposition forms it: fp32 (1 + gamma) for gemma, T(gamma) for high_performance.
  const g = new Float32Array(H);
  for (let j = 0; j < H; j++) g[j] = gemma ? fround(1 + gamma[j]!) : hp ? T(gamma[j]!) : gamma[j]!;

  for (let r = 0; r < rows; r++) {
    const o = r * H;
    const rs = rowRstd(s, o, H, param.epsilon);
    rstd[r] = rs;
    for (let j = 0; j < H; j++) {
      const nrm = fround(s[o + j]! * rs);
      // high_performance: normalized value rounded to T before the gamma multiply.
      y[o + j] = hp ? T(T(nrm) * g[j]!) : T(fround(nrm * g[j]!));
    }
  }

  if (param.rstd) out.rstd = rstd;

  if (param.quantType !== 'int8') {
    out.y = y;
    return out;
  }

  // v = T(T(y) + beta): y is already in T.
  const beta = inputs.beta;
  const v = beta ? new Float32Array(n) : y;
  if (beta) for (let i = 0; i < n; i++) v[i] = T(fround(y[i]! + beta[i % H]!));

  const q = new Int8Array(n);
  if (isStaticQuant(param)) {
    if (inputs.scale === undefined) throw new Error('reference: static quantization needs a scale');
    const scale = fround(inputs.scale);
    const zp = inputs.offset ?? 0;
    for (let i = 0; i < n; i++) q[i] = satInt8(roundHalfEven(fround(v[i]! / scale)) + zp);
    out.q = q;
    // PostNorm int8 static also returns the float norm result, unquantized.
    if (param.layerType === 'PostNorm') out.y = y;
  } else if (isDynamicQuant(param)) {
    const scales = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      const o = r * H;
      let m = 0;
      for (let j = 0; j < H; j++) m = Math.max(m, Math.abs(v[o + j]!));
      const sc = Math.max(fround(m / 127), DYNAMIC_SCALE_FLOOR);
      scales[r] = sc;
      for (let j = 0; j < H; j++) q[o + j] = satInt8(roundHalfEven(fround(v[o + j]! / sc)));
    }
    out.q = q;
    out.scale = scales;
  }
  return out;
}
