/**
 * The CPU reference (runtime/reference.ts) against onnxruntime-node running the reference
 * decomposition (compiler/op/decompose.ts) as a model-local function called by one fused node,
 * for every variant of SPEC section 2 in fp32 and fp16, at opset 13 (axes as attributes), 18
 * (axes as inputs) and 21 (QuantizeLinear with its newer type rules).
 *
 * Tolerances (SPEC section 2, ATB's golden tests), via compareWithTolerance:
 *   int8 q: |diff| <= 1 everywhere;
 *   y, sum (fp32/fp16) and rstd (fp32): fewer than 0.1% of elements over 1e-3 relative error;
 *   dynamic scale: relative error <= 2^-8 everywhere.
 * Both sides do the same fp32 steps, so in practice they differ only where onnxruntime sums
 * the squares in another order (an ulp of rstd); the test also checks most values match exactly,
 * so a systematic difference within tolerance would still be noticed.
 */
import { expect } from 'chai';
import * as ort from 'onnxruntime-node';
import type { DecomposeIO } from '../../compiler/op/decompose.js';
import { type FloatDType, type InputRole, type RmsNormParam, defaultParam, signature } from '../../compiler/op/param.js';
import { compareWithTolerance, roundTo } from '../../runtime/numeric.js';
import { type RefInputs, type RefOutputs, rmsNormReference } from '../../runtime/reference.js';
import { rng } from '../../runtime/random.js';
import { type CaseShape, type Feeds, type OrtCase, buildModel, runOrt } from './ortModel.js';


/** Per-row magnitudes: ordinary, tiny (eps matters), large, and an all-zero row. */
const ROW_SCALES = [1, 1e-3, 40, 0, 0.2, 7, 1e-2];

function randomInputs(c: OrtCase, seed: number): { ref: RefInputs; feeds: Feeds } {
  const r = rng(seed);
  const { io, param, shape } = c;
  const n = shape.xShape.reduce((a, b) => a * b, 1);
  const H = shape.xShape.slice(shape.xShape.length - shape.k).reduce((a, b) => a * b, 1);
  const rows = n / H;
  const sig = signature(param);
  const round = (dt: FloatDType) => (v: number) => roundTo(dt, v);
  const act = (dt: FloatDType): Float32Array => {
    const a = new Float32Array(n);
    for (let row = 0; row < rows; row++) {
      const s = ROW_SCALES[row % ROW_SCALES.length]!;
      for (let j = 0; j < H; j++) a[row * H + j] = round(dt)((r() * 2 - 1) * s);
    }
    return a;
  };
  const vec = (dt: FloatDType, lo: number, hi: number): Float32Array => Float32Array.from({ length: H }, () => round(dt)(lo + (hi - lo) * r()));

  const ref: RefInputs = {
    x: act(io.xDType),
    gamma: param.modelType === 'gemma' ? vec(io.gammaDType, -0.5, 0.5) : vec(io.gammaDType, -1.5, 1.5),
  };
  const has = (role: InputRole) => sig.inputs.includes(role) && (!sig.optional.includes(role) || io.present.has(role));
  if (has('residual')) ref.residual = act(io.xDType);
  if (has('bias')) ref.bias = vec(io.biasDType ?? io.xDType, -0.5, 0.5);
  if (has('beta')) ref.beta = vec(io.betaDType ?? io.xDType, -0.1, 0.1);
  // A scale that maps |v| ~ 1.27 to 127: the large rows saturate, the tiny ones quantize to ~0.
  if (has('scale')) ref.scale = roundTo(io.scaleDType ?? 'float32', 0.01);
  if (has('offset')) ref.offset = -5;
  const feeds: Feeds = { x: ref.x, gamma: ref.gamma };
  for (const role of ['residual', 'bias', 'beta', 'scale', 'offset'] as const) {
    const v = ref[role];
    if (v !== undefined) feeds[role] = v;
  }
  return { ref, feeds };
}

interface VariantSpec {
  label: string;
  param: RmsNormParam;
  present: InputRole[];
  gammaDType?: FloatDType;
  betaDType?: FloatDType;
  biasDType?: FloatDType;
  scaleDType?: FloatDType;
  shape?: CaseShape;
}

function p(layer: RmsNormParam['layerType'], over: Partial<RmsNormParam> = {}): RmsNormParam {
  return { ...defaultParam(layer, 1e-5), ...over };
}
const stat = { quantType: 'int8', dynamicQuant: 'none' } as const;
const dyn = { quantType: 'int8', dynamicQuant: 'symmetric' } as const;

