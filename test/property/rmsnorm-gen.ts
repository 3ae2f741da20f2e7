/**
 * Generators of RMSNorm-like ONNX graphs for property tests.
 *
 * A case is a graph with 1-3 independent sites. Each site is described by a `SiteSpec`: every
 * spelling SPEC section 4 lists is one field (square form, reduction form and axes, epsilon
 * value, kind and side, reciprocal-sqrt form, Casts, gamma form and shape, gemma, residual
 * and bias, quantization), plus the uses that change what the site fuses into (rstd or the
 * residual sum used elsewhere or a graph output) and the changes that must block fusion
 * (`block`: wrong axis, wrong exponent, non-constant or out-of-range epsilon, mean subtraction,
 * a weight broadcasting along another axis, plain keepdims 0, an interior value used outside).
 *
 * `buildCase` turns a case into a ModelProto, the feeds to run it with, and what the optimizer
 * must do with it: how many sites fuse. Specs are plain data, so fast-check shrinks them and a
 * failure prints them together with the graph.
 */
import fc from 'fast-check';
import { clone } from '@bufbuild/protobuf';
import { type GraphProto, GraphProtoSchema, type ModelProto, ValueInfoProtoSchema } from 'onnx-buf';
import { DT, GraphBuilder, float, rng, type ElemType } from '../helpers/graph.js';
import type { HostTensor } from '../helpers/ort.js';
import { roundArrayTo } from '../../runtime/numeric.js';

export type Act = 'float32' | 'float16';
/** fp16 models: `cast` = HF style (Cast to fp32, norm, Cast back); `native` = everything in fp16. */
export type Fp16Style = 'cast' | 'native';
export type Square = 'pow' | 'mul';
export type ExpForm = 'init' | 'constant' | 'cast';
export type Reduce = 'mean' | 'sum-div' | 'sum-mul' | 'sumsq-div' | 'sumsq-mul';
export type AxisForm = 'neg' | 'pos';
export type Keep = 'keep' | 'unsqueeze' | 'reshape';
export type Rsqrt = 'sqrt-recip' | 'sqrt-div1' | 'div' | 'pow';
export type NoopCast = 'none' | 'input' | 'mean' | 'normed';
export type GammaShape = 'H' | 'ones-H';
export type Gemma = 'none' | 'g+1' | '1+g';
export type Use = 'none' | 'consumer' | 'output';
export type Block =
  | 'none'
  | 'axis'
  | 'exp-square'
  | 'exp-rsqrt'
  | 'eps-input'
  | 'eps-range'
  | 'mean-sub'
  | 'weight-shape'
  | 'keepdims0'
  | 'interior';

export interface SiteSpec {
  act: Act;
  fp16: Fp16Style;
  square: Square;
  exp: ExpForm;
  reduce: Reduce;
  axis: AxisForm;
  keep: Keep;
  eps: number;
  epsKind: 'init' | 'constant';
  epsLeft: boolean;
  rsqrt: Rsqrt;
  /** Mul(x, r) (false) or Mul(r, x) (true); also the side of gamma. */
  swap: boolean;
  noopCast: NoopCast;
  gamma: 'none' | GammaShape;
  /** fp16 cast style: the gamma multiply after the Cast back to fp16 (high_performance). */
  gammaAfterCast: boolean;
  gemma: Gemma;
  residual: boolean;
  /** A constant bias added to the residual sum, or to x before the residual Add (a Linear's bias). */
  bias: 'none' | 'sum' | 'operand';
  sumUse: Use;
  rstdUse: Use;
  quant: 'none' | 'static' | 'qdq' | 'dynamic';
  beta: boolean;
  block: Block;
  /** For block 'interior': which value is used outside the site. */
  interior: 'square' | 'mean' | 'mean-eps' | 'sqrt';
  interiorUse: 'consumer' | 'output';
}

