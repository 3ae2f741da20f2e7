/** The equivalence property for one generated case (see equivalence.test.ts). */
import { type HostTensor, runModel } from '../helpers/ort.js';
import { type NearMisses, assertValidModel, compareHost, fusedNodes, optimizeBytes, renderForFailure } from './harness.js';
import { type CaseSpec, buildCase, describeCase } from './rmsnorm-gen.js';

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
    opt = optimizeBytes(built.model, c.format ? { format: c.format } : {});
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

