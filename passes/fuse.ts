/**
 * Applying a FusedPlan: the fused node of SPEC section 3 (domain rmsfuse, every attribute,
 * inputs in signature order, outputs keeping the replaced tensors' names, an `overload` naming
 * the variant's model-local function), the graph edit, and the report entry. Model-level
 * additions (functions, opset import, ir_version) happen once, in `finishModel`.
 */
import { create } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  type FunctionProto,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
} from 'onnx-buf';
import type { Graph, Model, Node } from '../compiler/ir/graph.js';
import { type DecomposeIO, FUSED_ATTRIBUTE_NAMES, buildFunction, functionName } from '../compiler/op/decompose.js';
import {
  type InputRole,
  OP_TYPE,
  RMSFUSE_DOMAIN,
  RMSFUSE_OPSET_VERSION,
  type RmsNormParam,
  signature,
  toAttributes,
} from '../compiler/op/param.js';
import { type FusedSite, graphPath, type PassContext, type SiteNode } from '../compiler/pass-manager.js';
import { isAscend } from '../compiler/op/target.js';
import type { FusedPlan } from './plan.js';
import { adaptConstantsForAscend, type ConstantCache } from './target-constants.js';

/** A node of a site as the report records it (labels as in `replaced`). */
const siteNode = (n: Node): SiteNode => ({ name: n.label, op_type: n.opType, inputs: [...n.inputs], outputs: [...n.outputs] });

/** A fused node made by this run. */
export interface FusedInfo {
  param: RmsNormParam;
  io: DecomposeIO;
  /** Its report entry (updated in place when a later stage grows the node). */
  site: FusedSite;
}

/** State of one run of the fusion pass over a model. */
export class FusionState {
  readonly created = new Map<NodeProto, FusedInfo>();
  /** Constants converted for an Ascend target, per graph (shared weights are converted once). */
  readonly converted = new WeakMap<Graph, ConstantCache>();
}

function attributes(p: RmsNormParam): AttributeProto[] {
  const a = toAttributes(p);
  const T = AttributeProto_AttributeType;
  return FUSED_ATTRIBUTE_NAMES.map((name) => {
    const v = a[name];
    if (name === 'epsilon') return create(AttributeProtoSchema, { name, type: T.FLOAT, f: v as number });
    if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(v) });
    return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(v) });
  });
}

/** The DecomposeIO of a plan: what the reference function's body depends on. */
export function planIO(plan: FusedPlan, opset: number): DecomposeIO {
  const sig = signature(plan.param);
  const present = new Set<InputRole>(sig.inputs.filter((r) => plan.inputs[r]));
  return {
    xDType: plan.dtypes.x,
    gammaDType: plan.dtypes.gamma,
    ...(plan.dtypes.beta ? { betaDType: plan.dtypes.beta } : {}),
    ...(plan.dtypes.bias ? { biasDType: plan.dtypes.bias } : {}),
    ...(plan.dtypes.scale ? { scaleDType: plan.dtypes.scale } : {}),
    present,
    normalizedAxes: plan.k,
    opset,
  };
}

/** Input list in signature order: absent interior optionals as '', trailing ones left off. */
export function nodeInputs(plan: FusedPlan): string[] {
  const names = signature(plan.param).inputs.map((r) => plan.inputs[r] ?? '');
  while (names.length && names[names.length - 1] === '') names.pop();
  return names;
}

export class FusionBuilder {
  constructor(
    readonly graph: Graph,
    readonly state: FusionState,
    readonly ctx: PassContext,
    readonly opset: number,
  ) {}