export interface CaseSpec {
  opset: number;
  rank: 2 | 3;
  H: number;
  /** Rows: rank 2 is [rows, H], rank 3 is [1, rows, H]. */
  rows: number;
  sites: SiteSpec[];
  seed: number;
  /**
   * Put every site inside both branches of an If (SPEC 4: "the same inside If/Loop/Scan
   * bodies"); the else branch is a renamed copy, so each site fuses twice. `cond` picks the
   * branch that runs.
   */
  inIf?: { cond: boolean };
  /** Output format (`--format`); onnx23 needs opset 23, so such cases use it. Default rmsfuse. */
  format?: 'ort' | 'onnx23';
}

/**
 * Whether a site must fuse. Not when a blocking change was made to it. A weight broadcasting
 * along another axis ('weight-shape') may go either way: SPEC 4 forbids absorbing it, and the
 * pass leaves such a site unfused, but a smaller norm (ones gamma, the weight's Mul left
 * outside) is correct math too and is what happens when a no-op Cast hides the site's start;
 * the outputs are compared either way. Also either way when the rstd conflicts (below).
 */
export function siteFuses(s: SiteSpec): 'yes' | 'no' | 'either' {
  if (s.block === 'weight-shape') return 'either';
  if (s.block !== 'none') return 'no';
  return rstdConflict(s) ? 'either' : 'yes';
}

/**
 * The rstd is used outside together with high_performance or gemma, which exclude it (SPEC 2),
 * or it is fp16 (a fused rstd is fp32). Refusing the site (with a remark) is right; so is fusing
 * a smaller norm (no gamma, rstd exposed) and leaving the gamma multiply outside. SPEC does not
 * choose, so either count passes.
 */
export function rstdConflict(s: SiteSpec): boolean {
  if (s.rstdUse === 'none' || s.rsqrt === 'div') return false;
  const native = s.act === 'float16' && s.fp16 === 'native';
  const weight = s.gamma !== 'none' && s.block !== 'weight-shape';
  const highPerformance = s.act === 'float16' && s.fp16 === 'cast' && weight && s.gammaAfterCast;
  return native || highPerformance || (weight && s.gemma !== 'none');
}

/**
 * Makes a raw combination consistent (fast-check generates fields independently; this keeps
 * shrinking simple): drops what the chosen forms cannot express or ONNX/onnxruntime cannot run.
 */
