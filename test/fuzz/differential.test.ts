/**
 * Differential fuzzing of the passes: generated RMSNorm graphs (fp32, fp16 with Casts) with 1-3 semantic
 * mutations (semantic.ts: other constants, sibling ops, other axes, rewired inputs, new graph
 * outputs and consumers, inserted no-op Casts, reshaped weights). Property: whenever
 * onnxruntime runs the mutated model, rmsfuse optimizes it (exit 0, valid model) and the
 * optimized model computes the same outputs within SPEC tolerances; when onnxruntime refuses
 * it, rmsfuse still only succeeds or fails with an RmsfuseError.
 *
 * Unlike the generator's blocking changes, nothing here says what must fuse: this finds wrong
 * fusions (a site whose math changed but still matched) and crashes on odd but valid graphs.
 */
import { clone, create } from '@bufbuild/protobuf';
import { expect } from 'chai';
import fc from 'fast-check';
import { ModelProtoSchema, ValueInfoProtoSchema, type ModelProto, type NodeProto } from 'onnx-buf';
import { decodeModel } from '../../compiler/onnx/model.js';
import { tensorValues } from '../../compiler/onnx/tensor.js';
import { signature } from '../../compiler/op/param.js';
import type { Model } from '../../compiler/ir/graph.js';
import { fusedParam, isFusedNode } from '../../compiler/ir/fused.js';
import { valueInfo, type ElemType } from '../helpers/graph.js';
import { RmsfuseError } from '../../compiler/errors.js';
import type { HostTensor } from '../helpers/ort.js';
import { fcParams, runConfig } from '../property/config.js';
import { NearMisses, assertValidModel, compareHost, optimizeBytes, renderForFailure, runModelQuiet as runModel } from '../property/harness.js';
import { type CaseSpec, buildCase, caseArb, describeCase, normalizeSite, type Kind } from '../property/rmsnorm-gen.js';
import { SEMANTIC_NAMES, mutateSemantic } from './semantic.js';

/**
 * Cases whose fused nodes compute what the original does: fp32, and fp16 with Casts (HF style).
 * Native fp16 sites are left out: fused, their statistics are computed in fp32 (SPEC 2), so
 * the original is not their reference (equivalence.test.ts compares them with an fp32 twin).
 */
const comparableCase = caseArb(2).map((c): CaseSpec => ({ ...c, sites: c.sites.map((s) => normalizeSite({ ...s, fp16: 'cast' }, c)) }));
const mutations = fc.array(fc.record({ name: fc.constantFrom(...SEMANTIC_NAMES), seed: fc.nat() }), { minLength: 1, maxLength: 3 });

const stats = { ortRefused: 0, compared: 0, fusedCompared: 0, nonFiniteQuant: 0 };

