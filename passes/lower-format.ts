/**
 * Output formats (SPEC section 3): after fusion, rewrite fused rmsfuse nodes into the standard
 * ops of `--format ort` or `--format onnx23` wherever the variant's semantics match exactly;
 * every other variant stays an rmsfuse node (with its function), and the report says why.
 *
 * The op semantics, as measured with onnxruntime-node 1.31 (test/passes/format.test.ts):
 *
 * - SimplifiedLayerNormalization (ORT registers it in the ONNX domain ''): X is read into fp32,
 *   `Y = V(x / sqrt(mean(x^2) + eps) * fp32(scale))` with one rounding at the end, inv_std_var
 *   fp32 with the normalized axes set to 1. That is rmsfuse's high_precision Norm and its rstd
 *   (bit for bit in fp16). Y has the scale's dtype V, so an fp32 gamma with fp16 x lowers to
 *   SLN + Cast, still one rounding to T. For an axis other than -1, onnxruntime's shape
 *   inference gives inv_std_var x's full shape and a run can fail on it: an rstd output over
 *   more than the last axis stays rmsfuse.
 * - high_performance is `T(T(x*rstd) * T(gamma))`, two roundings; SLN rounds once (the last bit
 *   differs on ~25% of elements), so it stays rmsfuse in --format ort. (SLN(x, ones) -> Mul would
 *   spell it, but onnxruntime's CPU provider runs such fp16 chains in fp32 and drops both
 *   roundings, which measured outside SPEC tolerance.)
 * - com.microsoft.SkipSimplifiedLayerNormalization normalizes the *unrounded* fp32 sum
 *   x + skip + bias and outputs that sum rounded to T; rmsfuse normalizes T(sum). Equal in fp32
 *   only. In fp16 (no bias) the site is Add (rounds the sum to T once) -> SLN; an fp16 bias would
 *   need x + residual + bias rounded once, which two Adds do not do: it stays.
 * - ONNX RMSNormalization (opset 23) casts `Normalized` back to T and multiplies by the scale in V,
 *   so in fp16 it *is* high_performance (gamma in T). A high_precision fp16 Norm lowers to
 *   Cast(fp32) -> RMSNormalization -> Cast(T), one rounding. RMSNormalization has no rstd output.
 * - gemma multiplies by (1 + gamma) computed in fp32: the scale becomes Add(fp32(gamma), 1), which
 *   onnxruntime folds for an initializer gamma (its own optimizer fuses HF Gemma the same way).
 * - No standard op quantizes: int8 variants stay.
 * - bf16 stays: onnxruntime's CPU provider has no bf16 kernels to check a lowering against.
 *
 * A runtime may still compute an fp16 graph more precisely than its ops say: onnxruntime's CPU
 * provider runs fp16 ops without fp16 kernels (Add, Mul) in fp32 and then drops the fp16
 * rounding between them ("InsertedPrecisionFreeCast"), so on CPU an Add -> SLN site may normalize
 * the unrounded sum. That costs at most one fp16 rounding step (within SPEC tolerance); the
 * lowered graph itself is exact.
 *
 * New node names derive from the fused node's name; output names never change.
 */
import { create } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  type FunctionProto,
  type GraphProto,
  type NodeProto,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
} from 'onnx-buf';
import { RmsfuseError } from '../compiler/errors.js';
import { type Graph, type Model, type Node, newNode } from '../compiler/ir/graph.js';
import { inferNodeTypes } from '../compiler/ir/types.js';
import { ONNX_DTYPE } from '../compiler/onnx/dtype.js';
import { graphPath, type Pass, type PassContext } from '../compiler/pass-manager.js';
import {
  type FloatDType,
  type InputRole,
  type OutputRole,
  RMSFUSE_DOMAIN,
  type RmsNormParam,
  signature,
} from '../compiler/op/param.js';
import type { OutputFormat } from './index.js';

import { fusedParam, isFusedNode } from '../compiler/ir/fused.js';

export const MS_DOMAIN = 'com.microsoft';

// Attribute reading and writing on plain NodeProtos (function bodies have no IR Node).
const AT = AttributeProto_AttributeType;
const attr = (n: NodeProto, name: string): AttributeProto | undefined => n.attribute.find((a) => a.name === name);
const readInts = (n: NodeProto, name: string): number[] | undefined => (attr(n, name)?.type === AT.INTS ? attr(n, name)!.ints.map(Number) : undefined);
const intAttr = (name: string, i: number): AttributeProto => create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(i) });
const floatAttr = (name: string, f: number): AttributeProto => create(AttributeProtoSchema, { name, type: AT.FLOAT, f });

