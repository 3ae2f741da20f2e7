/**
 * Builders for the RMSNorm spellings real exporters produce (SPEC section 4), one option per
 * degree of freedom, so tests can enumerate them.
 */
import { DT, type Dims, type ElemType, GraphBuilder, randomValues } from '../helpers/graph.js';

export interface NormSpelling {
  /** Activation dtype T (default float32). */
  dtype?: 'float32' | 'float16';
  /** fp16: compute statistics in fp32 with Casts around (default true), or everything in fp16. */
  castToF32?: boolean;
  /** fp16 with casts: Cast back to fp16 before the gamma Mul (HF Llama, high_performance) or after it. */
  castBack?: 'beforeGamma' | 'afterGamma';
  square?: 'pow' | 'mul' | 'powCastConst' | 'powInit';
  /** sumSquare*: ReduceSumSquare of x itself (no square node; `square` is ignored). */
  mean?: 'reduceMean' | 'keep0Unsqueeze' | 'keep0Reshape' | 'keep0UnsqueezeLate' | 'sumMulInvH' | 'sumDivH' | 'sumSquareMulInvH' | 'sumSquareDivH';
  eps?: number;
  epsSource?: 'constant' | 'init' | 'constantF16';
  epsSide?: 'right' | 'left';
  rsqrt?: 'reciprocal' | 'div1' | 'divX' | 'powHalf';
  /** Mul(x, rstd) operand order. */
  normOrder?: 'x-first' | 'rstd-first';
  gamma?: 'right' | 'left' | 'none' | 'gemma' | 'gemmaLeft' | 'rank3';
  /** fp32 -> fp32 Casts sprinkled into the site. */
  noopCasts?: boolean;
  /** Normalized dims (default [64]); k = length. */
  normDims?: number[];
  /** gamma stored as fp32 in an fp16 model (high_precision) */
  gammaDType?: 'float32' | 'float16';
}

export interface Built {
  g: GraphBuilder;
  x: string;
  y: string;
}

/** A seed from a name, so gamma values do not depend on the order tests run in. */
const seedOf = (name: string): number => [...name].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 7);

