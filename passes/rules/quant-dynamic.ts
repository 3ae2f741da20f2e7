/**
 * Stage 4: grow a fused norm by the dynamic symmetric int8 quantization behind it: per row
 * scale = max|v| / 127, q = int8(clip(round(v / scale))) or QuantizeLinear(v, scale).
 */
import type { Node } from '../../compiler/ir/graph.js';
import { normalizeAxes, reduceAxes } from '../../compiler/ir/types.js';
import { ONNX_DTYPE } from '../../compiler/onnx/dtype.js';
import { fail, ok, p, type Match, type MatchResult, type Pattern } from '../matcher/index.js';
import { castTo, dtypeText, dtypesOf, keptNoOps, outsideUse, usedOutside, rolesOf, scopeOf, shapeText, type FusedPlan, type RuleContext } from '../plan.js';
import type { Rule } from '../rule.js';
import { validatePlan } from '../validate-site.js';
import { checkQuantSource, quantInput } from './quant-common.js';
import { restoreProblem } from './rms-norm.js';

const restore = (inner: Pattern, tag: string): Pattern => p.opt(['Unsqueeze', 'Reshape'], inner, tag);
const v = quantInput;
const absMax = restore(p.ReduceMax(p.Abs(v).as('abs')).as('reduceMax'), 'restoreMax');
const scale = restore(
  p.oneOf(
    p.Div(absMax, p.const(127, 'the divisor of max|v| (127)')).as('scaleOp'),
    p.Mul(absMax, p.const(1 / 127, 'the factor 1/127 of max|v|', 1e-3)).as('scaleOp'),
  ),
  'restoreScale',
).as('scale');
const scaled = p.Div(v, scale).as('divScale');
const lo = p.const(-128, 'the lower clip bound');
const hi = p.const(127, 'the upper clip bound');
const rounded = p.oneOf(p.Clip(p.Round(scaled).as('round'), lo, hi).as('clip'), p.Round(p.Clip(scaled, lo, hi).as('clip')).as('round'));
export const pattern: Pattern = p.oneOf(p.Cast(rounded).as('castQ'), p.QuantizeLinear(v, scale).as('quant'));

