/**
 * What a rule's check hands to its rewrite: the complete description of one fused node (a
 * FusedPlan), plus helpers the rules share to build and verify it (dtypes, shapes, interior
 * uses, weights broadcast along the normalized axes only, name scopes).
 */
import { create } from '@bufbuild/protobuf';
import { type TensorProto, TensorProtoSchema } from 'onnx-buf';
import type { Graph, Model, Node } from '../compiler/ir/graph.js';
import type { Dim, TensorType } from '../compiler/ir/types.js';
import { ONNX_DTYPE, dtypeName } from '../compiler/onnx/dtype.js';
import type { DecomposeIO } from '../compiler/op/decompose.js';
import { signature, type FloatDType, type InputRole, type OutputRole, type RmsNormParam } from '../compiler/op/param.js';
import type { Target } from '../compiler/op/target.js';
import { fail, isNoOp, type Failure } from './matcher/index.js';

export interface FusedPlan {
  param: RmsNormParam;
  /** Value names of the present inputs by role. */
  inputs: Partial<Record<InputRole, string>>;
  /** Value names of the outputs by role (the names of the graph tensors they replace). */
  outputs: Partial<Record<OutputRole, string>>;
  /** dtypes of the float inputs, as the function's name and body need them. */
  dtypes: { x: FloatDType; gamma: FloatDType; beta?: FloatDType; bias?: FloatDType; scale?: FloatDType };
  /** Number of trailing normalized axes (gamma's rank). */
  k: number;
  /** Nodes the fused node replaces (a grown fused node included). */
  remove: Node[];
  /** Constant producers read by the site; removed when nothing else reads them. */
  constNodes: Node[];
  /** Initializers the fused node needs that the graph lacks (ones gamma, gamma without leading 1s). */
  newInitializers: TensorProto[];
  /** Name scope of the site ('' = none): the fused node is named `${scope}/${op_type}`. */
  scope: string;
  /** The fused node this plan grows (residual Add in front, quantization behind). */
  grows?: Node;
  /** Notes for the report (e.g. a ones gamma was made). */
  notes: string[];
}

/** What rules may read besides the match: never state that check passes to rewrite. */
export interface RuleContext {
  model: Model;
  target: Target;
  /** Default-domain opset of the model. */
  opset: number;
  /**
   * A fused node made by this run, with its param and function IO; undefined for anything else
   * (earlier runs' fused nodes are never rewritten, so optimizing twice changes nothing).
   */
  fresh(n: Node): { param: RmsNormParam; io: DecomposeIO } | undefined;
}

/** The fused node's inputs and outputs by role (its signature zipped with its names). */
export function rolesOf(n: Node, param: RmsNormParam): { inputs: Partial<Record<InputRole, string>>; outputs: Partial<Record<OutputRole, string>> } {
  const sig = signature(param);
  const inputs: Partial<Record<InputRole, string>> = {};
  sig.inputs.forEach((r, i) => {
    const v = n.inputs[i];
    if (v) inputs[r] = v;
  });
  const outputs: Partial<Record<OutputRole, string>> = {};
  sig.outputs.forEach((r, i) => {
    const v = n.outputs[i];
    if (v) outputs[r] = v;
  });
  return { inputs, outputs };
}

/** The plan dtypes of a fused node from its function IO. */
export function dtypesOf(io: DecomposeIO): FusedPlan['dtypes'] {
  return {
    x: io.xDType,
    gamma: io.gammaDType,
    ...(io.betaDType ? { beta: io.betaDType } : {}),
    ...(io.biasDType ? { bias: io.biasDType } : {}),
    ...(io.scaleDType ? { scale: io.scaleDType } : {}),
  };
}

export const FLOAT_CODES: Record<number, FloatDType> = { [ONNX_DTYPE.FLOAT]: 'float32', [ONNX_DTYPE.FLOAT16]: 'float16', [ONNX_DTYPE.BFLOAT16]: 'bfloat16' };
export const FLOAT_CODE: Record<FloatDType, number> = { float32: ONNX_DTYPE.FLOAT, float16: ONNX_DTYPE.FLOAT16, bfloat16: ONNX_DTYPE.BFLOAT16 };

export const floatOf = (t: TensorType | undefined): FloatDType | undefined => (t ? FLOAT_CODES[t.dtype] : undefined);

export function shapeText(s: readonly Dim[] | undefined): string {
  return s ? `[${s.map((d) => d ?? '?').join(',')}]` : '[?]';
}

/** Dims known to be equal: the same number, or the same symbolic name. */
export const sameDim = (a: Dim, b: Dim): boolean => a !== undefined && a === b;
export const sameShape = (a: readonly Dim[] | undefined, b: readonly Dim[] | undefined): boolean =>
  !!a && !!b && a.length === b.length && a.every((d, i) => sameDim(d, b[i]));

/** The `to` dtype of a Cast node. */
export const castTo = (n: Node): number | undefined => n.attrInt('to');

/**
 * Every output of the site's nodes other than `outputs` must be read only inside the site and
 * not be a graph output; otherwise fusing would remove a value someone still needs.
 * Returns the first offending (value, user), or undefined.
 */
export function outsideUse(g: Graph, site: readonly Node[], outputs: ReadonlySet<string>): { value: string; node: Node; user: string } | undefined {
  const inSite = new Set(site);
  for (const n of site) {
    for (const o of n.outputs) {
      if (o === '' || outputs.has(o)) continue;
      if (g.isGraphOutput(o)) return { value: o, node: n, user: 'a graph output' };
      const user = g.consumers(o).find((c) => !inSite.has(c));
      if (user) return { value: o, node: n, user: user.label };
    }
  }
  return undefined;
}

