/**
 * Sites that must stay unfused because fusing would change the math (SPEC section 4, last
 * paragraph). Each one: no rmsfuse node, the model comes back byte-identical, and the candidate
 * (its ReduceMean/ReduceSum of a square) gets a remark with the reason.
 */
import { expect } from 'chai';
import { GraphBuilder } from '../helpers/graph.js';
import { optimize } from './harness.js';
import { normModel, rmsNorm } from './spellings.js';

const DIMS = ['batch', 'seq', 64];

function expectUnfused(before: Uint8Array, reason: RegExp, anchor?: string): void {
  const out = optimize(before);
  expect(out.model.graph!.node.filter((n) => n.domain === 'rmsfuse').map((n) => n.name), out.text).to.deep.equal([]);
  expect(Buffer.from(out.bytes).equals(Buffer.from(before)), 'model unchanged').to.equal(true);
  expect(out.report.remarks.length, JSON.stringify(out.report.remarks)).to.be.greaterThan(0);
  const remark = anchor ? out.report.remarks.find((r) => r.node === anchor) : out.report.remarks[0];
  expect(remark, `remark at ${anchor}: ${JSON.stringify(out.report.remarks)}`).to.not.equal(undefined);
  expect(remark!.reason).to.match(reason);
}

/** x - mean(x), then the norm of that (LayerNorm without beta). */
function layerNorm(form: 'subtract' | 'variance'): Uint8Array {
  const g = new GraphBuilder({ opset: 17 });
  const x = g.input('x', 'float32', DIMS);
  g.scope('/ln');
  const mean = g.reduce('ReduceMean', x, [-1]);
  const d = g.op('Sub', [x, mean]);
  const w = g.init('w', 'float32', [64], Array.from({ length: 64 }, (_, i) => 1 + i / 64));
  let v: string;
  if (form === 'subtract') {
    v = g.reduce('ReduceMean', g.op('Pow', [d, g.constant(2)]), [-1]);
  } else {
    // E[x^2] - E[x]^2
    v = g.op('Sub', [g.reduce('ReduceMean', g.op('Pow', [x, g.constant(2)]), [-1]), g.op('Pow', [mean, g.constant(2)])]);
  }
  const n = g.op('Div', [d, g.op('Sqrt', [g.op('Add', [v, g.constant(1e-5)])])]);
  g.output(g.op('Add', [g.op('Mul', [n, w]), g.init('b', 'float32', [64], new Array(64).fill(0.1))]), 'float32', DIMS);
  return g.bytes();
}

