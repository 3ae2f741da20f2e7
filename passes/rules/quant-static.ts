/**
 * Stage 3: grow a fused norm by the static int8 QuantizeLinear behind it (per-tensor scale and
 * int8 zero point; an optional beta Add in front). In QDQ pairs the DequantizeLinear stays.
 */
import { ONNX_DTYPE } from '../../compiler/onnx/dtype.js';
import { fail, ok, p, type Match, type MatchResult, type Pattern } from '../matcher/index.js';
import { dtypeText, dtypesOf, floatOf, keptNoOps, outsideUse, usedOutside, rolesOf, scopeOf, shapeText, type FusedPlan, type RuleContext } from '../plan.js';
import type { Rule } from '../rule.js';
import { validatePlan } from '../validate-site.js';
import { checkQuantSource, quantInput } from './quant-common.js';

export const pattern: Pattern = p.QuantizeLinear(quantInput, p.var('scale')).as('quant');

function check(m: Match, cx: RuleContext): MatchResult<FusedPlan> {
  const g = m.graph;
  const quant = m.nodes.quant!;
  const what = `${quant.label} is not fused into ${m.nodes.norm!.label}`;
  const src = checkQuantSource(m, cx, what);
  if ('ok' in src) return src;
  const { norm, old, io } = src;

  // Per-tensor scale, int8 zero point (or output_dtype int8 without one).
  const scale = m.values.scale!;
  const st = g.type(scale);
  const scaleDType = floatOf(st);
  if (!scaleDType) return fail(`${what}: the scale is ${dtypeText(st?.dtype)}`, quant);
  if (!st!.shape || st!.shape.some((d) => d !== 1)) return fail(`${what}: the scale ${shapeText(st!.shape)} is not a single value (per-axis quantization)`, quant);
  // A constant scale of 0 or a non-finite one makes v / scale an infinity or NaN, whose int8
  // value ONNX leaves to the implementation (onnxruntime and the fused node differ).
  const scaleValue = g.constantValues(scale)?.[0];
  if (scaleValue !== undefined && !(scaleValue !== 0 && Number.isFinite(scaleValue))) return fail(`${what}: the scale is ${scaleValue}, not a non-zero finite number`, quant);
  if ((quant.attrInt('block_size') ?? 0) !== 0) return fail(`${what}: blocked quantization`, quant);
  const zp = quant.inputs[2] || undefined;
  if (zp) {
    const zt = g.type(zp);
    if (zt?.dtype !== ONNX_DTYPE.INT8) return fail(`${what}: the zero point is ${dtypeText(zt?.dtype)}; only int8 is fused`, quant);
    if (!zt.shape || zt.shape.some((d) => d !== 1)) return fail(`${what}: the zero point ${shapeText(zt.shape)} is not a single value`, quant);
  } else if (quant.attrInt('output_dtype') !== ONNX_DTYPE.INT8) {
    return fail(`${what}: without a zero point QuantizeLinear outputs uint8; only int8 is fused`, quant);
  }

  // Interior values (the beta sum, casts) must not be used elsewhere; y only by PostNorm.
  const q = quant.outputs[0]!;
  const yName = norm.outputs[0]!;
  const roles = rolesOf(norm, old);
  const kept = keptNoOps(g, m.site, new Set([q, ...(roles.outputs.sum ? [roles.outputs.sum] : []), ...(old.layerType === 'PostNorm' ? [yName] : [])]));
  const site = m.site.filter((n) => !kept.includes(n));
  const inner = outsideUse(g, site.filter((n) => n !== norm), new Set([q]));
  if (inner) return fail(`${what}: '${inner.value}' is also used by ${inner.user}`, inner.node);
  if (usedOutside(g, site, yName) && old.layerType !== 'PostNorm') {
    return fail(`${what}: the norm output '${yName}' is also used elsewhere, and only PostNorm keeps y next to q`, quant);
  }
  if (old.layerType === 'PostNorm' && src.beta !== undefined) return fail(`${what}: PostNorm with int8 quantization has no beta input`, quant);

  const param = { ...old, quantType: 'int8' as const, dynamicQuant: 'none' as const };
  const outputs: FusedPlan['outputs'] = { q };
  if (old.layerType === 'PreNorm') outputs.sum = roles.outputs.sum!;
  if (old.layerType === 'PostNorm') outputs.y = yName;
  const plan: FusedPlan = {
    param,
    inputs: {
      ...roles.inputs,
      ...(src.beta !== undefined ? { beta: src.beta } : {}),
      scale,
      ...(zp ? { offset: zp } : {}),
    },
    outputs,
    dtypes: { ...dtypesOf(io), scale: scaleDType, ...(src.betaDType ? { beta: src.betaDType } : {}) },
    k: io.normalizedAxes ?? 1,
    remove: site,
    constNodes: [...m.constNodes],
    newInitializers: src.newInitializers,
    scope: scopeOf(norm.name),
    grows: norm,
    notes: src.notes,
  };
  const invalid = validatePlan(g, plan, cx.target);
  if (invalid) return fail(`${what}: ${invalid.reason}`, quant);
  return ok(plan);
}

// QuantizeLinear(norm.y [+ beta], scale, int8 zp) -> RmsNorm/PreNorm/PostNorm with quant_type int8
export const quantStaticRule: Rule = {
  name: 'quant-static',
  pattern,
  check,
  rewrite: (m, b) => b.fuse(m.plan),
};