/**
 * No-op Casts and Identities of the site (the matcher looks through them) whose outputs are read
 * elsewhere: they stay in the graph instead of blocking the fusion, provided what they read still
 * exists afterwards (a value from outside the site, one of `available` = the fused node's outputs,
 * or another kept node's output). E.g. torch's `x.to(float32)` on an fp32 residual sum that the
 * next layer reads too.
 */
export function keptNoOps(g: Graph, site: readonly Node[], available: ReadonlySet<string>): Node[] {
  const siteOutputs = new Set(site.flatMap((n) => n.outputs));
  const kept: Node[] = [];
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of site) {
      if (kept.includes(n) || !isNoOp(g, n) || !usedOutside(g, site, n.outputs[0] ?? '')) continue;
      const i = n.inputs[0] ?? '';
      if (!siteOutputs.has(i) || available.has(i) || kept.some((k) => k.outputs[0] === i)) {
        kept.push(n);
        changed = true;
      }
    }
  }
  return kept;
}

/**
 * An input of the planned node that the site itself computes (found by the differential fuzzer:
 * a gamma operand of shape [H] that is the norm's own keepdims=0 sum of squares). The rewrite
 * removes that producer, so such a plan can never be fused. Returns the role and value, or undefined.
 */
export function inputFromSite(g: Graph, plan: FusedPlan): { role: string; value: string; node: Node } | undefined {
  const removed = new Set(plan.remove);
  for (const [role, value] of Object.entries(plan.inputs)) {
    if (!value) continue;
    const producer = g.producer(value);
    if (producer && removed.has(producer)) return { role, value, node: producer };
  }
  return undefined;
}

/** The value is read outside the site or is a graph output. */
export function usedOutside(g: Graph, site: readonly Node[], value: string): boolean {
  const inSite = new Set(site);
  return g.isGraphOutput(value) || g.consumers(value).some((c) => !inSite.has(c));
}

/**
 * A weight (gamma, beta, bias) must broadcast along the normalized axes only: its trailing k
 * dims equal x's, and any leading dims are 1. Returns the failure, or the number of leading 1s
 * the fused node's rank-k input must drop.
 */
export function weightProblem(role: string, w: TensorType | undefined, x: readonly Dim[], k: number, at: Node | string): Failure | { drop: number } {
  if (!w?.shape) return fail(`the shape of ${role} is unknown`, at);
  const ws = w.shape;
  if (ws.length > x.length) return fail(`${role} ${shapeText(ws)} has a higher rank than x ${shapeText(x)}`, at);
  if (ws.length < k) {
    return fail(`${role} ${shapeText(ws)} has fewer dims than the ${k} normalized axes (it broadcasts within the normalized axes)`, at);
  }
  const lead = ws.length - k;
  const tail = ws.slice(lead);
  const xTail = x.slice(x.length - k);
  const badLead = ws.slice(0, lead).findIndex((d) => d !== 1);
  if (badLead >= 0) {
    return fail(`${role} ${shapeText(ws)} varies along axis ${x.length - ws.length + badLead} of x ${shapeText(x)}, which is not normalized`, at);
  }
  if (!sameShape(tail, xTail)) {
    return fail(`${role} ${shapeText(ws)} does not match x's normalized dims ${shapeText(xTail)} (it would broadcast along another axis)`, at);
  }
  return { drop: lead };
}

/**
 * A copy of a constant weight with its leading 1s dropped (a new initializer). Its name is a
 * base the fusion builder makes unique when it adds the initializer (checks allocate no names).
 */
export function reshapedConstant(g: Graph, name: string, k: number): TensorProto | undefined {
  const c = g.constantTensor(name);
  if (!c?.tensor) return undefined;
  const t = c.tensor;
  const dims = t.dims.slice(t.dims.length - k);
  return create(TensorProtoSchema, { ...t, name: `${name}_rank${k}`, dims });
}

/** An initializer of ones with shape `dims` (a norm without gamma fuses with gamma = 1); `base` is made unique when added. */
export function onesInitializer(base: string, dtype: FloatDType, dims: number[]): TensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  const one = { float32: [0x00, 0x00, 0x80, 0x3f], float16: [0x00, 0x3c], bfloat16: [0x80, 0x3f] }[dtype];
  const raw = new Uint8Array(n * one.length);
  for (let i = 0; i < n; i++) raw.set(one, i * one.length);
  return create(TensorProtoSchema, { name: base, dims: dims.map(BigInt), dataType: FLOAT_CODE[dtype], rawData: raw });
}

/**
 * The name scope shared by the site's nodes: the longest common '/'-separated prefix of their
 * names, e.g. `/model/layers.0/input_layernorm` for `/model/layers.0/input_layernorm/Pow`, ...
 * '' when the names share none.
 */
export function commonScope(nodes: readonly Node[]): string {
  const dirs = nodes.map((n) => n.name).filter((s) => s.includes('/')).map((s) => s.split('/').slice(0, -1));
  if (dirs.length === 0) return '';
  let common = dirs[0]!;
  for (const d of dirs.slice(1)) {
    let i = 0;
    while (i < common.length && i < d.length && common[i] === d[i]) i++;
    common = common.slice(0, i);
  }
  const scope = common.join('/');
  return scope === '' || scope === '/' ? '' : scope;
}

/** The scope of a fused node's own name (what grown nodes keep). */
export function scopeOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i > 0 ? name.slice(0, i) : '';
}

export const dtypeText = (code: number | undefined): string => (code === undefined ? 'unknown' : dtypeName(code));