export function normalizeSite(raw: SiteSpec, c: Pick<CaseSpec, 'opset' | 'rank' | 'H' | 'rows'>): SiteSpec {
  const s = { ...raw };
  if (s.act === 'float32') {
    s.fp16 = 'cast';
    s.gammaAfterCast = false;
  }
  const native = s.act === 'float16' && s.fp16 === 'native';
  // No-op Casts are fp32 -> fp32; a native fp16 site has no fp32 values.
  if (native) s.noopCast = 'none';
  if (s.gamma === 'none') {
    s.gemma = 'none';
    s.gammaAfterCast = false;
  }
  if (s.gammaAfterCast) s.gemma = 'none'; // gemma is all-fp32 (SPEC 2); high_performance excludes it
  if (s.square === 'mul') s.exp = 'init';
  if (!s.residual) {
    s.bias = 'none';
    s.sumUse = 'none';
  }
  // Div(x, Sqrt) has no reciprocal value to expose.
  if (s.rsqrt === 'div') s.rstdUse = 'none';
  // QuantizeLinear takes fp16 input from opset 19; the dynamic form needs Round/Clip only.
  if (s.quant === 'static' || s.quant === 'qdq') {
    if (s.act === 'float16' && c.opset < 19) s.quant = 'none';
  }
  if (s.quant === 'none') s.beta = false;
  // Quantized outputs are int8; bias with quantization is not an ATB combination. Keep the site simple.
  if (s.quant !== 'none') s.bias = 'none';
  // Mutations that need a particular form.
  if (s.block === 'exp-square' && s.square !== 'pow') s.square = 'pow';
  if (s.block === 'exp-rsqrt' && s.rsqrt !== 'pow') s.rsqrt = 'pow';
  if (s.block === 'weight-shape' && s.gamma === 'none') s.gamma = 'H';
  if (s.block === 'mean-sub') {
    s.keep = 'keep';
    s.reduce = 'mean';
  }
  if (s.block === 'keepdims0') {
    // Plain keepdims 0: [rows] broadcasts along the last axis instead; valid ONNX only when
    // rows == H at rank 2.
    if (!(c.rank === 2 && c.rows === c.H)) s.block = 'axis';
    else s.keep = 'keep';
  }
  if (s.block === 'interior' && s.interior === 'sqrt' && s.rsqrt === 'pow') s.interior = 'mean-eps';
  if (s.block === 'axis' && c.rank === 2 && c.rows === 1) s.block = 'exp-square';
  if (s.block === 'exp-square') s.square = 'pow';
  // ReduceSumSquare takes x itself: no square node to mutate or expose.
  if (s.reduce.startsWith('sumsq')) {
    if (s.block === 'exp-square') s.reduce = 'sum-div';
    else s.square = 'pow';
    if (s.block === 'interior' && s.interior === 'square') s.interior = 'mean';
  }
  if (s.block === 'axis') s.keep = 'keep';
  if (s.block === 'eps-input' || s.block === 'eps-range') s.epsKind = 'init';
  return s;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const siteArb = (): fc.Arbitrary<SiteSpec> =>
  fc.record({
    act: fc.constantFrom<Act>('float32', 'float16'),
    fp16: fc.constantFrom<Fp16Style>('cast', 'cast', 'native'),
    square: fc.constantFrom<Square>('pow', 'mul'),
    exp: fc.constantFrom<ExpForm>('init', 'constant', 'cast'),
    reduce: fc.constantFrom<Reduce>('mean', 'mean', 'sum-div', 'sum-mul', 'sumsq-div', 'sumsq-mul'),
    axis: fc.constantFrom<AxisForm>('neg', 'pos'),
    keep: fc.constantFrom<Keep>('keep', 'keep', 'unsqueeze', 'reshape'),
    eps: fc.constantFrom(1e-5, 1e-6, 1e-2, 0.5),
    epsKind: fc.constantFrom<'init' | 'constant'>('init', 'constant'),
    epsLeft: fc.boolean(),
    rsqrt: fc.constantFrom<Rsqrt>('sqrt-recip', 'sqrt-div1', 'div', 'pow'),
    swap: fc.boolean(),
    noopCast: fc.constantFrom<NoopCast>('none', 'none', 'input', 'mean', 'normed'),
    gamma: fc.constantFrom<'none' | GammaShape>('H', 'H', 'ones-H', 'none'),
    gammaAfterCast: fc.boolean(),
    gemma: fc.constantFrom<Gemma>('none', 'none', 'g+1', '1+g'),
    residual: fc.boolean(),
    bias: fc.constantFrom<SiteSpec['bias']>('none', 'sum', 'operand'),
    sumUse: fc.constantFrom<Use>('none', 'consumer', 'output'),
    rstdUse: fc.constantFrom<Use>('none', 'none', 'none', 'consumer', 'output'),
    quant: fc.constantFrom<SiteSpec['quant']>('none', 'none', 'static', 'qdq', 'dynamic'),
    beta: fc.boolean(),
    block: fc.oneof(
      { weight: 3, arbitrary: fc.constant<Block>('none') },
      {
        weight: 1,
        arbitrary: fc.constantFrom<Block>('axis', 'exp-square', 'exp-rsqrt', 'eps-input', 'eps-range', 'mean-sub', 'weight-shape', 'keepdims0', 'interior'),
      },
    ),
    interior: fc.constantFrom<SiteSpec['interior']>('square', 'mean', 'mean-eps', 'sqrt'),
    interiorUse: fc.constantFrom<'consumer' | 'output'>('consumer', 'output'),
  });

/** A whole case: opset, shape, 1-3 sites (normalized), and the data seed. */
export function caseArb(maxSites = 3): fc.Arbitrary<CaseSpec> {
  return fc
    .record({
      opset: fc.constantFrom(13, 17, 18, 21),
      rank: fc.constantFrom<2 | 3>(2, 3),
      H: fc.constantFrom(4, 8, 16),
      rows: fc.constantFrom(1, 3, 4),
      sites: fc.array(siteArb(), { minLength: 1, maxLength: maxSites }),
      seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      inIf: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.record({ cond: fc.boolean() }) }),
      format: fc.constantFrom<CaseSpec['format']>(undefined, undefined, undefined, 'ort', 'onnx23'),
    })
    .map((c) => {
      const { inIf, format, ...rest } = c;
      const opset = format === 'onnx23' ? 23 : c.opset;
      const out: CaseSpec = { ...rest, opset, ...(inIf ? { inIf } : {}), ...(format ? { format } : {}), sites: [] };
      out.sites = c.sites.map((s) => normalizeSite(s, out));
      return out;
    });
}