/** Appends an RMSNorm over `x` (dtype from spelling) to g; returns y. */
export function rmsNorm(g: GraphBuilder, x: string, s: NormSpelling = {}): string {
  const T = s.dtype ?? 'float32';
  const normDims = s.normDims ?? [64];
  const k = normDims.length;
  const axes = Array.from({ length: k }, (_, i) => i - k);
  const H = normDims.reduce((a, b) => a * b, 1);
  const fp16Casts = T === 'float16' && (s.castToF32 ?? true);
  const C: ElemType = fp16Casts ? 'float32' : T;
  const noop = (v: string): string => (s.noopCasts && C === 'float32' ? g.op('Cast', [v], { to: DT.float32 }) : v);
  const scalar = (v: number, kind: 'constant' | 'init' | 'constantF16' = 'constant'): string => {
    if (kind === 'init') return g.scalar(v, C, 'c');
    if (kind === 'constantF16') return g.op('Cast', [g.constant(v, 'float16')], { to: DT[C] });
    return g.constant(v, C);
  };

  const xc = fp16Casts ? g.op('Cast', [x], { to: DT.float32 }) : noop(x);
  let sq = '';
  const sumSquare = s.mean === 'sumSquareMulInvH' || s.mean === 'sumSquareDivH';
  if (!sumSquare) switch (s.square ?? 'pow') {
    case 'pow': sq = g.op('Pow', [xc, scalar(2)]); break;
    case 'powInit': sq = g.op('Pow', [xc, g.scalar(2, C, 'two')]); break;
    case 'powCastConst': sq = g.op('Pow', [xc, g.op('Cast', [g.constant(2, 'int64')], { to: DT[C] })]); break;
    case 'mul': sq = g.op('Mul', [xc, xc]); break;
  }
  let ms: string;
  switch (s.mean ?? 'reduceMean') {
    case 'reduceMean': ms = g.reduce('ReduceMean', sq, axes, 1); break;
    case 'keep0Unsqueeze': ms = g.op('Unsqueeze', [g.reduce('ReduceMean', sq, axes, 0), g.init('axes', 'int64', [k], axes)]); break;
    case 'keep0UnsqueezeLate': ms = g.reduce('ReduceMean', sq, axes, 0); break;
    case 'keep0Reshape': {
      // Reshape target [0, 0, 1]: copy the leading dims, 1 for the reduced axis (needs rank 3, k = 1).
      ms = g.op('Reshape', [g.reduce('ReduceMean', sq, axes, 0), g.init('shape', 'int64', [3], [0, 0, 1])]);
      break;
    }
    case 'sumMulInvH': ms = g.op('Mul', [g.reduce('ReduceSum', sq, axes, 1), scalar(1 / H)]); break;
    case 'sumDivH': ms = g.op('Div', [g.reduce('ReduceSum', sq, axes, 1), scalar(H)]); break;
    case 'sumSquareMulInvH': ms = g.op('Mul', [g.reduce('ReduceSumSquare', xc, axes, 1), scalar(1 / H)]); break;
    case 'sumSquareDivH': ms = g.op('Div', [g.reduce('ReduceSumSquare', xc, axes, 1), scalar(H)]); break;
  }
  ms = noop(ms);
  const epsV = scalar(s.eps ?? 1e-6, s.epsSource ?? 'constant');
  const v = s.epsSide === 'left' ? g.op('Add', [epsV, ms]) : g.op('Add', [ms, epsV]);
  let n: string;
  const late = s.mean === 'keep0UnsqueezeLate';
  const restore = (t: string): string => (late ? g.op('Unsqueeze', [t, g.init('axes', 'int64', [k], axes)]) : t);
  const mulNorm = (r: string): string => (s.normOrder === 'rstd-first' ? g.op('Mul', [r, xc]) : g.op('Mul', [xc, r]));
  switch (s.rsqrt ?? 'reciprocal') {
    case 'reciprocal': n = mulNorm(restore(noop(g.op('Reciprocal', [g.op('Sqrt', [v])])))); break;
    case 'div1': n = mulNorm(restore(g.op('Div', [scalar(1), g.op('Sqrt', [v])]))); break;
    case 'divX': n = g.op('Div', [xc, restore(g.op('Sqrt', [v]))]); break;
    case 'powHalf': n = mulNorm(restore(g.op('Pow', [v, scalar(-0.5)]))); break;
  }

  const gamma = s.gamma ?? 'right';
  const gDType: ElemType = s.gammaDType ?? (fp16Casts && s.castBack === 'afterGamma' ? 'float32' : T);
  const gammaVals = randomValues(H, seedOf(`${x}/${s.gamma ?? ''}`), -2, 2);
  const back = (t: string): string => (fp16Casts ? g.op('Cast', [t], { to: DT.float16 }) : noop(t));
  if (gamma === 'none') return back(n);
  const dims = gamma === 'rank3' ? [1, 1, ...normDims] : normDims;
  let w = g.init('weight', gDType, dims, gammaVals);
  const castBack = s.castBack ?? 'beforeGamma';
  let lhs = n;
  if (fp16Casts && castBack === 'beforeGamma') lhs = g.op('Cast', [n], { to: DT.float16 });
  const mulDType: ElemType = fp16Casts && castBack === 'afterGamma' ? 'float32' : T;
  if (gDType !== mulDType) w = g.op('Cast', [w], { to: DT[mulDType] });
  if (gamma === 'gemma' || gamma === 'gemmaLeft') {
    const one = g.constant(1, mulDType);
    w = gamma === 'gemma' ? g.op('Add', [w, one]) : g.op('Add', [one, w]);
  }
  const y = gamma === 'left' || gamma === 'gemmaLeft' ? g.op('Mul', [w, lhs]) : g.op('Mul', [lhs, w]);
  return fp16Casts && castBack === 'afterGamma' ? g.op('Cast', [y], { to: DT.float16 }) : y;
}

/** A one-norm model: x [batch, seq, ...normDims] -> y. */
export function normModel(s: NormSpelling = {}, opset = 17, scope = '/model/layers.0/input_layernorm'): Built {
  const g = new GraphBuilder({ opset });
  const T = s.dtype ?? 'float32';
  const dims: Dims = ['batch', 'seq', ...(s.normDims ?? [64])];
  const x = g.input('x', T, dims);
  g.scope(scope);
  const y = rmsNorm(g, x, s);
  g.output(y, T, dims);
  return { g, x, y };
}
