/**
 * Stage 1: the plain RMSNorm, every spelling of SPEC section 4.
 */
import type { Graph, Node } from '../../compiler/ir/graph.js';
import { normalizeAxes, reduceAxes, type Dim } from '../../compiler/ir/types.js';
import { ONNX_DTYPE } from '../../compiler/onnx/dtype.js';
import { resolveLimits } from '../../compiler/onnx/limits.js';
import { defaultParam, type FloatDType, type RmsNormParam } from '../../compiler/op/param.js';
import { fail, isNoOp, ok, p, type Match, type MatchResult, type Pattern } from '../matcher/index.js';
import {
  castTo,
  commonScope,
  dtypeText,
  keptNoOps,
  FLOAT_CODES,
  floatOf,
  onesInitializer,
  outsideUse,
  reshapedConstant,
  sameDim,
  shapeText,
  weightProblem,
  type FusedPlan,
  type RuleContext,
} from '../plan.js';
import type { Rule } from '../rule.js';
import { validatePlan } from '../validate-site.js';

// --- the pattern ------------------------------------------------------------------------------

/** Zero or one Unsqueeze/Reshape restoring the axes a keepdims=0 reduction dropped. */
const restore = (inner: Pattern, tag: string): Pattern => p.opt(['Unsqueeze', 'Reshape'], inner, tag);
const RESTORE_TAGS = ['restoreSum', 'restoreMean', 'restoreVar', 'restoreSqrt', 'restoreRstd'] as const;

/** x, or x cast to fp32 (fp16 models compute the statistics in fp32). */
const xs = p.optCast(p.var('x'), 'castIn');
const square = p.oneOf(p.Pow(xs, p.const(2, 'the exponent of the square')).as('square'), p.Mul(xs, xs).as('square'));
/** The sum of squares: ReduceSum of the square, or ReduceSumSquare of x (no square node). */
const reduceSum = restore(p.oneOf(p.ReduceSum(square).as('reduce'), p.ReduceSumSquare(xs).as('reduce')), 'restoreSum');
const mean = p.oneOf(
  p.ReduceMean(square).as('reduce'),
  p.Mul(reduceSum, p.constAny('invH', 'the 1/H factor of the mean')),
  p.Div(reduceSum, p.constAny('H', 'the divisor H of the mean')),
);
const variance = restore(p.Add(restore(mean, 'restoreMean'), p.constAny('eps', 'epsilon')).as('addEps'), 'restoreVar');
const sqrt = restore(p.Sqrt(variance).as('sqrt'), 'restoreSqrt');
const rstd = restore(
  p.oneOf(
    p.Reciprocal(sqrt).as('recip'),
    p.Div(p.const(1, 'the numerator of 1/sqrt'), sqrt).as('recip'),
    p.Pow(variance, p.const(-0.5, 'the exponent of the reciprocal square root')).as('recip'),
  ),
  'restoreRstd',
).as('rstd');
const normalized = p.oneOf(p.Mul(xs, rstd).as('normMul'), p.Div(xs, sqrt).as('normMul'));

/** gamma, (1 + gamma) for Gemma; either behind an optional Cast. */
const gamma = p.optCast(p.var('gamma'), 'castGamma');
const weight = p.oneOf(p.optCast(p.Add(gamma, p.const(1, 'the Gemma offset (1 + gamma)')).as('gemmaAdd'), 'castGemma'), gamma);

/** The norm with its gamma multiply (preferred), or without gamma; a Cast back to T may end either. */
export const pattern: Pattern = p.oneOf(
  p.optCast(p.Mul(p.optCast(normalized, 'castMid'), weight).as('gammaMul'), 'castOut'),
  p.optCast(normalized, 'castOut'),
);

// --- the check --------------------------------------------------------------------------------

/** x = a - mean(a): the mean is subtracted first, which makes this a LayerNorm. */
function meanSubtracted(g: Graph, x: string): Node | undefined {
  const behindCasts = (v: string): Node | undefined => {
    let n = g.producer(v);
    for (let i = 0; n && i < 4 && (n.is('Cast') || n.is('Identity')); i++) n = g.producer(n.inputs[0] ?? '');
    return n;
  };
  const sub = behindCasts(x);
  if (!sub?.is('Sub')) return undefined;
  const m = behindCasts(sub.inputs[1] ?? '');
  return m?.is('ReduceMean') ? sub : undefined;
}