// ---------------------------------------------------------------------------------------------
// Building

export interface BuiltCase {
  model: ModelProto;
  feeds: Record<string, HostTensor>;
  /** Sites that must fuse (one fused node each) and sites that must not. */
  expectFused: number;
  /** Sites that may fuse or not (rstdConflict); when not, they need a remark. */
  expectEither: number;
  expectBlocked: number;
  /**
   * How to compare each output: 'int8' (|diff| <= 1), 'scale' (2^-8), float kinds, or
   * { dq: scale } for a DequantizeLinear output (compared in quantization steps: |diff| <= 1 step).
   */
  outputs: { name: string; kind: Kind }[];
}

export type Kind = 'int8' | 'scale' | 'float32' | 'float16' | { dq: number };

export interface BuildOptions {
  /**
   * Sites (native fp16, fused) to build as their fp32 twin: the same math in fp32, with the fp16
   * roundings a fused node keeps (inputs, the residual sum, the output; `roundNormed` also after
   * x*rstd, as high_performance does). The reference for what a fused node computes (SPEC 2:
   * statistics always in fp32). Sites that stay unfused keep their fp16 arithmetic.
   */
  twinSites?: Set<number>;
  /** Site indices whose twin rounds x*rstd to fp16 before the gamma multiply. */
  roundNormed?: Set<number>;
}

const FLOAT = DT.float32;
const FLOAT16 = DT.float16;