  /** Replaces the plan's nodes by one fused node; returns it. */
  fuse(plan: FusedPlan): Node {
    const g = this.graph;
    plan = this.uniqueInitializerNames(plan);
    if (isAscend(this.ctx.target)) {
      let cache = this.state.converted.get(g);
      if (!cache) this.state.converted.set(g, (cache = new Map()));
      plan = adaptConstantsForAscend(g, plan, cache);
    }
    const io = planIO(plan, this.opset);
    const sig = signature(plan.param);
    const outputs = sig.outputs.map((r) => {
      const o = plan.outputs[r];
      if (!o) throw new Error(`fuse: plan has no ${r} output`);
      return o;
    });
    const opType = OP_TYPE[plan.param.layerType];
    // A grown node keeps its name when its op type stays (e.g. PreNorm that takes its quantization).
    const name = plan.grows && plan.grows.opType === opType ? plan.grows.name : g.freshName(plan.scope ? `${plan.scope}/${opType}` : opType);
    const proto = create(NodeProtoSchema, {
      name,
      opType,
      domain: RMSFUSE_DOMAIN,
      overload: functionName(plan.param, io),
      input: nodeInputs(plan),
      output: outputs,
      attribute: attributes(plan.param),
    });

    const removedOutputs = new Set(plan.remove.flatMap((n) => n.outputs));
    const siteInputs = new Set([...plan.remove, ...plan.constNodes].flatMap((n) => n.inputs));
    const replacedLabels = plan.remove.filter((n) => n !== plan.grows).map((n) => n.label);

    g.proto.initializer.push(...plan.newInitializers);
    const removedConsts = this.deadConstants(plan, new Set(proto.input));
    // Captured before the edit: the report draws the site as it was.
    const beforeNodes = [...plan.remove.filter((n) => n !== plan.grows), ...removedConsts].map(siteNode);
    const after = { inputs: [...proto.input], outputs: [...proto.output] };
    const [node] = g.replace([...plan.remove, ...removedConsts], [proto]);
    this.removeDeadInitializers(siteInputs);
    for (const n of removedConsts) for (const o of n.outputs) removedOutputs.add(o);
    // value_info of tensors that no longer exist goes; every other entry stays as it was.
    g.proto.valueInfo = g.proto.valueInfo.filter((v) => !removedOutputs.has(v.name) || g.defines(v.name));

    const attrs = toAttributes(plan.param);
    const old = plan.grows ? this.state.created.get(plan.grows.proto) : undefined;
    let site: FusedSite;
    if (old) {
      this.state.created.delete(plan.grows!.proto);
      site = old.site;
      Object.assign(site, { node: name, op_type: opType, attributes: attrs });
      site.replaced.push(...replacedLabels, ...removedConsts.map((n) => n.label));
      (site.before ??= { nodes: [] }).nodes.push(...beforeNodes);
      site.after = after;
    } else {
      site = {
        node: name,
        op_type: opType,
        attributes: attrs,
        replaced: [...replacedLabels, ...removedConsts.map((n) => n.label)],
        graph: graphPath(g),
        before: { nodes: beforeNodes },
        after,
      };
      this.ctx.report.fused.push(site);
    }
    if (plan.notes.length) site.notes = [...(site.notes ?? []), ...plan.notes];
    this.state.created.set(proto, { param: plan.param, io, site });
    return node!;
  }

  /** New initializers carry base names; give each a name unused in the model. */
  private uniqueInitializerNames(plan: FusedPlan): FusedPlan {
    if (plan.newInitializers.length === 0) return plan;
    const renamed = new Map<string, string>();
    const newInitializers = plan.newInitializers.map((t) => {
      const name = this.graph.freshName(t.name);
      renamed.set(t.name, name);
      return name === t.name ? t : create(TensorProtoSchema, { ...t, name });
    });
    const inputs = Object.fromEntries(Object.entries(plan.inputs).map(([r, v]) => [r, renamed.get(v!) ?? v])) as FusedPlan['inputs'];
    const notes = plan.notes.map((n) => [...renamed].reduce((s, [a, b]) => (a === b ? s : s.split(a).join(b)), n));
    return { ...plan, newInitializers, inputs, notes };
  }

  /**
   * Constant producers (Constant nodes, their Casts) the site read that nothing else will read
   * once the site is gone: they are part of the site. Pre-existing dead code elsewhere stays.
   */
  private deadConstants(plan: FusedPlan, fusedInputs: ReadonlySet<string>): Node[] {
    const g = this.graph;
    const gone = new Set<Node>(plan.remove);
    const dead: Node[] = [];
    for (let changed = true; changed; ) {
      changed = false;
      for (const c of plan.constNodes) {
        if (gone.has(c)) continue;
        const unused = c.outputs.every((o) => o === '' || (!g.isGraphOutput(o) && !fusedInputs.has(o) && g.consumers(o).every((u) => gone.has(u))));
        if (unused) {
          gone.add(c);
          dead.push(c);
          changed = true;
        }
      }
    }
    return dead;
  }

  /** Initializers only the site read (epsilon, exponents, axes) go with it. */
  private removeDeadInitializers(siteInputs: ReadonlySet<string>): void {
    const g = this.graph;
    const dead = new Set(
      [...siteInputs].filter((name) => {
        const v = g.values.get(name);
        return v?.initializer && !v.isGraphInput && g.consumers(name).length === 0 && !v.isGraphOutput;
      }),
    );
    g.removeInitializers(dead);
  }
}

/**
 * Model-level part of SPEC section 3, once per run: one function per distinct variant (skipping
 * functions the model already has, so a second run adds nothing), the rmsfuse opset import, and
 * ir_version >= 10 (the `overload` field). Nothing changes when nothing was fused.
 */
export function finishModel(model: Model, state: FusionState): void {
  if (state.created.size === 0) return;
  const have = new Set(model.proto.functions.map((f) => `${f.domain}\u0000${f.name}\u0000${f.overload}`));
  const add: FunctionProto[] = [];
  for (const info of state.created.values()) {
    const fn = buildFunction(info.param, info.io);
    const key = `${fn.domain}\u0000${fn.name}\u0000${fn.overload}`;
    if (have.has(key)) continue;
    have.add(key);
    add.push(fn);
  }
  add.sort((a, b) => (a.name + a.overload < b.name + b.overload ? -1 : a.name + a.overload > b.name + b.overload ? 1 : 0));
  model.proto.functions.push(...add);
  if (model.opset(RMSFUSE_DOMAIN) === undefined) {
    model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: RMSFUSE_DOMAIN, version: BigInt(RMSFUSE_OPSET_VERSION) }));
  }
  if (model.proto.irVersion < 10n) model.proto.irVersion = 10n;
}
