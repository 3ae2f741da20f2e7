/**
 * Pass-test harness: optimize a model through the same path the driver uses (Model over the
 * decoded bytes, type inference, the default passes under the pass manager) and compare the
 * original and optimized models numerically in onnxruntime-node.
 */
import { clone } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { type ModelProto, ModelProtoSchema, type NodeProto } from 'onnx-buf';
import { dtypeName } from '../../compiler/onnx/dtype.js';
import { tensorValues } from '../../compiler/onnx/tensor.js';
import { type FloatDType, type FusedAttributes, type InputRole, fromAttributes, signature } from '../../compiler/op/param.js';
import { rmsNormReference } from '../../runtime/reference.js';
import { compareWithTolerance } from '../../runtime/numeric.js';
import { Model } from '../../compiler/ir/graph.js';
import { encodeModel, loadModelBytes } from '../../compiler/onnx/model.js';
import type { Target } from '../../compiler/op/target.js';
import { runPasses, type PassContext, type Report } from '../../compiler/pass-manager.js';
import { defaultPasses } from '../../passes/index.js';
import type { CompareKind } from '../../runtime/numeric.js';
import { renderModel, valueInfo } from '../helpers/graph.js';
import { compareOutputs, randomFeeds, runModel, type FeedOptions } from '../helpers/ort.js';

export interface Optimized {
  model: ModelProto;
  bytes: Uint8Array;
  report: Report;
  log: string[];
  text: string;
}

export interface OptimizeOptions {
  target?: Target;
  debug?: boolean;
  explain?: string[];
}

export function optimize(input: Uint8Array | ModelProto, opts: OptimizeOptions = {}): Optimized {
  const bytes = input instanceof Uint8Array ? input : encodeModel(input);
  const model = new Model(loadModelBytes(bytes));
  model.inferTypes();
  const log: string[] = [];
  const report: Report = { target: opts.target ?? 'none', format: 'rmsfuse', fused: [], remarks: [], passes: [] };
  const ctx: PassContext = {
    model,
    target: opts.target,
    report,
    debug: opts.debug ?? false,
    explain: new Set(opts.explain ?? []),
    log: (l) => log.push(l),
  };
  runPasses(defaultPasses({ format: 'rmsfuse' }), ctx);
  const out = encodeModel(model.proto);
  return { model: model.proto, bytes: out, report, log, text: renderModel(model.proto) };
}

/** The main graph's nodes in the rmsfuse domain. */
export function fusedNodes(m: ModelProto): NodeProto[] {
  return m.graph!.node.filter((n) => n.domain === 'rmsfuse');
}

/** Attributes of a node as plain values (strings decoded, epsilon as written). */
export function attrs(n: NodeProto): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const a of n.attribute) {
    out[a.name] = a.type === 3 ? new TextDecoder().decode(a.s) : a.type === 1 ? a.f : Number(a.i);
  }
  return out;
}

/**
 * Runs both models on the same random feeds (several seeds: signed values, rows scaled by
 * 10^[-spread, spread] so large and small rows occur) and expects every output of the original
 * to agree under SPEC tolerances: int8 |diff| <= 1; fp32/fp16 fewer than 0.1% of elements over
 * 1e-3 relative error; `kinds` may name an output 'scale' (dynamic scale: 2^-8 relative each).
 */
export async function expectSameOutputs(
  before: Uint8Array | ModelProto,
  after: Uint8Array | ModelProto,
  feedOpts: FeedOptions = {},
  kinds: Record<string, CompareKind> = {},
): Promise<void> {
  const original = before instanceof Uint8Array ? loadModelBytes(before).proto : before;
  for (const seed of [1, 2]) {
    const feeds = randomFeeds(original, { dims: { batch: 2, seq: 5 }, ...feedOpts, seed: (feedOpts.seed ?? 0) * 10 + seed });
    const want = await runModel(before, feeds);
    const got = await runModel(after, feeds);
    const r = compareOutputs(got, want, kinds);
    expect(r.ok, r.messages.join('\n')).to.equal(true);
  }
}