/** Refuses a format the model cannot take: RMSNormalization exists from opset 23 on. */
export function checkFormat(model: Model, format: OutputFormat): void {
  if (format !== 'onnx23') return;
  const opset = model.opset('');
  if (opset === undefined || opset < 23) {
    throw new RmsfuseError(
      `--format onnx23 writes ONNX RMSNormalization, which exists from opset 23 on, but this model imports ` +
        `${opset === undefined ? 'no default ONNX opset' : `opset ${opset}`}; use --format rmsfuse or --format ort, ` +
        `or convert the model to opset 23 first`,
    );
  }
}

const FLOAT_OF_CODE: Record<number, FloatDType> = {
  [ONNX_DTYPE.FLOAT]: 'float32',
  [ONNX_DTYPE.FLOAT16]: 'float16',
  [ONNX_DTYPE.BFLOAT16]: 'bfloat16',
};
const CODE_OF_FLOAT: Record<FloatDType, number> = { float32: ONNX_DTYPE.FLOAT, float16: ONNX_DTYPE.FLOAT16, bfloat16: ONNX_DTYPE.BFLOAT16 };
const SHORT_DTYPE: Record<string, FloatDType> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/** A fused node read back: its param, which tensor plays which role, dtypes and shapes. */
interface FusedSiteInfo {
  node: Node;
  param: RmsNormParam;
  inputs: Partial<Record<InputRole, string>>;
  outputs: Partial<Record<OutputRole, string>>;
  xDType?: FloatDType;
  gammaDType?: FloatDType;
  biasDType?: FloatDType;
  /** Number of trailing normalized axes. */
  k: number;
  gammaShape?: number[];
  xRank?: number;
}

/** The model-local function a fused node calls (by domain, op type and overload). */
function functionOf(model: Model, n: Node): FunctionProto | undefined {
  return model.proto.functions.find((f) => f.domain === RMSFUSE_DOMAIN && f.name === n.opType && f.overload === n.proto.overload);
}

/**
 * k, the number of normalized axes: read from the ReduceMean of the node's reference function
 * (the one place the fused node records it), else from the overload's `_k<n>` part, else 1.
 */
function normalizedAxes(model: Model, n: Node): number {
  const fn = functionOf(model, n);
  const rm = fn?.node.find((x) => x.opType === 'ReduceMean');
  if (rm && fn) {
    const axes = readInts(rm, 'axes');
    if (axes) return axes.length;
    const c = fn.node.find((x) => x.opType === 'Constant' && x.output[0] === rm.input[1]);
    const t = c?.attribute.find((a) => a.name === 'value')?.t;
    if (t) return Number(t.dims[0] ?? 1n);
  }
  const m = /_k(\d+)(_|$)/.exec(n.proto.overload);
  return m ? Number(m[1]) : 1;
}

/** dtypes as the overload name spells them (`prenorm_f16_..._gf32`): a fallback for unknown types. */
function dtypesFromOverload(overload: string): { x?: FloatDType; gamma?: FloatDType } {
  const parts = overload.split('_');
  const x = SHORT_DTYPE[parts[1] ?? ''];
  const g = parts.map((p) => /^g(f32|f16|bf16)$/.exec(p)?.[1]).find((v) => v !== undefined);
  return { x, gamma: g ? SHORT_DTYPE[g] : x };
}

function readSite(g: Graph, n: Node): FusedSiteInfo | string {
  const param = fusedParam(n);
  if (typeof param === 'string') return param;
  const sig = signature(param);
  const inputs: Partial<Record<InputRole, string>> = {};
  sig.inputs.forEach((r, i) => {
    const name = n.inputs[i];
    if (name) inputs[r] = name;
  });
  const outputs: Partial<Record<OutputRole, string>> = {};
  sig.outputs.forEach((r, i) => {
    const name = n.outputs[i];
    if (name) outputs[r] = name;
  });
  const dt = (name?: string): FloatDType | undefined => {
    const code = name ? g.type(name)?.dtype : undefined;
    return code === undefined ? undefined : FLOAT_OF_CODE[code];
  };
  const fromName = dtypesFromOverload(n.proto.overload);
  const xType = inputs.x ? g.type(inputs.x) : undefined;
  const gammaType = inputs.gamma ? g.type(inputs.gamma) : undefined;
  const gammaShape = gammaType?.shape?.every((d) => typeof d === 'number') ? (gammaType.shape as number[]) : undefined;
  return {
    node: n,
    param,
    inputs,
    outputs,
    xDType: dt(inputs.x) ?? dt(inputs.residual) ?? fromName.x,
    gammaDType: dt(inputs.gamma) ?? fromName.gamma,
    biasDType: dt(inputs.bias),
    k: normalizedAxes(g.model, n),
    gammaShape,
    xRank: xType?.shape?.length ?? (inputs.residual ? g.type(inputs.residual)?.shape?.length : undefined),
  };
}

