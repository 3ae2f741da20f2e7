/**
 * Stage 2: the residual Add in front of a norm grows it into PreNorm (the sum is used elsewhere
 * or is a graph output) or PostNorm (it is not). Numerics: SPEC tolerances (fp32/fp16 fewer than
 * 0.1% of elements over 1e-3 relative error) against the original in onnxruntime, and the fused
 * node against the CPU reference.
 */
import { expect } from 'chai';
import { GraphBuilder } from '../helpers/graph.js';
import { attrs, expectFusedMatchesReference, expectSameOutputs, expectWithinF16Ulps, optimize } from './harness.js';
import { rmsNorm, type NormSpelling } from './spellings.js';

interface ResidualOptions {
  dtype?: 'float32' | 'float16';
  /**
   * A constant bias: added to the sum (right/left of it), or to an operand of the residual Add
   * (a Linear's bias): `onX` Add(Add(x, b), r), `onXLeft` Add(Add(b, x), r), `onResidual` Add(x, Add(r, b)).
   */
  bias?: 'right' | 'left' | 'onX' | 'onXLeft' | 'onResidual';
  /** What else reads the sum: nothing (PostNorm), the next residual Add, or the graph outputs. */
  sumUse?: 'none' | 'consumer' | 'output';
  spelling?: NormSpelling;
  /** Shape of the residual operand (default: x's). */
  residualDims?: (number | string)[];
}

function residualModel(o: ResidualOptions = {}) {
  const g = new GraphBuilder({ opset: 17 });
  const T = o.dtype ?? 'float32';
  const dims = ['batch', 'seq', 64];
  const x = g.input('x', T, dims);
  const r = g.input('residual', T, o.residualDims ?? dims);
  g.scope('/model/layers.0');
  const b = o.bias && g.init('bias', T, [64], Array.from({ length: 64 }, (_, i) => (i % 7) * 0.25 - 0.75));
  let sum: string;
  if (!b) sum = g.op('Add', [x, r]);
  else if (o.bias === 'onX') sum = g.op('Add', [g.op('Add', [x, b]), r]);
  else if (o.bias === 'onXLeft') sum = g.op('Add', [g.op('Add', [b, x]), r]);
  else if (o.bias === 'onResidual') sum = g.op('Add', [x, g.op('Add', [r, b])]);
  else sum = o.bias === 'right' ? g.op('Add', [g.op('Add', [x, r]), b]) : g.op('Add', [b, g.op('Add', [x, r])]);
  g.scope('/model/layers.0/post_attention_layernorm');
  const y = rmsNorm(g, sum, { dtype: T, ...o.spelling });
  g.output(y, T, dims);
  if (o.sumUse === 'consumer') {
    g.scope('/model/layers.0');
    g.output(g.op('Add', [sum, y], {}, { outputs: ['next'] }), T, dims);
  } else if (o.sumUse === 'output') {
    g.output(sum, T, dims);
  }
  return { g, x, r, sum, y };
}

