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
import { clone } from '@bufbuild/protobuf';
import { expect } from 'chai';
import fc from 'fast-check';
import { ModelProtoSchema } from 'onnx-buf';
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

const stats = { ortRefused: 0, compared: 0, fusedCompared: 0 };

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
  try {
    assertValidModel(opt.bytes);
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
  const kinds = new Map<string, Kind>(built.outputs.map((o) => [o.name, o.kind]));
  const problems: string[] = [];
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    if (!a) {
      problems.push(`${name}: missing`);
      continue;
    }
    const kind: Kind = kinds.get(name) ?? (e.dtype === 'int8' || e.dtype === 'uint8' ? 'int8' : e.dtype === 'float16' ? 'float16' : 'float32');
    if (!['int8', 'uint8', 'float32', 'float16'].includes(e.dtype)) continue;
    const m = compareHost(a, e, kind, name, near);
    if (m) problems.push(m);
  }
  if (problems.length) {
    throw new Error(`outputs differ beyond SPEC tolerance:\n  ${problems.join('\n  ')}\n${what()}\n${renderForFailure('optimized', opt.bytes)}`);
  }
}

describe('fuzz: semantic mutations, optimized vs original in onnxruntime', function () {
  this.timeout(0);

  it('whatever onnxruntime runs, the optimized model runs the same', async function () {
    const cfg = runConfig(150, 3000);
    const near = new NearMisses();
    await fc.assert(fc.asyncProperty(comparableCase, mutations, (c, m) => check(c, m, near)), fcParams('fuzz-semantic', cfg));
    console.log(`      compared ${stats.compared} (${stats.fusedCompared} with fused sites), onnxruntime refused ${stats.ortRefused}; near misses: ${near.summary()}`);
    expect(near.rate).to.be.below(1e-3);
  });
});