/**
 * Types for the outputs of fused nodes (and what follows them), which the IR's inference does
 * not know: y and sum have x's type, rstd and scale are fp32 rows, q is int8.
 */
function inferTypesThroughFusedNodes(g: Graph): void {
  for (const n of g.nodes) {
    if (!isFusedNode(n)) {
      inferNodeTypes(g, n);
      continue;
    }
    const site = readSite(g, n);
    if (typeof site === 'string' || !site.inputs.x) continue;
    const x = g.type(site.inputs.x) ?? (site.inputs.residual ? g.type(site.inputs.residual) : undefined);
    if (!x) continue;
    const rowShape = x.shape?.map((d, i) => (i >= x.shape!.length - site.k ? 1 : d));
    const typeOf: Record<OutputRole, typeof x> = {
      y: x,
      sum: x,
      q: { dtype: ONNX_DTYPE.INT8, shape: x.shape },
      rstd: { dtype: ONNX_DTYPE.FLOAT, shape: rowShape },
      scale: { dtype: ONNX_DTYPE.FLOAT, shape: rowShape },
    };
    for (const [role, name] of Object.entries(site.outputs) as [OutputRole, string][]) {
      const v = g.values.get(name);
      if (v && !v.type) v.type = typeOf[role];
    }
  }
}

/** Builds the replacement nodes of one site; names derive from the fused node's name. */
class Emitter {
  readonly nodes: NodeProto[] = [];
  constructor(
    private readonly g: Graph,
    private readonly base: string,
  ) {}

  op(opType: string, inputs: string[], outputs: (string | undefined)[], attrs: NodeProto['attribute'] = [], domain = '', main = false): string[] {
    const name = main ? this.base : this.g.freshName(`${this.base}/${opType}`);
    const outs = outputs.map((o, i) => o ?? this.g.freshName(`${name}_output_${i}`));
    this.nodes.push(newNode({ name, opType, domain, input: inputs, output: outs, attribute: attrs }));
    return outs;
  }

  constF32(v: number): string {
    const t = create(TensorProtoSchema, { dims: [], dataType: ONNX_DTYPE.FLOAT, floatData: [v] });
    return this.op('Constant', [], [undefined], [create(AttributeProtoSchema, { name: 'value', type: AT.TENSOR, t })])[0]!;
  }

  cast(v: string, to: FloatDType, out?: string): string {
    return this.op('Cast', [v], [out], [intAttr('to', CODE_OF_FLOAT[to])])[0]!;
  }

  /** v as `to`, casting when its dtype differs (widening casts are exact). */
  as(v: string, from: FloatDType, to: FloatDType): string {
    return from === to ? v : this.cast(v, to);
  }
}

/** What a lowering produced: the op type the report names, and the nodes it wrote. */
interface Lowered {
  opType: string;
  what: string;
}

const T32 = 'float32';
const OTHERS = { ort: 'onnxruntime', onnx23: 'standard ONNX' } as const;

/** Why a site cannot be lowered exactly (undefined: it can). Decided before anything is emitted. */
function refusal(site: FusedSiteInfo, format: 'ort' | 'onnx23'): string | undefined {
  const p = site.param;
  const T = site.xDType, G = site.gammaDType;
  if (p.quantType !== 'none') return `no ${OTHERS[format]} op quantizes`;
  if (!T || !G) return 'the dtype of x or gamma is unknown';
  if (T === 'bfloat16' || G === 'bfloat16') return "bf16: onnxruntime's CPU provider has no bf16 kernels to check the lowering against";
  if (!site.inputs.x || !site.inputs.gamma || !site.outputs.y) return 'the node lacks x, gamma or y';
  if (p.modelType === 'gemma' && p.precisionMode === 'high_performance') return 'gemma with high_performance is not a valid variant';
  if (p.layerType !== 'Norm' && !site.inputs.residual) return 'the node lacks its residual input';
  if (site.inputs.bias && !site.biasDType) return 'the dtype of bias is unknown';
  if (format === 'onnx23' && p.rstd) return 'RMSNormalization has no rstd output';
  // Measured with onnxruntime-node 1.31: it infers inv_std_var of an axis other than -1 with x's
  // full shape, and a run whose memory plan reuses that buffer fails ("Shape mismatch attempting
  // to re-use buffer"); found by the differential fuzzer.
  if (format === 'ort' && p.rstd && site.k !== 1) return "onnxruntime infers SimplifiedLayerNormalization's inv_std_var with the wrong shape when it normalizes more than the last axis";
  // high_performance in fp32 is high_precision: rounding to fp32 changes nothing.
  if (format === 'ort' && p.precisionMode === 'high_performance' && T !== T32) {
    return 'high_performance rounds twice, T(T(x*rstd) * gamma); SimplifiedLayerNormalization rounds once';
  }
  if (site.inputs.bias && T !== T32 && !skipFits(site, format)) {
    return `an ${T === 'float16' ? 'fp16' : T} bias needs x + residual + bias rounded once; two Adds round twice`;
  }
  return undefined;
}