describe('passes: residual Add (stage 2)', () => {
  const cases: { name: string; o: ResidualOptions; op: string; want?: Record<string, string | number>; hp?: boolean }[] = [
    { name: 'fp32, sum read only by the norm -> PostNorm', o: {}, op: 'PostNorm' },
    { name: 'fp32, sum read by the next residual Add -> PreNorm', o: { sumUse: 'consumer' }, op: 'PreNorm' },
    { name: 'fp32, sum is a graph output -> PreNorm', o: { sumUse: 'output' }, op: 'PreNorm' },
    { name: 'fp32, constant bias on the right -> PostNorm has_bias', o: { bias: 'right' }, op: 'PostNorm', want: { has_bias: 1 } },
    { name: 'fp32, constant bias on the left, sum used -> PreNorm has_bias', o: { bias: 'left', sumUse: 'consumer' }, op: 'PreNorm', want: { has_bias: 1 } },
    // A Linear's bias, added to an operand before the residual Add: the same sum, so the bias joins the fused node.
    { name: 'fp32, Add(Add(x, bias), residual) -> PostNorm has_bias', o: { bias: 'onX' }, op: 'PostNorm', want: { has_bias: 1 } },
    { name: 'fp32, Add(Add(bias, x), residual), sum used -> PreNorm has_bias', o: { bias: 'onXLeft', sumUse: 'consumer' }, op: 'PreNorm', want: { has_bias: 1 } },
    { name: 'fp16, Add(x, Add(residual, bias)), sum an output -> PreNorm has_bias', o: { dtype: 'float16', bias: 'onResidual', sumUse: 'output', spelling: { castBack: 'afterGamma' } }, op: 'PreNorm', want: { has_bias: 1 } },
    {
      name: 'fp16 HF Llama (Cast fp16 before gamma) -> PreNorm high_performance',
      o: { dtype: 'float16', sumUse: 'consumer' },
      op: 'PreNorm',
      want: { precision_mode: 'high_performance' },
      hp: true,
    },
    { name: 'fp16, Cast after the gamma Mul -> PostNorm high_precision', o: { dtype: 'float16', spelling: { castBack: 'afterGamma' } }, op: 'PostNorm' },
    { name: 'fp32 Gemma -> PreNorm gemma', o: { sumUse: 'consumer', spelling: { gamma: 'gemma' } }, op: 'PreNorm', want: { model_type: 'gemma' } },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { g, x, r, sum, y } = residualModel(c.o);
      const before = g.bytes();
      const out = optimize(before);
      const fused = out.model.graph!.node.filter((n) => n.domain === 'rmsfuse');
      expect(fused.map((n) => n.opType), out.text).to.deep.equal([c.op]);
      const n = fused[0]!;
      expect(n.name).to.equal(`/model/layers.0/post_attention_layernorm/${c.op}`);
      const bias = c.o.bias ? 'bias' : '';
      expect(n.input.slice(0, 3)).to.deep.equal([x, bias, r]);
      expect(n.output).to.deep.equal(c.op === 'PreNorm' ? [y, sum] : [y]);
      expect(attrs(n)).to.include({ has_bias: 0, rstd: 0, quant_type: 'none', ...c.want });
      expect(out.report.fused).to.have.length(1);
      expect(out.report.fused[0]!.replaced).to.include.members(c.o.bias ? ['/model/layers.0/Add', '/model/layers.0/Add_1'] : ['/model/layers.0/Add']);
      expect(out.report.remarks).to.deep.equal([]);
      // Only the fused node remains, plus the next residual Add where there is one.
      expect(out.model.graph!.node.length).to.equal(c.o.sumUse === 'consumer' ? 2 : 1);
      // The fused node against the CPU reference of its variant: SPEC tolerance.
      await expectFusedMatchesReference(out, { seed: 5 });
      if (c.hp) {
        // onnxruntime runs the original high_performance graph with one rounding (it drops the
        // Cast pair around the fp16 Mul): it bounds y within 2 fp16 ulps; downstream Adds cancel.
        await expectWithinF16Ulps(before, out.bytes, [y], 2);
      } else {
        // fp16: exact-sum grid (see FeedOptions.exactSums) for the comparison with the original.
        await expectSameOutputs(before, out.bytes, { exactSums: c.o.dtype === 'float16' });
      }
    });
  }

  it('an operand Add that is no bias (an activation, or a biased value read elsewhere) stays in front as x', async () => {
    for (const variant of ['activation', 'read elsewhere'] as const) {
      const g = new GraphBuilder({ opset: 17 });
      const dims = ['batch', 'seq', 64];
      const x = g.input('x', 'float32', dims);
      const r = g.input('residual', 'float32', dims);
      const other = variant === 'activation' ? g.input('h', 'float32', dims) : g.init('bias', 'float32', [64], Array.from({ length: 64 }, (_, i) => i / 64));
      g.scope('/model/layers.0');
      const inner = g.op('Add', [x, other]);
      const sum = g.op('Add', [inner, r]);
      g.scope('/model/layers.0/post_attention_layernorm');
      g.output(rmsNorm(g, sum, {}), 'float32', dims);
      if (variant === 'read elsewhere') g.output(inner, 'float32', dims);
      const before = g.bytes();
      const out = optimize(before);
      const fused = out.model.graph!.node.filter((n) => n.domain === 'rmsfuse');
      expect(fused.map((n) => n.opType), variant).to.deep.equal(['PostNorm']);
      expect(fused[0]!.input.slice(0, 3), variant).to.deep.equal([inner, '', r]);
      expect(attrs(fused[0]!).has_bias, variant).to.equal(0);
      expect(out.model.graph!.node.map((n) => n.opType), variant).to.deep.equal(['Add', 'PostNorm']);
      await expectSameOutputs(before, out.bytes);
    }
  });

  it('residual operands of different shapes (a broadcasting Add) stay outside, with a remark', async () => {
    const { g } = residualModel({ residualDims: [1, 1, 64] });
    const before = g.bytes();
    const out = optimize(before);
    expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['Add', 'RmsNorm']);
    expect(out.report.remarks).to.have.length(1);
    expect(out.report.remarks[0]!.node).to.equal('/model/layers.0/Add');
    expect(out.report.remarks[0]!.reason).to.match(/not the same shape/);
    await expectSameOutputs(before, out.bytes);
  });

  it('a norm with an rstd output keeps its residual Add outside (rstd is Norm only), with a remark', async () => {
    const { g, y } = residualModel();
    // Expose rstd (the Reciprocal's output) as a graph output.
    const recip = g.nodes.find((n) => n.opType === 'Reciprocal')!;
    g.output(recip.output[0]!, 'float32', ['batch', 'seq', 1]);
    const before = g.bytes();
    const out = optimize(before);
    const ops = out.model.graph!.node.map((n) => n.opType);
    expect(ops).to.deep.equal(['Add', 'RmsNorm']);
    const n = out.model.graph!.node[1]!;
    expect(attrs(n).rstd).to.equal(1);
    expect(n.output).to.deep.equal([y, recip.output[0]]);
    expect(out.report.remarks.map((r) => r.reason).join('\n')).to.match(/rstd is only defined for Norm/);
    await expectSameOutputs(before, out.bytes);
  });

  it('two layers: every residual Add becomes part of a PreNorm, the last norm a PostNorm', async () => {
    const g = new GraphBuilder({ opset: 17 });
    const dims = ['batch', 'seq', 64];
    let h = g.input('x', 'float32', dims);
    const w = g.init('w', 'float32', [64, 64], Array.from({ length: 64 * 64 }, (_, i) => ((i * 37) % 101) / 400 - 0.125));
    let prev = h;
    for (let layer = 0; layer < 2; layer++) {
      g.scope(`/model/layers.${layer}/input_layernorm`);
      const n = rmsNorm(g, h, {});
      g.scope(`/model/layers.${layer}`);
      const mm = g.op('MatMul', [n, w]);
      prev = h;
      h = g.op('Add', [prev, mm]);
    }
    g.scope('/model/norm');
    g.output(rmsNorm(g, h, {}), 'float32', dims);
    const before = g.bytes();
    const out = optimize(before);
    expect(out.model.graph!.node.filter((n) => n.domain === 'rmsfuse').map((n) => n.name)).to.deep.equal([
      '/model/layers.0/input_layernorm/RmsNorm',
      '/model/layers.1/input_layernorm/PreNorm',
      '/model/norm/PostNorm',
    ]);
    await expectSameOutputs(before, out.bytes);
  });
});