const VARIANTS: VariantSpec[] = [
  { label: 'Norm', param: p('Norm'), present: [] },
  { label: 'Norm gemma', param: p('Norm', { modelType: 'gemma' }), present: [] },
  { label: 'Norm high_performance', param: p('Norm', { precisionMode: 'high_performance' }), present: [] },
  { label: 'Norm rstd', param: p('Norm', { rstd: true, epsilon: 1e-6 }), present: [] },
  { label: 'Norm int8 static, beta + offset', param: p('Norm', stat), present: ['beta', 'offset'] },
  { label: 'Norm int8 static, no beta/offset', param: p('Norm', stat), present: [] },
  { label: 'Norm int8 static, offset only (beta written as "")', param: p('Norm', stat), present: ['offset'] },
  { label: 'Norm int8 dynamic, beta', param: p('Norm', dyn), present: ['beta'] },
  { label: 'Norm int8 dynamic, no beta', param: p('Norm', dyn), present: [] },
  { label: 'PreNorm', param: p('PreNorm'), present: [] },
  { label: 'PreNorm bias', param: p('PreNorm', { hasBias: true }), present: ['bias'] },
  { label: 'PreNorm high_performance', param: p('PreNorm', { precisionMode: 'high_performance' }), present: [] },
  { label: 'PreNorm gemma', param: p('PreNorm', { modelType: 'gemma' }), present: [] },
  { label: 'PreNorm int8 static', param: p('PreNorm', stat), present: ['beta', 'offset'] },
  { label: 'PreNorm int8 static, no beta/offset', param: p('PreNorm', stat), present: [] },
  { label: 'PostNorm', param: p('PostNorm', { epsilon: 1e-6 }), present: [] },
  { label: 'PostNorm bias', param: p('PostNorm', { hasBias: true }), present: ['bias'] },
  { label: 'PostNorm int8 static', param: p('PostNorm', stat), present: ['offset'] },
  { label: 'PostNorm int8 static, no offset', param: p('PostNorm', stat), present: [] },
  { label: 'PreNorm int8 dynamic', param: p('PreNorm', dyn), present: ['beta'] },
  { label: 'PreNorm int8 dynamic, no beta', param: p('PreNorm', dyn), present: [] },
  { label: 'PostNorm int8 dynamic', param: p('PostNorm', dyn), present: ['beta'] },
  { label: 'PostNorm int8 dynamic, no beta', param: p('PostNorm', dyn), present: [] },
  // k = 2 normalized axes (gamma of rank 2)
  { label: 'Norm rstd, k=2', param: p('Norm', { rstd: true }), present: [], shape: { xShape: [2, 7, 4, 16], k: 2 } },
  { label: 'PreNorm int8 dynamic, k=2', param: p('PreNorm', dyn), present: ['beta'], shape: { xShape: [7, 4, 16], k: 2 } },
];

/** fp16 activations with fp32 weights (gamma, beta, bias, QDQ scale), and an fp16 scale. */
const MIXED: VariantSpec[] = [
  { label: 'Norm, fp32 gamma', param: p('Norm'), present: [], gammaDType: 'float32' },
  { label: 'Norm high_performance, fp32 gamma', param: p('Norm', { precisionMode: 'high_performance' }), present: [], gammaDType: 'float32' },
  { label: 'PreNorm bias, fp32 gamma and bias', param: p('PreNorm', { hasBias: true }), present: ['bias'], gammaDType: 'float32', biasDType: 'float32' },
  { label: 'Norm int8 static, fp32 gamma/beta, fp16 scale', param: p('Norm', stat), present: ['beta', 'offset'], gammaDType: 'float32', betaDType: 'float32', scaleDType: 'float16' },
  { label: 'PostNorm int8 dynamic, fp32 gamma/beta', param: p('PostNorm', dyn), present: ['beta'], gammaDType: 'float32', betaDType: 'float32' },
];

const DEFAULT_SHAPE: CaseShape = { xShape: [3, 7, 64], k: 1 };

function makeCase(v: VariantSpec, xDType: FloatDType, opset: number): OrtCase {
  const io: DecomposeIO = {
    xDType,
    gammaDType: v.gammaDType ?? xDType,
    present: new Set(v.present),
    normalizedAxes: (v.shape ?? DEFAULT_SHAPE).k,
    opset,
    ...(v.betaDType ? { betaDType: v.betaDType } : {}),
    ...(v.biasDType ? { biasDType: v.biasDType } : {}),
    ...(v.scaleDType ? { scaleDType: v.scaleDType } : {}),
  };
  return { param: v.param, io, shape: v.shape ?? DEFAULT_SHAPE };
}

function hOf(s: CaseShape): number {
  return s.xShape.slice(s.xShape.length - s.k).reduce((a, b) => a * b, 1);
}

/** Compare every output per SPEC's tolerances; returns the messages of failed ones. */
function compareOutputs(c: OrtCase, got: Record<string, Float32Array | Int8Array>, want: RefOutputs): string[] {
  const fails: string[] = [];
  for (const o of signature(c.param).outputs) {
    const a = got[o];
    const e = want[o];
    if (!a || !e) {
      fails.push(`${o}: missing (${a ? 'reference' : 'onnxruntime'})`);
      continue;
    }
    const kind = o === 'q' ? 'int8' : o === 'scale' ? 'scale' : o === 'rstd' ? 'float32' : c.io.xDType;
    const r = compareWithTolerance(a, e, kind, { label: o });
    if (!r.ok) fails.push(r.message);
  }
  return fails;
}

