/**
 * Stage 2: grow a fused RmsNorm by the residual Add in front of it (PreNorm / PostNorm).
 */
import { fail, ok, p, type Match, type MatchResult, type Pattern } from '../matcher/index.js';
import {
  dtypeText,
  dtypesOf,
  keptNoOps,
  floatOf,
  outsideUse,
  reshapedConstant,
  rolesOf,
  sameShape,
  scopeOf,
  shapeText,
  usedOutside,
  weightProblem,
  type FusedPlan,
  type RuleContext,
} from '../plan.js';
import type { Rule } from '../rule.js';
import { validatePlan } from '../validate-site.js';

/** x + residual: x is the Add's first operand, residual its second (SPEC section 2). */
const add = p.op('Add', [p.var('x'), p.var('residual')]).as('add');
/** `operand + bias` (either order): a Linear's bias, added before the residual Add. */
const biased = (operand: string): Pattern => p.Add(p.var(operand), p.var('bias')).as('operandBiasAdd');
/**
 * With an optional constant bias: added to the sum (either operand order), or to one operand of
 * the residual Add, as a Linear layer with a bias exports it (`residual + (h @ W + b)`); the sum
 * is the same. Preferred to the plain Add, so the bias joins the fused node rather than staying
 * in front of it; a non-constant "bias" fails the check and the plain Add is taken instead.
 */
export const pattern: Pattern = p
  .Fused(
    ['RmsNorm'],
    [
      p.oneOf(
        p.Add(add, p.var('bias')).as('biasAdd'),
        p.op('Add', [biased('x'), p.var('residual')]).as('add'),
        p.op('Add', [p.var('x'), biased('residual')]).as('add'),
        add,
      ),
    ],
  )
  .as('norm');

function check(m: Match, cx: RuleContext): MatchResult<FusedPlan> {
  const g = m.graph;
  const norm = m.nodes.norm!;
  const fused = cx.fresh(norm);
  if (!fused) return fail(`${norm.label} was fused by an earlier run and is not rewritten`, norm, { quiet: true });
  const { param: old, io } = fused;
  const addNode = m.nodes.add!;
  const biasAdd = m.nodes.biasAdd ?? m.nodes.operandBiasAdd;
  const x = m.values.x!;
  const residual = m.values.residual!;
  const bias = m.values.bias;
  const sum = (m.nodes.biasAdd ?? addNode).outputs[0]!;
  const what = `the residual Add ${addNode.label} is not fused into ${norm.label}`;

  // Two activations of equal shape; a constant operand is a bias add, not a residual.
  if (g.isConstant(x) || g.isConstant(residual)) return fail(`${addNode.label} adds a constant: not a residual Add`, addNode, { quiet: true });
  const xt = g.type(x);
  const rt = g.type(residual);
  if (floatOf(xt) !== io.xDType || floatOf(rt) !== io.xDType) {
    return fail(`${what}: x is ${dtypeText(xt?.dtype)} and residual ${dtypeText(rt?.dtype)}, not both ${io.xDType}`, addNode);
  }
  if (!sameShape(xt!.shape, rt!.shape)) {
    return fail(`${what}: x ${shapeText(xt!.shape)} and residual ${shapeText(rt!.shape)} are not the same shape (the Add broadcasts)`, addNode);
  }

  const newInitializers = [];
  const notes: string[] = [];
  let biasName = bias;
  if (bias !== undefined) {
    if (!g.isConstant(bias)) return fail(`${what}: the bias ${bias} is not a constant`, biasAdd, { quiet: true });
    const bt = g.type(bias);
    const bd = floatOf(bt);
    if (!bd) return fail(`${what}: the bias is ${dtypeText(bt?.dtype)}`, biasAdd);
    const shape = weightProblem('bias', bt, xt!.shape!, io.normalizedAxes ?? 1, bias);
    if ('ok' in shape) return fail(`${what}: ${shape.reason}`, biasAdd);
    if (shape.drop > 0) {
      const t = reshapedConstant(g, bias, io.normalizedAxes ?? 1)!;
      newInitializers.push(t);
      notes.push(`bias ${shapeText(bt?.shape)} stored as ${t.name}`);
      biasName = t.name;
    }
  }

  // The inner sum of a biased residual is interior; the final sum is PreNorm's second output.
  // No-op Casts between the sum and the norm that others read stay, reading the sum.
  const kept = keptNoOps(g, m.site, new Set([sum]));
  const site = m.site.filter((n) => !kept.includes(n));
  const inner = outsideUse(g, site.filter((n) => n !== norm), new Set([sum, ...norm.outputs]));
  if (inner) return fail(`${what}: '${inner.value}' is also used by ${inner.user}`, inner.node);
  const pre = usedOutside(g, site, sum);

  const roles = rolesOf(norm, old);
  const param = { ...old, layerType: pre ? ('PreNorm' as const) : ('PostNorm' as const), hasBias: bias !== undefined };
  const bdt = bias !== undefined ? floatOf(g.type(bias)) : undefined;
  const plan: FusedPlan = {
    param,
    inputs: { x, residual, gamma: roles.inputs.gamma!, ...(biasName !== undefined ? { bias: biasName } : {}) },
    outputs: pre ? { y: roles.outputs.y!, sum } : { y: roles.outputs.y! },
    dtypes: { ...dtypesOf(io), ...(bdt ? { bias: bdt } : {}) },
    k: io.normalizedAxes ?? 1,
    remove: site,
    constNodes: [...m.constNodes],
    newInitializers,
    scope: scopeOf(norm.name),
    grows: norm,
    notes,
  };
  const invalid = validatePlan(g, plan, cx.target);
  if (invalid) return fail(`${what}: ${invalid.reason}`, addNode);
  return ok(plan);
}

// RmsNorm(Add(x, residual) [+ bias], or Add(x + bias, residual)) -> PreNorm(x, bias, residual, gamma) when the sum is used elsewhere, else PostNorm
export const residualRule: Rule = {
  name: 'residual',
  pattern,
  freshRootsOnly: true,
  anchor: (m) => m.nodes.add ?? m.root,
  check,
  rewrite: (m, b) => b.fuse(m.plan),
};
