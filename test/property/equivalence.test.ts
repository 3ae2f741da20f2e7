/**
 * Property: for every generated RMSNorm-like graph (rmsnorm-gen.ts), the optimized model
 *  1. is valid (decodes, passes the load checks, validates);
 *  2. fuses exactly the sites that must fuse (fused node count = expected), and every site a
 *     blocking change was made to stays unfused with a remark in the report;
 *  3. computes the same outputs as the original in onnxruntime-node, within SPEC tolerances:
 *     int8 |diff| <= 1; fp32/fp16 fewer than 0.1% of elements over 1e-3 relative error;
 *     dynamic scale 2^-8 relative.
 *
 * Reference: the original graph, except for sites computed natively in fp16 (no Casts): a
 * fused node computes their statistics in fp32 (SPEC 2, more accurate), so their reference is
 * the graph's fp32 twin with the fp16 roundings a fused node keeps (see BuildOptions.twin).
 *
 * Shapes are tiny (H <= 16, <= 4 rows) so a few hundred cases run in seconds.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { type HostTensor, runModel } from '../helpers/ort.js';
import { fcParams, runConfig } from './config.js';
import { NearMisses, assertValidModel, compareHost, fusedNodes, optimizeBytes, renderForFailure } from './harness.js';
import { type CaseSpec, buildCase, caseArb, describeCase } from './rmsnorm-gen.js';

/**
 * Native-fp16 sites that fused (their reference is the fp32 twin) and those among them whose
 * fused node is high_performance (the twin rounds x*rstd to fp16 too). A fused node belongs to
 * site i when it replaced nodes of the site's name scope `/s<i>/`.
 */
function twinPlan(c: CaseSpec, fused: { replaced: string[]; attributes: { precision_mode: string } }[]): { twinSites: Set<number>; roundNormed: Set<number> } {
  const twinSites = new Set<number>();
  const roundNormed = new Set<number>();
  c.sites.forEach((s, i) => {
    if (s.act !== 'float16' || s.fp16 !== 'native') return;
    const f = fused.find((x) => x.replaced.some((r) => r.startsWith(`/s${i}/`)));
    if (!f) return;
    twinSites.add(i);
    if (f.attributes.precision_mode === 'high_performance') roundNormed.add(i);
  });
  return { twinSites, roundNormed };
}

export async function checkCase(c: CaseSpec, near?: NearMisses): Promise<void> {
  const built = buildCase(c);
  const fail = (why: string, optimized?: Uint8Array): never => {
    throw new Error(
      `${why}\n${describeCase(c)}\n${renderForFailure('original', built.model)}` +
        (optimized ? `\n${renderForFailure('optimized', optimized)}` : ''),
    );
  };
  let opt;
  try {
    opt = optimizeBytes(built.model);
  } catch (e) {
    return fail(`optimize threw: ${(e as Error).stack ?? e}`);
  }
  let valid;
  try {
    valid = assertValidModel(opt.bytes);
  } catch (e) {
    return fail((e as Error).message, opt.bytes);
  }
  const fusedInGraph = fusedNodes(valid).length;
  if (fusedInGraph !== opt.report.fused.length) {
    fail(`the report lists ${opt.report.fused.length} fused sites but the model has ${fusedInGraph} rmsfuse nodes`, opt.bytes);
  }
  const remarks = (): string => opt.report.remarks.map((r) => `  remark ${r.node}: ${r.reason}`).join('\n');
  if (fusedInGraph < built.expectFused || fusedInGraph > built.expectFused + built.expectEither) {
    const want = built.expectEither ? `${built.expectFused}..${built.expectFused + built.expectEither}` : `${built.expectFused}`;
    fail(`expected ${want} fused site(s), got ${fusedInGraph}\n${remarks()}`, opt.bytes);
  }
  const unfused = built.expectBlocked + built.expectEither - (fusedInGraph - built.expectFused);
  if (opt.report.remarks.length < unfused) {
    fail(`expected a remark for each of the ${unfused} unfused site(s), got ${opt.report.remarks.length}\n${remarks()}`, opt.bytes);
  }

  const plan = twinPlan(c, opt.report.fused);
  const reference = plan.twinSites.size ? buildCase(c, plan) : built;
  let expected: Record<string, HostTensor>;
  let actual: Record<string, HostTensor>;
  try {
    expected = await runModel(reference.model, reference.feeds);
  } catch (e) {
    return fail(`the reference model does not run (generator bug): ${(e as Error).message}`);
  }
  try {
    actual = await runModel(opt.bytes, built.feeds);
  } catch (e) {
    return fail(`onnxruntime cannot run the optimized model: ${(e as Error).message}`, opt.bytes);
  }
  const problems: string[] = [];
  built.outputs.forEach((o, k) => {
    const refName = reference.outputs[k]!.name;
    const a = actual[o.name];
    const e = expected[refName];
    if (!a || !e) problems.push(`${o.name}: missing output`);
    else {
      const m = compareHost(a, e, o.kind, o.name, near);
      if (m) problems.push(m);
    }
  });
  if (problems.length) fail(`outputs differ beyond SPEC tolerance:\n  ${problems.join('\n  ')}`, opt.bytes);
}

if (!process.env.RMSFUSE_NO_DESCRIBE) describe('property: optimized RMSNorm graphs compute the same outputs', function () {
  this.timeout(0);

  it('fuses exactly the valid sites and keeps outputs within SPEC tolerance', async function () {
    const cfg = runConfig(250, 5000);
    const near = new NearMisses();
    await fc.assert(fc.asyncProperty(caseArb(), (c) => checkCase(c, near)), fcParams('equivalence', cfg));
    console.log(`      near misses: ${near.summary()}`);
    expect(near.rate, `SPEC: fewer than 0.1% of float elements over 1e-3 relative error; ${near.summary()}`).to.be.below(1e-3);
  });

  it('the generator itself: every spelling appears in a CI run', function () {
    // Guards against normalizeSite silently collapsing a form: sample what CI runs.
    const cfg = runConfig(250, 250);
    const seen = new Set<string>();
    for (const c of fc.sample(caseArb(), { seed: cfg.seed, numRuns: cfg.numRuns })) {
      for (const s of c.sites) {
        for (const [k, v] of Object.entries(s)) seen.add(`${k}=${v}`);
        seen.add(`opset=${c.opset}`);
        seen.add(`fp16style=${s.act}/${s.fp16}`);
      }
    }
    const want = [
      'square=mul', 'square=pow', 'exp=cast', 'exp=constant', 'reduce=sum-div', 'reduce=sum-mul', 'axis=pos', 'axis=neg',
      'keep=unsqueeze', 'keep=reshape', 'epsKind=constant', 'epsLeft=true', 'rsqrt=sqrt-recip', 'rsqrt=sqrt-div1', 'rsqrt=div',
      'rsqrt=pow', 'noopCast=input', 'noopCast=mean', 'noopCast=normed', 'gamma=none', 'gamma=ones-H', 'gammaAfterCast=true',
      'gemma=g+1', 'gemma=1+g', 'bias=true', 'sumUse=consumer', 'sumUse=output', 'rstdUse=consumer', 'rstdUse=output',
      'quant=static', 'quant=qdq', 'quant=dynamic', 'beta=true', 'fp16style=float16/native', 'fp16style=float16/cast',
      'block=axis', 'block=exp-square', 'block=exp-rsqrt', 'block=eps-input', 'block=eps-range', 'block=mean-sub',
      'block=weight-shape', 'block=keepdims0', 'block=interior',
    ];
    expect(want.filter((w) => !seen.has(w))).to.deep.equal([]);
  });
});