export function buildCase(c: CaseSpec, opts: BuildOptions = {}): BuiltCase {
  const g = new GraphBuilder({ opset: c.opset, name: 'prop' });
  const shape = c.rank === 2 ? [c.rows, c.H] : [1, c.rows, c.H];
  const r = rng(c.seed);
  const feeds: Record<string, HostTensor> = {};
  const outputs: BuiltCase['outputs'] = [];
  let expectFused = 0;
  let expectEither = 0;
  let expectBlocked = 0;

  c.sites.forEach((s, i) => {
    g.scope(`/s${i}`);
    const native = s.act === 'float16' && s.fp16 === 'native';
    const twin = !!opts.twinSites?.has(i) && native;
    // The dtype the graph holds activations in, and the one it computes the norm in.
    const act: ElemType = twin ? 'float32' : s.act;
    const comp: ElemType = s.act === 'float16' && !native ? 'float32' : act;
    const round16 = (v: string): string => (twin ? g.op('Cast', [g.op('Cast', [v], { to: FLOAT16 })], { to: FLOAT }) : v);
    /**
     * Declares `v` itself a graph output (so "a graph output in the middle of a site" really is
     * one); the twin adds a Cast to fp16 where the original holds fp16. Outputs are matched by
     * position between a model and its twin, by name between a model and its optimized form.
     */
    const output = (v: string, d: ElemType, dims: number[], kind?: Kind): void => {
      const back = twin && d === 'float32';
      const src = back ? g.op('Cast', [v], { to: FLOAT16 }) : v;
      const dt: ElemType = back ? 'float16' : d;
      g.output(src, dt, dims);
      outputs.push({ name: src, kind: kind ?? (dt as 'float32' | 'float16') });
    };

    // Inputs: rows of mixed magnitude; fp16 values are exact in fp16 (also for the twin).
    const maxAbs = native ? 8 : 100;
    const feed = (name: string): string => {
      const n = shape.reduce((a, b) => a * b, 1);
      const a = new Float32Array(n);
      let mag = 1;
      for (let k = 0; k < n; k++) {
        if (k % c.H === 0) mag = 10 ** (2 * r() - 1);
        a[k] = Math.max(-maxAbs, Math.min(maxAbs, (2 * r() - 1) * mag));
      }
      const data = s.act === 'float16' ? roundArrayTo('float16', a) : a;
      feeds[name] = { dtype: act, dims: shape, data };
      return g.input(name, act, shape);
    };
    const vec = (n: number, lo: number, hi: number): number[] => {
      const v = Array.from({ length: n }, () => lo + (hi - lo) * r());
      return s.act === 'float16' ? Array.from(roundArrayTo('float16', Float32Array.from(v))) : v;
    };
    /** Constants of a native fp16 site hold fp16 values, also in its fp32 twin. */
    const to16 = (v: number): number => (native ? roundArrayTo('float16', Float32Array.of(v))[0]! : v);
    const scalarConst = (v: number, d: ElemType, kind: 'init' | 'constant' = 'init'): string =>
      kind === 'constant' ? g.constant(v, d, []) : g.scalar(v, d, 'c');

    const x = feed(`x${i}`);
    let h = x;
    if (s.residual) {
      const res = feed(`r${i}`);
      const bias = (): string => g.init('bias', act, [c.H], vec(c.H, -0.5, 0.5));
      h = g.op('Add', [s.bias === 'operand' ? g.op('Add', [x, bias()]) : x, res]);
      if (s.bias === 'sum') h = g.op('Add', [h, bias()]);
      h = round16(h);
      if (s.sumUse === 'consumer') output(g.op('Mul', [h, scalarConst(2, act)]), act, shape);
      if (s.sumUse === 'output') output(h, act, shape);
    }

    // The norm's own input, in the compute dtype.
    let hc = comp !== act ? g.op('Cast', [h], { to: DT[comp as 'float32'] }) : h;
    if (s.noopCast === 'input') hc = g.op('Cast', [hc], { to: FLOAT });

    const interiorOut = (which: SiteSpec['interior'], v: string, dims: number[]): void => {
      if (s.block !== 'interior' || s.interior !== which) return;
      output(s.interiorUse === 'consumer' ? g.op('Neg', [v]) : v, comp, dims);
    };

    // square
    const sumSquare = s.reduce === 'sumsq-div' || s.reduce === 'sumsq-mul';
    let sq: string;
    if (sumSquare) {
      sq = hc; // ReduceSumSquare squares as it sums
    } else if (s.square === 'mul') {
      sq = g.op('Mul', [hc, hc]);
    } else {
      const e = s.block === 'exp-square' ? 3 : 2;
      const exp =
        s.exp === 'init'
          ? g.scalar(e, comp, 'exp')
          : s.exp === 'constant'
            ? g.constant(e, comp, [])
            : g.op('Cast', [g.constant(e, 'int64', [])], { to: DT[comp as 'float32'] });
      sq = g.op('Pow', [hc, exp]);
    }
    interiorOut('square', sq, shape);

    // mean over the last axis
    const last = shape.length - 1;
    const axes = s.block === 'axis' ? [last - 1] : s.axis === 'neg' ? [-1] : [last];
    const keepdims = s.keep === 'keep' && s.block !== 'keepdims0' ? 1 : 0;
    const reduceOp = s.reduce === 'mean' ? 'ReduceMean' : sumSquare ? 'ReduceSumSquare' : 'ReduceSum';
    let mean = g.reduce(reduceOp, sq, axes, keepdims);
    if (s.reduce === 'sum-div' || s.reduce === 'sumsq-div') mean = g.op('Div', [mean, g.scalar(c.H, comp, 'H')]);
    if (s.reduce === 'sum-mul' || s.reduce === 'sumsq-mul') mean = g.op('Mul', [mean, g.scalar(1 / c.H, comp, 'invH')]);
    const reducedShape = shape.map((d, k) => (k === (axes[0]! + shape.length) % shape.length ? 1 : d));
    if (keepdims === 0 && s.block !== 'keepdims0') {
      if (s.keep === 'unsqueeze') {
        mean = c.opset >= 13 ? g.op('Unsqueeze', [mean, g.init('axes', 'int64', [1], [-1])]) : g.op('Unsqueeze', [mean], { axes: [-1] });
      } else {
        mean = g.op('Reshape', [mean, g.init('shape', 'int64', [shape.length], [...shape.slice(0, -1).map(() => 0), 1])]);
      }
    }
    if (s.block === 'mean-sub') {
      const m1 = g.reduce('ReduceMean', hc, axes, 1);
      mean = g.op('Sub', [mean, g.op('Mul', [m1, m1])]);
    }
    const meanDims = s.block === 'keepdims0' ? [c.rows] : reducedShape;
    interiorOut('mean', mean, meanDims);
    if (s.noopCast === 'mean') mean = g.op('Cast', [mean], { to: FLOAT });

    // + epsilon
    let eps: string;
    if (s.block === 'eps-input') {
      eps = g.input(`eps${i}`, comp, []);
      feeds[`eps${i}`] = { dtype: comp, dims: [], data: new Float32Array([s.eps]) };
    } else {
      eps = scalarConst(to16(s.block === 'eps-range' ? 1.5 : s.eps), comp, s.epsKind);
    }
    const me = g.op('Add', s.epsLeft ? [eps, mean] : [mean, eps]);
    interiorOut('mean-eps', me, meanDims);

    // reciprocal square root and the normalized value
    let normed: string;
    let rstd: string | undefined;
    const mul = (a: string, b: string): string => g.op('Mul', s.swap ? [b, a] : [a, b]);
    if (s.rsqrt === 'pow') {
      rstd = g.op('Pow', [me, g.scalar(s.block === 'exp-rsqrt' ? -0.25 : -0.5, comp, 'exp')]);
      normed = mul(hc, rstd);
    } else {
      const sqrt = g.op('Sqrt', [me]);
      interiorOut('sqrt', sqrt, meanDims);
      if (s.rsqrt === 'div') {
        normed = g.op('Div', [hc, sqrt]);
      } else {
        rstd = s.rsqrt === 'sqrt-recip' ? g.op('Reciprocal', [sqrt]) : g.op('Div', [g.scalar(1, comp, 'one'), sqrt]);
        normed = mul(hc, rstd);
      }
    }
    if (rstd && s.rstdUse === 'consumer') output(g.op('Mul', [rstd, scalarConst(3, comp)]), comp, meanDims);
    if (rstd && s.rstdUse === 'output') output(rstd, comp, meanDims);
    if (s.noopCast === 'normed') normed = g.op('Cast', [normed], { to: FLOAT });

    // gamma
    const gammaDims = (): number[] => {
      if (s.block === 'weight-shape') return c.rank === 2 ? [c.rows, 1] : [1, c.rows, 1];
      return s.gamma === 'ones-H' ? [...shape.slice(0, -1).map(() => 1), c.H] : [c.H];
    };
    const applyGamma = (v: string, d: ElemType): string => {
      const dims = gammaDims();
      const n = dims.reduce((a, b) => a * b, 1);
      let w = g.init('gamma', d, dims, s.gemma === 'none' ? vec(n, -1.5, 1.5) : vec(n, -0.5, 0.5));
      if (s.gemma === 'g+1') w = g.op('Add', [w, g.scalar(1, d, 'one')]);
      if (s.gemma === '1+g') w = g.op('Add', [g.scalar(1, d, 'one'), w]);
      return mul(v, w);
    };
    let y: string;
    if (s.act === 'float16' && !native) {
      if (s.gamma !== 'none' && !s.gammaAfterCast) y = g.op('Cast', [applyGamma(normed, 'float32')], { to: FLOAT16 });
      else {
        const n16 = g.op('Cast', [normed], { to: FLOAT16 });
        y = s.gamma !== 'none' ? applyGamma(n16, 'float16') : n16;
      }
    } else {
      if (opts.roundNormed?.has(i)) normed = round16(normed);
      y = s.gamma !== 'none' ? applyGamma(normed, act) : normed;
    }

    // quantization
    const yDtype: ElemType = act;
    if (s.quant === 'none') {
      output(y, yDtype, shape);
    } else {
      let v = y;
      if (s.beta) v = g.op('Add', [v, g.init('beta', yDtype, [c.H], vec(c.H, -0.2, 0.2))]);
      v = round16(v);
      if (s.quant === 'dynamic') {
        const amax = g.reduce('ReduceMax', g.op('Abs', [v]), [-1], 1);
        const scale = g.op('Div', [amax, g.scalar(127, yDtype, 'qmax')]);
        const q = g.op('Cast', [g.op('Clip', [g.op('Round', [g.op('Div', [v, scale])]), g.scalar(-128, yDtype, 'lo'), g.scalar(127, yDtype, 'hi')])], {
          to: DT.int8,
        });
        output(q, 'int8', shape, 'int8');
        output(scale, yDtype, reducedShape, 'scale');
      } else {
        const scaleValue = to16([0.01, 0.03, 0.1][Math.floor(r() * 3)]!);
        const sc = g.scalar(scaleValue, yDtype, 'scale');
        const zp = g.scalar(Math.floor(r() * 21) - 10, 'int8', 'zp');
        const q = g.op('QuantizeLinear', [v, sc, zp]);
        if (s.quant === 'static') output(q, 'int8', shape, 'int8');
        else output(g.op('DequantizeLinear', [q, sc, zp]), yDtype, shape, { dq: scaleValue });
      }
    }
    const fuses = siteFuses(s);
    if (fuses === 'yes') expectFused++;
    else if (fuses === 'either') expectEither++;
    else expectBlocked++;
  });
  g.scope('');
  if (c.inIf) {
    const model = wrapInIf(g, c.inIf.cond, feeds);
    return { model, feeds, expectFused: 2 * expectFused, expectEither: 2 * expectEither, expectBlocked: 2 * expectBlocked, outputs: outputs.map((o, k) => ({ ...o, name: `if_out_${k}` })) };
  }
  return { model: g.model(), feeds, expectFused, expectEither, expectBlocked, outputs };
}

