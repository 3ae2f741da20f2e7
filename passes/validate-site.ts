/**
 * A plan whose inputs the site itself computes is refused first (the rewrite would remove them).
 * Target awareness: a planned fused node goes through the operation validator (non-strict: the
 * rmsfuse view, SPEC sections 2 and 5) with its param and the dtypes and shapes of its inputs and
 * outputs. `webgpu` and no target get the math rules only; Ascend targets also ATB's limits.
 */
import type { Graph } from '../compiler/ir/graph.js';
import type { Dim, TensorType } from '../compiler/ir/types.js';
import { dtypeName } from '../compiler/onnx/dtype.js';
import { type DType, type OutputRole, signature } from '../compiler/op/param.js';
import type { Target } from '../compiler/op/target.js';
import { type TensorSpec, validate } from '../compiler/op/validate.js';
import { fail, type Failure } from './matcher/index.js';
import { inputFromSite, type FusedPlan } from './plan.js';

/** Unknown dims become distinct symbols, so nothing unknown is taken as equal to something else. */
function spec(t: TensorType, initializer: boolean): TensorSpec {
  const shape = (t.shape ?? []).map((d: Dim, i): number | string => (d === undefined ? `?${i}` : d));
  return { dtype: dtypeName(t.dtype) as DType, shape, initializer };
}

/** The validator's verdict on a plan, as a failure with a readable reason; undefined when valid. */
export function validatePlan(g: Graph, plan: FusedPlan, target: Target): Failure | undefined {
  const own = inputFromSite(g, plan);
  if (own) return fail(`${own.role} '${own.value}' is computed inside the site itself (by ${own.node.label})`, own.node);
  const sig = signature(plan.param);
  const newInits = new Map(plan.newInitializers.map((t) => [t.name, t]));
  const typeOf = (name: string): TensorType | undefined => {
    const t = newInits.get(name);
    return t ? { dtype: t.dataType, shape: t.dims.map(Number) } : g.type(name);
  };
  const inputs = sig.inputs.map((role) => {
    const name = plan.inputs[role];
    if (!name) return undefined;
    const t = typeOf(name);
    return t ? spec(t, newInits.has(name) || g.isConstant(name)) : undefined;
  });
  const x = typeOf(plan.inputs.x ?? '');
  const outputs: TensorSpec[] = [];
  for (const role of sig.outputs) {
    const name = plan.outputs[role];
    const t = (name && typeOf(name)) || expectedOutput(role, x, plan.k);
    if (!t) return fail(`the type of output ${role} is unknown`, name);
    outputs.push(spec(t, false));
  }
  const v = validate(plan.param, inputs, outputs, target);
  if (v.ok) return undefined;
  return fail(`${v.message} (${target ?? 'no target'}: ${v.stage}:${v.error})`);
}

/** An output whose graph tensor has no known type gets the type the variant defines. */
function expectedOutput(role: OutputRole, x: TensorType | undefined, k: number): TensorType | undefined {
  if (!x) return undefined;
  switch (role) {
    case 'y': case 'sum': return x;
    case 'q': return { dtype: 3, shape: x.shape };
    case 'rstd': case 'scale': return { dtype: 1, shape: x.shape?.map((d, i, s) => (i >= s.length - k ? 1 : d)) };
  }
}