describe('passes: sites that must stay unfused', () => {
  it('LayerNorm: the mean is subtracted first', () => {
    expectUnfused(layerNorm('subtract'), /mean is subtracted.*LayerNorm/, '/ln/ReduceMean_1');
  });

  it("LayerNorm's variance as E[x^2] - E[x]^2", () => {
    expectUnfused(layerNorm('variance'), /E\[x\^2\] - E\[x\]\^2.*LayerNorm/, '/ln/ReduceMean_1');
  });

  it('ReduceSumSquare not divided by H (an L2 normalization) or divided by another number', () => {
    for (const [scale, reason] of [
      [undefined, /the sum of squares \(ReduceSumSquare\) is not divided by H: this is an L2 normalization/],
      [32, /ReduceSumSquare is scaled by 32 instead of \/ 64: not a mean/],
    ] as const) {
      const g = new GraphBuilder({ opset: 17 });
      const x = g.input('x', 'float32', DIMS);
      g.scope('/l2');
      const sumsq = g.reduce('ReduceSumSquare', x, [-1]);
      const ms = scale === undefined ? sumsq : g.op('Div', [sumsq, g.constant(scale)]);
      g.output(g.op('Mul', [x, g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constant(1e-6)])])])]), 'float32', DIMS);
      expectUnfused(g.bytes(), reason, '/l2/ReduceSumSquare');
    }
  });

  it('reduction over another axis than the last', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', [2, 5, 64]);
    g.scope('/n');
    const sq = g.op('Pow', [x, g.constant(2)]);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [g.reduce('ReduceMean', sq, [1]), g.constant(1e-6)])])]);
    g.output(g.op('Mul', [x, r]), 'float32', [2, 5, 64]);
    expectUnfused(g.bytes(), /reduces over axes \[1\] of a rank-3 input, not the trailing axes/, '/n/ReduceMean');
  });

  it('ReduceMean keepdims=0 with nothing restoring the axis', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', [4, 4]);
    g.scope('/n');
    const ms = g.reduce('ReduceMean', g.op('Pow', [x, g.constant(2)]), [-1], 0);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constant(1e-6)])])]);
    g.output(g.op('Mul', [x, r]), 'float32', [4, 4]);
    expectUnfused(g.bytes(), /keepdims=0 and nothing restores/, '/n/ReduceMean');
  });

  it('epsilon that is not a constant (a graph input)', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    const eps = g.input('eps', 'float32', []);
    g.scope('/n');
    const ms = g.reduce('ReduceMean', g.op('Pow', [x, g.constant(2)]), [-1]);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, eps])])]);
    g.output(g.op('Mul', [x, r]), 'float32', DIMS);
    expectUnfused(g.bytes(), /epsilon is not a constant/, '/n/ReduceMean');
  });

  for (const eps of [0, -1e-6, 2]) {
    it(`epsilon ${eps} out of range (0, 1]`, () => {
      const { g } = normModel({ eps });
      expectUnfused(g.bytes(), /epsilon .* is out of range \(0, 1\]/, '/model/layers.0/input_layernorm/ReduceMean');
    });
  }

  it('Pow exponent 3', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    g.scope('/n');
    const ms = g.reduce('ReduceMean', g.op('Pow', [x, g.constant(3)]), [-1]);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constant(1e-6)])])]);
    g.output(g.op('Mul', [x, r]), 'float32', DIMS);
    expectUnfused(g.bytes(), /exponent of the square is 3, not 2/, '/n/ReduceMean');
  });

  it('a weight that broadcasts along a non-normalized axis ([seq, 1])', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', [2, 5, 64]);
    g.scope('/n');
    const sq = g.op('Pow', [x, g.constant(2)]);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [g.reduce('ReduceMean', sq, [-1]), g.constant(1e-6)])])]);
    const w = g.init('w', 'float32', [5, 1], [1, 2, 3, 4, 5]);
    g.output(g.op('Mul', [g.op('Mul', [x, r]), w]), 'float32', [2, 5, 64]);
    expectUnfused(g.bytes(), /gamma \[5,1\]/, '/n/ReduceMean');
  });

  it('an interior value (the mean of squares) is also a graph output', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    g.scope('/n');
    const ms = g.reduce('ReduceMean', g.op('Pow', [x, g.constant(2)]), [-1]);
    g.output(ms, 'float32', ['batch', 'seq', 1]);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constant(1e-6)])])]);
    g.output(g.op('Mul', [x, r]), 'float32', DIMS);
    expectUnfused(g.bytes(), /'\/n\/ReduceMean_output_0' inside the norm is also used by a graph output/, '/n/ReduceMean');
  });

  it('the square of one tensor normalizes another', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    const z = g.input('z', 'float32', DIMS);
    g.scope('/n');
    const ms = g.reduce('ReduceMean', g.op('Pow', [x, g.constant(2)]), [-1]);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constant(1e-6)])])]);
    g.output(g.op('Mul', [z, r]), 'float32', DIMS);
    expectUnfused(g.bytes(), /x must be the same tensor in both places/, '/n/ReduceMean');
  });

  it('rstd read elsewhere by a Gemma norm: rstd excludes gemma, the whole site stays', () => {
    const { g } = normModel({ gamma: 'gemma' });
    const recip = g.nodes.find((n) => n.opType === 'Reciprocal')!;
    g.output(recip.output[0]!, 'float32', ['batch', 'seq', 1]);
    expectUnfused(g.bytes(), /rstd .* is used outside the norm, but gemma and rstd exclude each other|rstd and gemma/, '/model/layers.0/input_layernorm/ReduceMean');
  });

  it('rstd read elsewhere in an fp16 high_performance norm: the whole site stays', () => {
    const { g } = normModel({ dtype: 'float16' });
    const recip = g.nodes.find((n) => n.opType === 'Reciprocal')!;
    g.output(recip.output[0]!, 'float32', ['batch', 'seq', 1]);
    expectUnfused(g.bytes(), /rstd .* is used outside the norm, but .*exclude each other/, '/model/layers.0/input_layernorm/ReduceMean');
  });

  it('a norm whose gamma is an activation fuses without it; the Mul stays', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    const gate = g.input('gate', 'float32', DIMS);
    g.scope('/n');
    const y = rmsNorm(g, x, { gamma: 'none' });
    g.output(g.op('Mul', [y, gate]), 'float32', DIMS);
    const out = optimize(g.bytes());
    expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm', 'Mul']);
  });
});