/** An Unsqueeze/Reshape that gives back the reduced axes (as size 1) of a keepdims=0 reduction. */
export function restoreProblem(g: Graph, n: Node, x: readonly Dim[], axes: number[]): string | undefined {
  const r = x.length;
  if (n.is('Unsqueeze')) {
    const a = n.attrInts('axes') ?? (n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined);
    const norm = a && normalizeAxes(a, r);
    if (!norm || norm.join() !== axes.join()) return `${n.label} unsqueezes axes [${a ?? '?'}], not the reduced axes [${axes}]`;
    return undefined;
  }
  const target = n.inputs[1] ? g.constantValues(n.inputs[1]) : undefined;
  if (!target) return `${n.label} has a shape that is not constant`;
  if (target.length !== r) return `${n.label} reshapes to rank ${target.length}, not x's rank ${r}`;
  let minus = 0;
  for (let i = 0; i < r; i++) {
    const t = target[i]!;
    if (axes.includes(i)) {
      if (t !== 1) return `${n.label} reshapes reduced axis ${i} to ${t}, not 1`;
    } else if (t === -1) {
      minus++;
    } else if (!(t === 0 && (n.attrInt('allowzero') ?? 0) === 0) && t !== x[i]) {
      return `${n.label} reshapes axis ${i} to ${t}, not x's ${x[i] ?? '?'}`;
    }
  }
  return minus > 1 ? `${n.label} has more than one -1` : undefined;
}

const close = (a: number, b: number, rel: number): boolean => Math.abs(a - b) <= rel * Math.abs(b);