async function check(c: CaseSpec, muts: { name: string; seed: number }[], near: NearMisses): Promise<void> {
  const built = buildCase(c);
  const model = clone(ModelProtoSchema, built.model);
  const applied = muts.filter((m) => mutateSemantic(model, m.name, m.seed)).map((m) => `${m.name}#${m.seed}`);
  const what = () => `${describeCase(c)}\n  mutations: ${applied.join(', ') || 'none applied'}\n${renderForFailure('mutated', model)}`;

  let expected: Record<string, HostTensor> | undefined;
  try {
    expected = await runModel(model, built.feeds);
  } catch {
    stats.ortRefused++;
  }
  let opt;
  try {
    opt = optimizeBytes(model, c.format ? { format: c.format } : {});
  } catch (e) {
    if (!(e instanceof RmsfuseError)) throw new Error(`optimize crashed: ${(e as Error).stack}\n${what()}`);
    if (expected) throw new Error(`onnxruntime runs the model but rmsfuse refuses it: ${e.message}\n${what()}`);
    return;
  }
  let optModel: Model;
  try {
    optModel = assertValidModel(opt.bytes);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${what()}\n${renderForFailure('optimized', opt.bytes)}`);
  }
  if (!expected) return;
  let actual: Record<string, HostTensor>;
  try {
    actual = await runModel(opt.bytes, built.feeds);
  } catch (e) {
    throw new Error(`onnxruntime runs the model but not its optimized form: ${(e as Error).message}\n${what()}\n${renderForFailure('optimized', opt.bytes)}`);
  }
  stats.compared++;
  if (opt.report.fused.length) stats.fusedCompared++;
  const problems: string[] = [];
  /** A comparison that failed; int8 results of NaN/inf or of out-of-range casts are exempt (implementation-defined). */
  const report = async (m: string | undefined, kind: Kind): Promise<void> => {
    if (!m) return;
    if ((kind === 'int8' || typeof kind === 'object') && (await computesNonFinite(model, built.feeds))) {
      stats.nonFiniteQuant++;
      return;
    }
    problems.push(m);
  };

  // 1. What the fused nodes write is compared with the same values of the original, under SPEC's
  //    tolerances (whether or not they are graph outputs).
  const optProto = decodeModel(opt.bytes);
  const fused = fusedOutputKinds(optModel, model);
  let downstreamExpected = expected;
  if (fused.size) {
    const names = [...fused.keys()];
    const [origValues, optValues] = [await runWithOutputs(model, built.feeds, names), await runWithOutputs(optProto, built.feeds, names)];
    for (const [name, k] of fused) {
      const e = origValues[name]!;
      const kind: Kind = k === 'dtype' ? (e.dtype === 'float16' ? 'float16' : 'float32') : k;
      // fp16: onnxruntime's CPU provider computes a chain of fp16 Adds in fp32 without the
      // roundings between them (its own optimizer notes), so where a residual sum cancels, the
      // original's small elements are off by an fp16 rounding step of the operands: relative to
      // the tensor's RMS for those.
      const absFloor = kind === 'float16' ? rms(e.data as Float32Array) : undefined;
      await report(compareHost(optValues[name]!, e, kind, `${name} (fused output)`, near, absFloor), kind);
    }
    // 2. Everything after them must be computed the same from the same values: the original, cut
    //    at the fused outputs and fed the optimized model's values there, is the reference.
    //    (Compared against the uncut original instead, a 1-ulp difference can grow without bound
    //    through a Div or a cancelling Add that a mutation put after the site.)
    try {
      downstreamExpected = await runModel(cutAt(model, optValues, names), { ...built.feeds, ...Object.fromEntries(names.map((n) => [n, optValues[n]!])) });
    } catch {
      // Nothing left downstream (every graph output is a fused output, compared above), or a cut
      // the runtime refuses (a fused output's producer also wrote other values): the original.
    }
  }

  // 3. Graph outputs.
  const kinds = new Map<string, Kind>(built.outputs.map((o) => [o.name, o.kind]));
  const producers = new Map(optProto.graph!.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  for (const [name, original] of Object.entries(expected)) {
    if (fused.has(name)) continue; // compared in 1
    let a = actual[name];
    let e = downstreamExpected[name] ?? original;
    if (!a) {
      problems.push(`${name}: missing`);
      continue;
    }
    if (!['int8', 'uint8', 'float32', 'float16'].includes(e.dtype)) continue;
    let { kind, source } = toleranceOf(name, e, kinds, producers);
    if (typeof kind === 'object') {
      // A DequantizeLinear's steps are its scale as the model now has it (a mutation may have changed it).
      const dq = producers.get(source);
      const scale = dq?.opType === 'DequantizeLinear' ? optProto.graph!.initializer.find((t) => t.name === dq.input[1]) : undefined;
      const step = scale && tensorValues(scale)?.[0];
      if (step) kind = { ...kind, dq: Math.abs(step) };
    }
    if (source !== name && kind === 'int8' && e.dtype === 'int8' && producers.get(name)?.opType === 'Neg') {
      // Neg of an int8 value wraps -(-128) to -128: read it as 128, so a code that moved by 1 stays 1 away.
      const unwrap = (t: HostTensor): HostTensor => ({ ...t, data: Int16Array.from(t.data as Int8Array, (v) => (v === -128 ? 128 : v)) as unknown as HostTensor['data'] });
      a = unwrap(a);
      e = unwrap(e);
    }
    const absFloor = kind === 'float16' || kind === 'float32' ? floorOf(name, e, producers) : undefined;
    // fp16 after a fused node: onnxruntime's CPU provider feeds the next fp16 Add the unrounded
    // fp32 value in the optimized model but the rounded input in the cut one, and a cancelling
    // Add, a Min or a Div grows that step. Such an output fails its case at once only past 25%;
    // smaller misses count towards the run's 0.1%.
    const grossFactor = kind === 'float16' && absFloor !== undefined ? 250 : undefined;
    await report(compareHost(a, e, kind, name, near, absFloor, grossFactor), kind);
  }
  if (problems.length) {
    throw new Error(`outputs differ beyond SPEC tolerance:\n  ${problems.join('\n  ')}\n${what()}\n${renderForFailure('optimized', opt.bytes)}`);
  }
}

/**
 * The tolerance of an output: its kind as built (y, sum, q, scale, a DequantizeLinear's steps),
 * else from its dtype. An extra consumer the mutations add (Neg, exact) and inserted Identities
 * inherit the kind of the value they pass on (`source`). Quantization codes in int8's range (Round, then Clip) that ordinary
 * ops compute from a fused output may move by 1, as int8 does.
 */
function toleranceOf(name: string, e: HostTensor, kinds: Map<string, Kind>, producers: Map<string, NodeProto>): { kind: Kind; source: string } {
  const p = producers.get(name);
  const passThrough = p?.domain === '' && (p.opType === 'Identity' || (p.opType === 'Neg' && p.name.endsWith('__neg')));
  if (passThrough && !kinds.has(name)) return toleranceOf(p.input[0]!, e, kinds, producers);
  const byDType: Kind = e.dtype === 'int8' || e.dtype === 'uint8' ? 'int8' : e.dtype === 'float16' ? 'float16' : 'float32';
  let kind: Kind = kinds.get(name) ?? byDType;
  if (p && p.domain !== 'rmsfuse') {
    // A dynamic scale the graph still computes itself (its site was not fused, or a mutation
    // changed it) is a plain float there.
    if (kind === 'scale') kind = byDType;
    if ((kind === 'float16' || kind === 'float32') && isQuantCode(producers, name) && (e.data as Float32Array).every((v) => Math.abs(v) <= 128)) kind = 'int8';
  }
  return { kind, source: name };
}

/**
 * Floats that ordinary ops compute from a fused output carry its last-ulp differences on, and a
 * Sub can cancel them to near zero: those are compared relative to the tensor's RMS where it is
 * larger than the element. Outputs a fused node writes keep SPEC's element-wise rule.
 */
function floorOf(name: string, e: HostTensor, producers: Map<string, NodeProto>): number | undefined {
  const p = producers.get(name);
  return p && p.domain !== 'rmsfuse' ? rms(e.data as Float32Array) : undefined;
}

/**
 * The outputs of the fused nodes in the optimized main graph that the original computes too
 * (fused outputs keep the names of the values they replace), with their SPEC kind: rmsfuse nodes
 * by role (y and sum in their dtype, rstd fp32, q int8, the dynamic scale), lowered ones
 * (--format ort / onnx23) by dtype.
 */
function fusedOutputKinds(opt: Model, original: ModelProto): Map<string, Kind | 'dtype'> {
  const produced = new Set(original.graph!.node.flatMap((n) => n.output));
  const out = new Map<string, Kind | 'dtype'>();
  for (const n of opt.graph.nodes) {
    if (!isFusedNode(n) && !LOWERED_OPS.has(n.opType)) continue;
    const param = isFusedNode(n) ? fusedParam(n) : undefined;
    const roles = param && typeof param !== 'string' ? signature(param).outputs : [];
    n.outputs.forEach((o, i) => {
      if (!o || !produced.has(o)) return;
      const role = roles[i];
      out.set(o, role === 'q' ? 'int8' : role === 'scale' ? 'scale' : role === 'rstd' ? 'float32' : 'dtype');
    });
  }
  return out;
}

const LOWERED_OPS = new Set(['SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'RMSNormalization']);

/** Runs a model with some of its values exposed as graph outputs too. */
async function runWithOutputs(m: ModelProto, feeds: Record<string, HostTensor>, names: string[]): Promise<Record<string, HostTensor>> {
  const probe = clone(ModelProtoSchema, m);
  const outs = new Set(probe.graph!.output.map((o) => o.name));
  for (const n of names) if (!outs.has(n)) probe.graph!.output.push(create(ValueInfoProtoSchema, { name: n }));
  return runModel(probe, feeds);
}

const ELEM: Record<string, ElemType> = { float32: 'float32', float16: 'float16', int8: 'int8', uint8: 'uint8' };

/**
 * The model with `names` cut out: their producers removed and each name a graph input (typed
 * like `values`); graph outputs that are cut names are dropped.
 */
function cutAt(m: ModelProto, values: Record<string, HostTensor>, names: string[]): ModelProto {
  const cut = clone(ModelProtoSchema, m);
  const g = cut.graph!;
  const set = new Set(names);
  g.node = g.node.filter((n) => !n.output.some((o) => set.has(o)));
  g.output = g.output.filter((o) => !set.has(o.name));
  for (const n of names) g.input.push(valueInfo(n, ELEM[values[n]!.dtype], values[n]!.dims));
  return cut;
}

/**
 * The original's int8 results may be implementation-defined: its main graph computes a NaN or an
 * infinity, or casts a float outside an integer type's range to it (C++ leaves both undefined,
 * so a code of 5000 may come out as any byte).
 */
async function computesNonFinite(model: ModelProto, feeds: Record<string, HostTensor>): Promise<boolean> {
  const RANGE: Record<number, [number, number]> = { 2: [0, 255], 3: [-128, 127] }; // uint8, int8
  try {
    const all = await runWithOutputs(model, feeds, model.graph!.node.flatMap((n) => n.output.filter(Boolean)));
    const floats = (t: HostTensor | undefined): number[] => (t && (t.dtype === 'float32' || t.dtype === 'float16') ? Array.from(t.data as Float32Array) : []);
    if (Object.values(all).some((t) => floats(t).some((v) => !Number.isFinite(v)))) return true;
    return model.graph!.node.some((n) => {
      const to = n.opType === 'Cast' ? Number(n.attribute.find((a) => a.name === 'to')?.i ?? 0) : 0;
      const range = RANGE[to];
      return range !== undefined && floats(all[n.input[0] ?? '']).some((v) => Math.round(v) < range[0] || Math.round(v) > range[1]);
    });
  } catch {
    return false;
  }
}

/** The value is integer quantization codes: Round, behind Clips and float Casts. */
function isQuantCode(producers: Map<string, NodeProto>, name: string): boolean {
  for (let n = producers.get(name), i = 0; n && i < 8; n = producers.get(n.input[0] ?? ''), i++) {
    if (n.opType === 'Round' && n.domain === '') return true;
    if (!(n.opType === 'Clip' || n.opType === 'Cast') || n.domain !== '') return false;
  }
  return false;
}

/** RMS of the finite elements (NaN and infinities are compared as such, element by element). */
const rms = (v: ArrayLike<number>): number => {
  let s = 0;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) continue;
    s += v[i]! * v[i]!;
    n++;
  }
  return n ? Math.sqrt(s / n) : 0;
};

describe('fuzz: semantic mutations, optimized vs original in onnxruntime', function () {
  this.timeout(0);

  it('whatever onnxruntime runs, the optimized model runs the same', async function () {
    const cfg = runConfig(150, 3000);
    const near = new NearMisses();
    await fc.assert(fc.asyncProperty(comparableCase, mutations, (c, m) => check(c, m, near)), fcParams('fuzz-semantic', cfg));
    console.log(
      `      compared ${stats.compared} (${stats.fusedCompared} with fused sites), onnxruntime refused ${stats.ortRefused}, ` +
        `int8 outputs of NaN/inf or out-of-range casts not compared ${stats.nonFiniteQuant}; near misses: ${near.summary()}`,
    );
    expect(near.rate).to.be.below(1e-3);
  });
});