/**
 * Checks every fused node of the main graph against the CPU reference (runtime/reference.ts)
 * under SPEC tolerances, running the optimized model in onnxruntime with the node's outputs
 * exposed. Needs the node's inputs to be graph inputs or initializers (single-site tests).
 * This is the judge where the original graph, as onnxruntime runs it, is not faithful to ONNX
 * semantics (its CPU provider drops Cast pairs around fp16 ops, so an fp16 multiply of a value
 * cast down from fp32 runs in fp32 with one rounding).
 */
export async function expectFusedMatchesReference(opt: Optimized, feedOpts: FeedOptions = {}): Promise<void> {
  const model = clone(ModelProtoSchema, opt.model);
  const g = model.graph!;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  for (const node of fusedNodes(model)) {
    for (const o of node.output) if (!g.output.some((v) => v.name === o)) g.output.push(valueInfo(o));
  }
  const feeds = randomFeeds(opt.model, { dims: { batch: 2, seq: 5 }, ...feedOpts });
  const got = await runModel(model, feeds);
  for (const node of fusedNodes(model)) {
    const param = fromAttributes(node.opType, attrs(node) as unknown as FusedAttributes);
    const sig = signature(param);
    const value = (name: string): { data: Float32Array; dtype: string } => {
      const f = feeds[name];
      if (f) return { data: Float32Array.from(f.data as ArrayLike<number>), dtype: f.dtype };
      const t = inits.get(name);
      if (!t) throw new Error(`reference check: input ${name} is neither a graph input nor an initializer`);
      return { data: Float32Array.from(tensorValues(t)!), dtype: dtypeName(t.dataType) };
    };
    const byRole: Partial<Record<InputRole, { data: Float32Array; dtype: string }>> = {};
    sig.inputs.forEach((r, i) => {
      const name = node.input[i];
      if (name) byRole[r] = value(name);
    });
    const H = byRole.gamma!.data.length;
    const xDType = byRole.x!.dtype as FloatDType;
    const ref = rmsNormReference(param, xDType, H, {
      x: byRole.x!.data,
      gamma: byRole.gamma!.data,
      ...(byRole.residual ? { residual: byRole.residual.data } : {}),
      ...(byRole.bias ? { bias: byRole.bias.data } : {}),
      ...(byRole.beta ? { beta: byRole.beta.data } : {}),
      ...(byRole.scale ? { scale: byRole.scale.data[0]! } : {}),
      ...(byRole.offset ? { offset: byRole.offset.data[0]! } : {}),
    });
    sig.outputs.forEach((role, i) => {
      const want = ref[role];
      const have = got[node.output[i]!];
      if (!want || !have) throw new Error(`reference check: no ${role} output`);
      const kind: CompareKind = role === 'q' ? 'int8' : role === 'scale' ? 'scale' : role === 'rstd' ? 'float32' : xDType;
      const r = compareWithTolerance(Array.from(have.data as ArrayLike<number>), Array.from(want), kind, { label: `${node.name} ${role}` });
      expect(r.ok, r.message).to.equal(true);
    });
  }
}

/**
 * Where onnxruntime does not run the original fp16 graph by ONNX semantics (its CPU provider
 * removes Cast(fp32->fp16)/Cast(fp16->fp32) pairs around fp16 ops, so a high_performance graph
 * runs with one rounding instead of two), the original can only bound the fused output: every
 * element of `outputs` within `ulps` fp16 ulps (the single- vs double-rounding difference).
 */
export async function expectWithinF16Ulps(
  before: Uint8Array,
  after: Uint8Array,
  outputs: string[],
  ulps = 2,
  feedOpts: FeedOptions = {},
): Promise<void> {
  const original = loadModelBytes(before).proto;
  const feeds = randomFeeds(original, { dims: { batch: 2, seq: 5 }, ...feedOpts });
  const want = await runModel(before, feeds);
  const got = await runModel(after, feeds);
  for (const name of outputs) {
    const a = got[name]!.data as Float32Array;
    const e = want[name]!.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < e.length; i++) {
      const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(e[i]!) || 2 ** -14)), -14) - 10);
      worst = Math.max(worst, Math.abs(a[i]! - e[i]!) / ulp);
    }
    expect(worst, `${name}: worst difference in fp16 ulps`).to.be.at.most(ulps);
  }
}