function check(m: Match, cx: RuleContext): MatchResult<FusedPlan> {
  const g = m.graph;
  const root = m.root;
  const what = `the dynamic quantization ending at ${root.label} is not fused into ${m.nodes.norm!.label}`;
  const src = checkQuantSource(m, cx, what);
  if ('ok' in src) return src;
  const { norm, old, io, xShape } = src;
  const r = xShape.length;
  const k = io.normalizedAxes ?? 1;

  // max|v| per row: over the normalized axes, keepdims (or restored right after).
  const red = m.nodes.reduceMax!;
  const axes = reduceAxes(g, red);
  const norm_ = axes && axes.length ? normalizeAxes(axes, r) : undefined;
  if (!norm_ || norm_.length !== k || norm_.some((a, i) => a !== r - k + i)) {
    return fail(`${what}: ReduceMax is over axes [${axes ?? '?'}], not the normalized axes`, red);
  }
  const keepdims = red.attrInt('keepdims') ?? 1;
  const restores = [m.nodes.restoreMax, m.nodes.restoreScale].filter((n): n is Node => !!n);
  if (keepdims === 1 && restores.length) return fail(`${what}: unexpected ${restores[0]!.opType} after a keepdims=1 ReduceMax`, restores[0]);
  if (keepdims === 0) {
    if (restores.length !== 1) return fail(`${what}: ReduceMax has keepdims=0 and nothing restores the axis`, red);
    const problem = restoreProblem(g, restores[0]!, xShape, norm_);
    if (problem) return fail(`${what}: ${problem}`, restores[0]);
  }

  // The per-row scale: fp32, x's shape with the normalized axes set to 1.
  const scaleName = m.values.scale!;
  const st = g.type(scaleName);
  if (st?.dtype !== ONNX_DTYPE.FLOAT) return fail(`${what}: the per-row scale is ${dtypeText(st?.dtype)}; the fused scale is float32`, scaleName);
  if (!st.shape || st.shape.length !== r || st.shape.some((d, i) => (i >= r - k ? d !== 1 : d !== xShape[i] && d !== undefined))) {
    return fail(`${what}: the scale ${shapeText(st.shape)} is not x's shape ${shapeText(xShape)} with the normalized axes set to 1`, scaleName);
  }

  const q = root.outputs[0]!;
  if (m.nodes.castQ) {
    if (castTo(m.nodes.castQ) !== ONNX_DTYPE.INT8) return fail(`${what}: the result is cast to ${dtypeText(castTo(m.nodes.castQ))}, not int8`, m.nodes.castQ);
  } else {
    // QuantizeLinear with a per-row scale is blocked quantization along the last axis, int8, zero point 0.
    const quant = m.nodes.quant!;
    const H = xShape[r - 1];
    const axis = quant.attrInt('axis') ?? 1;
    if (k !== 1 || quant.attrInt('block_size') !== H || (axis !== -1 && axis !== r - 1)) {
      return fail(`${what}: ${quant.label} does not quantize in blocks of one row`, quant);
    }
    const zp = quant.inputs[2] || undefined;
    if (zp) {
      const vals = g.constantValues(zp);
      if (g.type(zp)?.dtype !== ONNX_DTYPE.INT8 || !vals || vals.some((z) => z !== 0)) return fail(`${what}: the zero point is not int8 zeros (symmetric)`, quant);
    } else if (quant.attrInt('output_dtype') !== ONNX_DTYPE.INT8) {
      return fail(`${what}: without a zero point QuantizeLinear outputs uint8`, quant);
    }
  }

  const roles = rolesOf(norm, old);
  const kept = keptNoOps(g, m.site, new Set([q, scaleName, ...(roles.outputs.sum ? [roles.outputs.sum] : [])]));
  const site = m.site.filter((n) => !kept.includes(n));
  const inner = outsideUse(g, site.filter((n) => n !== norm), new Set([q, scaleName]));
  if (inner) return fail(`${what}: '${inner.value}' is also used by ${inner.user}`, inner.node);
  if (usedOutside(g, site, norm.outputs[0]!)) return fail(`${what}: the norm output '${norm.outputs[0]}' is also used elsewhere; dynamic quantization has no y output`, root);

  const param = { ...old, quantType: 'int8' as const, dynamicQuant: 'symmetric' as const };
  const outputs: FusedPlan['outputs'] = { q, scale: scaleName };
  if (old.layerType === 'PreNorm') outputs.sum = roles.outputs.sum!;
  const plan: FusedPlan = {
    param,
    inputs: { ...roles.inputs, ...(src.beta !== undefined ? { beta: src.beta } : {}) },
    outputs,
    dtypes: { ...dtypesOf(io), ...(src.betaDType ? { beta: src.betaDType } : {}) },
    k,
    remove: site,
    constNodes: [...m.constNodes],
    newInitializers: src.newInitializers,
    scope: scopeOf(norm.name),
    grows: norm,
    notes: [...src.notes, 'an all-zero row gets scale 2^-23 and q = 0, where the original graph divides 0 by 0 (the one place the fused model differs)'],
  };
  const invalid = validatePlan(g, plan, cx.target);
  if (invalid) return fail(`${what}: ${invalid.reason}`, root);
  return ok(plan);
}

// Cast<int8>(Clip(Round(v / (ReduceMax(Abs(v)) / 127)))) with v = norm.y [+ beta] -> fused node with dynamic_quant symmetric (q, scale)
export const quantDynamicRule: Rule = {
  name: 'quant-dynamic',
  pattern,
  check,
  rewrite: (m, b) => b.fuse(m.plan),
};