/** SkipSimplifiedLayerNormalization: fp32 only (it normalizes the unrounded sum), 2-D/3-D x, 1-D gamma. */
function skipFits(site: FusedSiteInfo, format: 'ort' | 'onnx23'): boolean {
  return (
    format === 'ort' &&
    site.param.layerType !== 'Norm' &&
    site.xDType === T32 &&
    site.k === 1 &&
    (site.xRank === 2 || site.xRank === 3) &&
    site.gammaShape?.length === 1
  );
}

/** Emits the lowering of a site that `refusal` accepted. */
function lowerSite(site: FusedSiteInfo, format: 'ort' | 'onnx23', e: Emitter): Lowered {
  const p = site.param;
  const T = site.xDType!, G = site.gammaDType!;
  const { x, residual, gamma, bias } = site.inputs as Required<FusedSiteInfo['inputs']>;
  const y = site.outputs.y!;
  const eps = floatAttr('epsilon', p.epsilon);
  const axis = intAttr('axis', -site.k);
  const stash = intAttr('stash_type', 1);
  const sumOut = p.layerType === 'PreNorm' ? site.outputs.sum : undefined;
  const gemma = p.modelType === 'gemma';
  /** gamma as the op's scale in dtype V; gemma: 1 + gamma in fp32 (V is then always fp32). */
  const scale = (V: FloatDType): string => (gemma ? e.op('Add', [e.as(gamma, G, T32), e.constF32(1)], [undefined])[0]! : e.as(gamma, G, V));

  if (skipFits(site, format)) {
    const inputs = [x, residual, scale(T32)];
    if (bias) inputs.push(e.as(bias, site.biasDType!, T32));
    e.op('SkipSimplifiedLayerNormalization', inputs, sumOut ? [y, '', '', sumOut] : [y], [eps], MS_DOMAIN, true);
    return { opType: `${MS_DOMAIN}.SkipSimplifiedLayerNormalization`, what: 'SkipSimplifiedLayerNormalization' };
  }

  const steps: string[] = [];
  let s = x;
  if (p.layerType !== 'Norm') {
    // Add rounds x + residual to T once: the T(sum) that rmsfuse normalizes (and outputs).
    s = e.op('Add', [x, residual], [bias ? undefined : sumOut])[0]!;
    if (bias) s = e.op('Add', [s, e.as(bias, site.biasDType!, T)], [sumOut])[0]!;
    steps.push(bias ? 'Add + Add' : 'Add');
  }

  if (format === 'ort') {
    // Y has the scale's dtype V: with gamma in T that is y; otherwise widen gamma to fp32 (exact),
    // and round the fp32 result to T once.
    const V: FloatDType = G === T && !gemma ? T : T32;
    const outs = [V === T ? y : undefined, ...(p.rstd && site.outputs.rstd ? [site.outputs.rstd] : [])];
    const sln = e.op('SimplifiedLayerNormalization', [s, scale(V)], outs, [axis, eps, stash], '', true);
    if (V !== T) e.cast(sln[0]!, T, y);
    steps.push(V === T ? 'SimplifiedLayerNormalization' : 'SimplifiedLayerNormalization + Cast');
    return { opType: 'SimplifiedLayerNormalization', what: steps.join(' + ') };
  }

  // onnx23: RMSNormalization rounds Normalized to T, then multiplies by the scale in V = T.
  if (T === T32 || p.precisionMode === 'high_performance') {
    e.op('RMSNormalization', [s, scale(T)], [y], [axis, eps, stash], '', true);
    steps.push('RMSNormalization');
  } else {
    // high_precision below fp32: normalize and scale in fp32, round to T once at the end.
    const y32 = e.op('RMSNormalization', [e.cast(s, T32), scale(T32)], [undefined], [axis, eps, stash], '', true)[0]!;
    e.cast(y32, T, y);
    steps.push('Cast + RMSNormalization + Cast');
  }
  return { opType: 'RMSNormalization', what: steps.join(' + ') };
}