/**
 * The graph built in `g` becomes both branches of an If in a new main graph with the same
 * inputs plus a bool `cond`: the then branch as built, the else branch a copy with every name
 * it defines prefixed `else:`. The If's outputs are `if_out_<k>`.
 */
function wrapInIf(g: GraphBuilder, cond: boolean, feeds: Record<string, HostTensor>): ModelProto {
  const body = g.graph();
  const inputs = new Set(body.input.map((i) => i.name));
  const copy = (prefix: string): GraphProto => {
    const b = clone(GraphProtoSchema, body);
    const rename = (n: string): string => (n === '' || inputs.has(n) ? n : `${prefix}${n}`);
    b.name = `${prefix}body`;
    b.input = [];
    for (const t of b.initializer) t.name = rename(t.name);
    for (const n of b.node) {
      n.name = rename(n.name);
      n.input = n.input.map(rename);
      n.output = n.output.map(rename);
    }
    for (const o of b.output) o.name = rename(o.name);
    for (const v of b.valueInfo) v.name = rename(v.name);
    return b;
  };
  const main = new GraphBuilder({ opset: g.opset, name: 'prop' });
  main.inputs.push(...body.input);
  main.input('cond', 'bool', []);
  feeds.cond = { dtype: 'bool', dims: [], data: Uint8Array.of(cond ? 1 : 0) };
  const outs = body.output.map((_, k) => `if_out_${k}`);
  main.opN('If', ['cond'], { then_branch: copy(''), else_branch: copy('else:') }, { name: 'if', outputs: outs });
  body.output.forEach((o, k) => main.outputs.push({ ...clone(ValueInfoProtoSchema, o), name: outs[k]! }));
  return main.model();
}

/** One line per site, for failure messages. */
export function describeCase(c: CaseSpec): string {
  const lines = [
    `opset ${c.opset}, shape ${c.rank === 2 ? `[${c.rows}, ${c.H}]` : `[1, ${c.rows}, ${c.H}]`}, data seed ${c.seed}` +
      (c.inIf ? `, inside both branches of an If (cond ${c.inIf.cond})` : '') +
      (c.format ? `, --format ${c.format}` : ''),
  ];
  c.sites.forEach((s, i) => {
    const parts = Object.entries(s).map(([k, v]) => `${k}=${v}`);
    lines.push(`  site ${i}: ${parts.join(' ')}`);
  });
  return lines.join('\n');
}

export { float };