const MANT_BITS: Record<FloatDType, number> = { float32: 23, float16: 10, bfloat16: 7 };
const MIN_EXP: Record<FloatDType, number> = { float32: -126, float16: -14, bfloat16: -126 };

/** Largest |a - e| in units of dtype's ulp at e (the ulp of the smallest normal below it). */
function maxUlpDiff(a: ArrayLike<number>, e: ArrayLike<number>, dtype: FloatDType): number {
  let worst = 0;
  for (let i = 0; i < e.length; i++) {
    const ev = e[i]!;
    const exp = Math.max(ev === 0 ? MIN_EXP[dtype] : Math.floor(Math.log2(Math.abs(ev))), MIN_EXP[dtype]);
    worst = Math.max(worst, Math.abs(a[i]! - ev) / 2 ** (exp - MANT_BITS[dtype]));
  }
  return worst;
}

describe('reference vs onnxruntime running the decomposition', function () {
  this.timeout(120000);

  for (const xDType of ['float32', 'float16'] as const) {
    for (const opset of [13, 18, 21]) {
      const variants = xDType === 'float16' ? [...VARIANTS, ...MIXED] : VARIANTS;
      for (const [vi, v] of variants.entries()) {
        it(`${v.label} [${xDType}, opset ${opset}]`, async () => {
          const c = makeCase(v, xDType, opset);
          const session = await ort.InferenceSession.create(buildModel(c));
          const H = hOf(c.shape);
          for (let trial = 0; trial < 2; trial++) {
            const { ref, feeds } = randomInputs(c, 1000 * vi + 17 * opset + trial + (xDType === 'float16' ? 7 : 0));
            const want = rmsNormReference(c.param, xDType, H, ref);
            const { out, dims } = await runOrt(session, c, feeds);
            const fails = compareOutputs(c, out as Record<string, Float32Array | Int8Array>, want);
            expect(fails, fails.join('\n')).to.deep.equal([]);

            // Same fp32 steps on both sides, so far tighter than SPEC's tolerance: onnxruntime only
            // sums the squares in another order (fp32, vectorized), which moves rstd by a few fp32
            // ulps, fp32 y by a few more, and fp16 y by at most a rounding step or two of T (the
            // dynamic scale follows max|v|, in T). 8 fp32 ulps is a relative 2^-20.
            for (const o of ['y', 'sum', 'rstd', 'scale'] as const) {
              if (!want[o]) continue;
              const dt = o === 'rstd' ? 'float32' : xDType;
              const ulps = maxUlpDiff(out[o]!, want[o]!, dt);
              expect(ulps, `${o}: ${ulps} ulps of ${dt} apart`).to.be.at.most(dt === 'float32' ? 8 : 2);
            }
            if (want.sum) expect(Array.from(out.sum!)).to.deep.equal(Array.from(want.sum), 'sum is the same fp32 adds: bit-exact');

            // Per-row outputs keep the normalized axes as 1.
            const rowShape = c.shape.xShape.map((d, i) => (i >= c.shape.xShape.length - c.shape.k ? 1 : d));
            for (const o of ['rstd', 'scale'] as const) if (dims[o]) expect(dims[o]).to.deep.equal(rowShape);
            if (dims.q) expect(dims.q).to.deep.equal(c.shape.xShape);

            // The inputs exercise what they should: int8 saturation, the all-zero row.
            if (want.q && c.param.dynamicQuant === 'none') {
              expect(Array.from(want.q).some((q) => q === 127 || q === -128), 'static quant saturates somewhere').to.equal(true);
            }
            if (want.scale && !ref.beta) {
              // row 3 is all zero (x and residual): scale is the 2^-23 floor and q is 0
              expect(want.scale[3]).to.equal(2 ** -23);
              expect(Array.from(out.q!.subarray(3 * H, 4 * H)).every((q) => q === 0)).to.equal(true);
            }
          }
        });
      }
    }
  }

  it('the comparison catches a wrong variant (gemma reference vs llama decomposition)', async () => {
    const c = makeCase({ label: 'Norm', param: p('Norm'), present: [] }, 'float16', 18);
    const session = await ort.InferenceSession.create(buildModel(c));
    const { ref, feeds } = randomInputs(c, 99);
    const wrong = rmsNormReference({ ...c.param, modelType: 'gemma' }, 'float16', hOf(c.shape), ref);
    const { out } = await runOrt(session, c, feeds);
    expect(compareOutputs(c, out as Record<string, Float32Array | Int8Array>, wrong)).to.have.length(1);
  });

  it('the comparison catches a dynamic scale off by 1%', async () => {
    const c = makeCase({ label: 'dyn', param: p('Norm', dyn), present: [] }, 'float32', 18);
    const session = await ort.InferenceSession.create(buildModel(c));
    const { ref, feeds } = randomInputs(c, 5);
    const want = rmsNormReference(c.param, 'float32', hOf(c.shape), ref);
    const { out } = await runOrt(session, c, feeds);
    want.scale![0] = want.scale![0]! * 1.01;
    const fails = compareOutputs(c, out as Record<string, Float32Array | Int8Array>, want);
    expect(fails.join('\n')).to.match(/^scale:/);
  });
});