const FORMAT_FLAG = { ort: '--format ort', onnx23: '--format onnx23' } as const;

function lowerGraph(g: Graph, ctx: PassContext, format: 'ort' | 'onnx23'): Record<string, number> {
  const counts: Record<string, number> = {};
  if (!g.nodes.some(isFusedNode)) return counts;
  inferTypesThroughFusedNodes(g);
  const path = graphPath(g);
  const replacement = new Map<NodeProto, NodeProto[]>();
  for (const n of g.nodes) {
    if (!isFusedNode(n)) continue;
    const site = readSite(g, n);
    const entry = ctx.report.fused.find((f) => f.node === n.name && f.graph === path);
    const emitter = new Emitter(g, n.name || g.freshName(`${n.opType}_lowered`));
    const result = typeof site === 'string' ? site : (refusal(site, format) ?? lowerSite(site, format, emitter));
    if (typeof result === 'string') {
      counts[`kept-${n.opType}`] = (counts[`kept-${n.opType}`] ?? 0) + 1;
      const note = `stays ${RMSFUSE_DOMAIN}.${n.opType} in ${FORMAT_FLAG[format]}: ${result}`;
      if (entry) (entry.notes ??= []).push(note);
      if (ctx.debug) ctx.log(`lower-format: ${n.label}: ${note}`);
      continue;
    }
    replacement.set(n.proto, emitter.nodes);
    counts[result.opType] = (counts[result.opType] ?? 0) + 1;
    if (entry) {
      (entry.notes ??= []).push(`lowered for ${FORMAT_FLAG[format]} to ${result.what} (from ${RMSFUSE_DOMAIN}.${n.opType}, same semantics)`);
      entry.op_type = result.opType;
    }
  }
  if (replacement.size === 0) return counts;
  // Each site becomes nodes at the fused node's place that read only what it read: the order stays valid.
  g.proto.node = g.proto.node.flatMap((p) => replacement.get(p) ?? [p]);
  g.reindex();
  return counts;
}

/** Every node of every graph and function body, subgraphs included. */
function* allNodeProtos(model: Model): Generator<NodeProto> {
  function* walk(nodes: NodeProto[]): Generator<NodeProto> {
    for (const n of nodes) {
      yield n;
      for (const a of n.attribute) {
        const graphs: GraphProto[] = [...(a.g ? [a.g] : []), ...a.graphs];
        for (const sub of graphs) yield* walk(sub.node);
      }
    }
  }
  yield* walk(model.proto.graph!.node);
  for (const f of model.proto.functions) yield* walk(f.node);
}

/**
 * Model-level tidy-up: drop rmsfuse functions no node calls any more, the rmsfuse opset import
 * when nothing uses the domain, and import com.microsoft when a node now needs it.
 */
export function tidyOpsetsAndFunctions(model: Model): void {
  const called = new Set<string>();
  for (const n of allNodeProtos(model)) if (n.domain === RMSFUSE_DOMAIN) called.add(`${n.opType}\u0000${n.overload}`);
  model.proto.functions = model.proto.functions.filter((f) => f.domain !== RMSFUSE_DOMAIN || called.has(`${f.name}\u0000${f.overload}`));
  const domains = new Set<string>();
  for (const n of allNodeProtos(model)) domains.add(n.domain);
  if (!domains.has(RMSFUSE_DOMAIN)) model.proto.opsetImport = model.proto.opsetImport.filter((o) => o.domain !== RMSFUSE_DOMAIN);
  if (domains.has(MS_DOMAIN) && model.opset(MS_DOMAIN) === undefined) {
    model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: MS_DOMAIN, version: 1n }));
  }
}

/**
 * The lowering pass; runs after the fusion passes. For `rmsfuse` it does nothing, so it can sit
 * in every pipeline.
 */
export function lowerFormatPass(format: OutputFormat): Pass {
  return {
    name: 'lower-format',
    run(graph, ctx) {
      if (format === 'rmsfuse') return {};
      if (!graph.owner) checkFormat(ctx.model, format);
      return lowerGraph(graph, ctx, format);
    },
    finish(ctx) {
      if (format !== 'rmsfuse') tidyOpsetsAndFunctions(ctx.model);
    },
  };
}