function check(m: Match, cx: RuleContext): MatchResult<FusedPlan> {
  const g = m.graph;
  const x = m.values.x!;
  const root = m.root;
  const y = root.outputs[0]!;

  const sub = meanSubtracted(g, x);
  if (sub) return fail('the mean is subtracted before the norm (x - mean(x)): this is LayerNorm, not RMSNorm', sub);
  if (cx.opset < 13) return fail(`the model's opset ${cx.opset} is below 13, which the fused node's reference function needs`, root);

  const xt = g.type(x);
  const T = floatOf(xt);
  if (!xt || !T) return fail(`x '${x}' has dtype ${dtypeText(xt?.dtype)}, not float32, float16 or bfloat16`, x);
  // The norm's output has x's shape: either may carry it (graph outputs usually declare theirs).
  const xShape = xt.shape ?? g.type(y)?.shape;
  if (!xShape) return fail(`the shape of x '${x}' is unknown`, x);
  const r = xShape.length;

  // Reduction over the trailing k axes, keeping them (or restoring them right after).
  const red = m.nodes.reduce!;
  let axes = reduceAxes(g, red);
  if (axes === undefined) return fail(`the axes of ${red.opType} are not constant`, red);
  if (axes.length === 0) {
    if ((red.attrInt('noop_with_empty_axes') ?? 0) === 1) return fail(`${red.opType} reduces nothing (noop_with_empty_axes)`, red);
    axes = xShape.map((_, i) => i);
  }
  const normAxes = normalizeAxes(axes, r);
  if (!normAxes) return fail(`${red.opType} axes [${axes}] are out of range for rank ${r}`, red);
  const k = normAxes.length;
  if (normAxes.some((a, i) => a !== r - k + i)) {
    return fail(`${red.opType} reduces over axes [${axes}] of a rank-${r} input, not the trailing axes`, red);
  }
  const keepdims = red.attrInt('keepdims') ?? 1;
  const restores = RESTORE_TAGS.map((t) => m.nodes[t]).filter((n): n is Node => !!n);
  if (keepdims === 1 && restores.length > 0) return fail(`unexpected ${restores[0]!.opType} after a keepdims=1 reduction`, restores[0]);
  if (keepdims === 0) {
    if (restores.length === 0) return fail(`${red.opType} has keepdims=0 and nothing restores the reduced axes: the multiply would broadcast along the wrong axes`, red);
    if (restores.length > 1) return fail('more than one Unsqueeze/Reshape after the reduction', restores[1]);
    const problem = restoreProblem(g, restores[0]!, xShape, normAxes);
    if (problem) return fail(problem, restores[0]);
  }

  // The mean: ReduceMean, or ReduceSum / ReduceSumSquare times 1/H or divided by H.
  const normDims = xShape.slice(r - k);
  const H = normDims.every((d): d is number => typeof d === 'number') ? normDims.reduce((a, b) => a * b, 1) : undefined;
  for (const [name, want] of [['invH', H && 1 / H], ['H', H]] as const) {
    const c = m.consts[name];
    if (!c) continue;
    if (want === undefined) return fail(`the normalized dims ${shapeText(normDims)} are not static: cannot check that ${red.opType} is divided by H`, red);
    if (c.length !== 1 || !close(c[0]!, want, 1e-3)) return fail(`${red.opType} is scaled by ${c[0]} instead of ${name === 'H' ? `/ ${H}` : `* 1/${H}`}: not a mean`, red);
  }

  // epsilon: one constant value in (0, 1].
  const eps = m.consts.eps!;
  const addEps = m.nodes.addEps!;
  if (eps.some((e) => e !== eps[0])) return fail('epsilon is not a single value', addEps);
  const epsilon = Math.fround(eps[0]!);
  if (!(epsilon > 0 && epsilon <= 1)) return fail(`epsilon ${eps[0]} is out of range (0, 1]`, addEps);

  // Casts: to fp32 before; back to T before or after the gamma multiply (precision_mode).
  const C: FloatDType | undefined = m.nodes.castIn ? FLOAT_CODES[castTo(m.nodes.castIn) ?? -1] : T;
  if (C !== T && C !== 'float32') return fail(`the Cast before the norm goes to ${dtypeText(castTo(m.nodes.castIn!))}, not float32`, m.nodes.castIn);
  if (!C) return fail('the norm is not computed in a float type', m.nodes.castIn);
  const gammaMul = m.nodes.gammaMul;
  const castMid = m.nodes.castMid;
  let M: FloatDType = C; // dtype of the gamma multiply
  if (castMid) {
    const to = FLOAT_CODES[castTo(castMid) ?? -1];
    if (to !== C && !(C === 'float32' && to === T)) {
      return fail(`the Cast between the normalization and the gamma multiply goes to ${dtypeText(castTo(castMid))}, not ${T}`, castMid);
    }
    M = to!;
  }
  const castOut = m.nodes.castOut;
  const outT = castOut ? FLOAT_CODES[castTo(castOut) ?? -1] : M;
  if (castOut && outT !== M && M !== 'float32') return fail(`the Cast after the norm goes from ${M} to ${dtypeText(castTo(castOut))}`, castOut);
  if (outT !== T) return fail(`the norm's output is ${outT ?? dtypeText(castTo(castOut!))} but x is ${T}`, castOut ?? root);

  // gamma (or a ones gamma), and Gemma's (1 + gamma).
  const gemma = !!m.nodes.gemmaAdd;
  const highPerformance = !!gammaMul && !gemma && M === T && T !== 'float32';
  const newInitializers = [];
  const notes: string[] = [];
  let gammaName: string;
  let gammaDType: FloatDType;
  if (gammaMul) {
    gammaName = m.values.gamma!;
    const gt = g.type(gammaName);
    const gd = floatOf(gt);
    if (!gd) return fail(`gamma '${gammaName}' has dtype ${dtypeText(gt?.dtype)}, not a float type`, gammaName);
    for (const tag of ['castGamma', 'castGemma'] as const) {
      const c = m.nodes[tag];
      if (!c) continue;
      const to = FLOAT_CODES[castTo(c) ?? -1];
      // Upcasts to fp32 are exact; high_performance rounds gamma to T by definition.
      if (to !== 'float32' && !(highPerformance && to === T)) return fail(`gamma is cast to ${dtypeText(castTo(c))} before the multiply`, c);
    }
    const shapeCheck = weightProblem('gamma', gt, xShape, k, gammaName);
    // A constant weight that broadcasts along another axis leaves the site unfused; a
    // non-constant operand is just not a gamma (the norm without it may still fuse).
    if ('ok' in shapeCheck) return g.isConstant(gammaName) ? { ...shapeCheck, final: true } : shapeCheck;
    if (shapeCheck.drop > 0) {
      const t = reshapedConstant(g, gammaName, k);
      if (!t) return fail(`gamma ${shapeText(gt?.shape)} is not a constant: cannot drop its leading 1s to rank ${k}`, gammaName);
      newInitializers.push(t);
      notes.push(`gamma ${shapeText(gt?.shape)} stored with rank ${k} as ${t.name}`);
      gammaName = t.name;
    }
    gammaDType = gd;
  } else {
    if (!normDims.every((d) => typeof d === 'number')) return fail(`no gamma, and the normalized dims ${shapeText(normDims)} are not static for a ones gamma`, root);
    // The dims come from the model (value_info, Reshape targets): check them before allocating.
    if (!normDims.every((d) => Number.isSafeInteger(d) && d > 0)) return fail(`no gamma, and the normalized dims ${shapeText(normDims)} are not positive sizes for a ones gamma`, root);
    const onesBytes = (normDims as number[]).reduce((a, b) => a * b, T === 'float32' ? 4 : 2);
    if (onesBytes > resolveLimits().maxTensorBytes) {
      return fail(`no gamma, and a ones gamma of shape ${shapeText(normDims)} would need ${onesBytes} bytes, over the allocation limit (--max-tensor-bytes)`, root);
    }
    const t = onesInitializer(`${commonScope(m.site).replace(/^\//, '').replace(/\//g, '_') || 'rms_norm'}_ones_gamma`, T, normDims as number[]);
    newInitializers.push(t);
    notes.push(`no gamma in the graph: fused with a ones gamma ${t.name}`);
    gammaName = t.name;
    gammaDType = T;
  }

  // Interior values used elsewhere block fusion; the rstd becomes an output instead.
  const rstdValue = m.values.rstd;
  const exposed = new Set([y]);
  const kept = keptNoOps(g, m.site, new Set(rstdValue ? [y, rstdValue] : [y]));
  const site = m.site.filter((n) => !kept.includes(n));
  const outside = outsideUse(g, site, exposed);
  let wantRstd = false;
  if (outside && rstdValue && outside.value === rstdValue) {
    wantRstd = true;
    exposed.add(rstdValue);
    const rt = g.type(rstdValue);
    if (rt && rt.dtype !== ONNX_DTYPE.FLOAT) return fail(`rstd '${rstdValue}' is ${dtypeText(rt.dtype)} and used outside the norm; the fused rstd is float32`, rstdValue, { final: true });
    if (rt?.shape && (rt.shape.length !== r || rt.shape.some((d, i) => (i >= r - k ? d !== 1 : !sameDim(d, xShape[i]) && d !== undefined)))) {
      return fail(`rstd '${rstdValue}' ${shapeText(rt.shape)} is used outside the norm but is not x's shape with the normalized axes set to 1`, rstdValue, { final: true });
    }
  }
  const outside2 = wantRstd ? outsideUse(g, site, exposed) : outside;
  if (outside2) return fail(`'${outside2.value}' inside the norm is also used by ${outside2.user}`, outside2.node);

  if (C !== 'float32') notes.push(`the graph computes the statistics in ${C}; the fused node computes them in float32 (SPEC section 2: more accurate)`);
  const param: RmsNormParam = {
    ...defaultParam('Norm', epsilon),
    precisionMode: highPerformance ? 'high_performance' : 'high_precision',
    modelType: gemma ? 'gemma' : 'llama',
    rstd: wantRstd,
  };
  const plan: FusedPlan = {
    param,
    inputs: { x, gamma: gammaName },
    outputs: wantRstd ? { y, rstd: rstdValue! } : { y },
    dtypes: { x: T, gamma: gammaDType },
    k,
    remove: site,
    constNodes: [...m.constNodes],
    newInitializers,
    scope: commonScope(site),
    notes,
  };
  const invalid = validatePlan(g, plan, cx.target);
  if (invalid) {
    // An rstd the target cannot give leaves the whole site unfused (SPEC: rstd is an output or nothing).
    return wantRstd
      ? fail(`rstd '${rstdValue}' is used outside the norm, but ${invalid.reason}`, rstdValue, { final: true })
      : { ...invalid, partial: true };
  }
  return ok(plan);
}

// x * rstd(x) * gamma (Pow/Mul square, ReduceMean or ReduceSum/H or ReduceSumSquare/H, + eps, Sqrt, Reciprocal/Div/Pow(-0.5), Casts) -> RmsNorm(x, gamma)
export const rmsNormRule: Rule = {
  name: 'rms-norm',
  pattern,
  anchor: (m) => m.nodes.reduce ?? m.root,
  check,
  rewrite: (m, b) => b.fuse(m.plan),
};

/** A candidate for remarks: ReduceMean/ReduceSum of a square (Pow(., c) or Mul(a, a)), or a ReduceSumSquare. */
export function isNormCandidate(g: Graph, n: Node): boolean {
  if (n.is('ReduceSumSquare')) return true;
  if (!n.is('ReduceMean') && !n.is('ReduceSum')) return false;
  let sq = g.producer(n.inputs[0] ?? '');
  for (let i = 0; sq && i < 4 && isNoOp(g, sq); i++) sq = g.producer(sq.inputs[0] ?? '');
  if (!sq) return false;
  return sq.is('Pow') || (sq.is('Mul') && sq.inputs[0] === sq.inputs[1]);
}

/**
 * A reason specific to well-known non-RMSNorm shapes around a candidate: a sum of squares not
 * divided by H (an L2 normalization), LayerNorm's E[x^2] - E[x]^2.
 */
export function diagnoseCandidate(g: Graph, n: Node): string | undefined {
  const users = g.consumers(n.outputs[0] ?? '');
  if (n.is('ReduceSumSquare') || n.is('ReduceSum')) {
    // A sum of squares is a mean only once divided by H; x / sqrt(sum + eps) is an L2 normalization.
    const scaled = users.some((u) => (u.is('Mul') || u.is('Div')) && u.inputs.some((v) => v !== n.outputs[0] && g.isConstant(v)));
    if (!scaled && users.some((u) => u.is('Add'))) return `the sum of squares (${n.opType}) is not divided by H: this is an L2 normalization, not RMSNorm's mean`;
  }
  if (users.some((u) => u.is('Sub'))) {
    return 'the mean of squares has the squared mean subtracted (E[x^2] - E[x]^2): this is LayerNorm\'s variance, not RMSNorm';
  }
  return undefined;
}
