/** The declarative pattern matcher on its own: what each pattern feature matches and why it fails. */
import { expect } from 'chai';
import { Model } from '../../compiler/ir/graph.js';
import { loadModelBytes } from '../../compiler/onnx/model.js';
import { describePartial, matchAt, p, Tracer, type Match, type Pattern } from '../../passes/matcher/index.js';
import { DT, GraphBuilder } from '../helpers/graph.js';

/** All matches of `pat` rooted at the node producing `root`, and the tracer. */
function matches(g: GraphBuilder, root: string, pat: Pattern): { all: Match[]; tracer: Tracer } {
  g.output(root);
  const model = new Model(loadModelBytes(g.bytes()));
  model.inferTypes();
  const node = model.graph.nodes.find((n) => n.outputs[0] === root)!;
  const tracer = new Tracer();
  return { all: [...matchAt(model.graph, node, pat, tracer)], tracer };
}

const DIMS = [2, 8];

describe('passes/matcher', () => {
  it('commutative Add/Mul match both operand orders', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    const y = g.op('Mul', [g.op('Sqrt', [x]), x]);
    const { all } = matches(g, y, p.Mul(p.var('x'), p.Sqrt(p.var('x'))));
    expect(all).to.have.length(1);
    expect(all[0]!.values.x).to.equal('x');
    expect(all[0]!.site.map((n) => n.opType)).to.deep.equal(['Mul', 'Sqrt']);
  });

  it('non-commutative ops keep operand order', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    const y = g.op('Div', [g.op('Sqrt', [x]), x]);
    expect(matches(g, y, p.Div(p.var('x'), p.Sqrt(p.var('x')))).all).to.have.length(0);
  });

  it('the same capture must bind the same tensor', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    const z = g.input('z', 'float32', DIMS);
    const y = g.op('Mul', [x, g.op('Sqrt', [z])]);
    const { all, tracer } = matches(g, y, p.Mul(p.var('x'), p.Sqrt(p.var('x'))));
    expect(all).to.have.length(0);
    expect(tracer.best!.reason).to.match(/x must be the same tensor in both places/);
  });

  it('oneOf yields every alternative that matches, in order', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    const y = g.op('Mul', [x, x]);
    const { all } = matches(g, y, p.oneOf(p.Mul(p.var('a'), p.var('b')).as('first'), p.Mul(p.var('x'), p.var('x')).as('second')));
    expect(all.map((m) => Object.keys(m.nodes)[0])).to.deep.equal(['first', 'second']);
  });

  it('optCast matches zero or one Cast, the Cast alternative first', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float16', DIMS);
    const y = g.op('Sqrt', [g.op('Cast', [x], { to: DT.float32 })]);
    const { all } = matches(g, y, p.Sqrt(p.optCast(p.var('x'), 'cast')));
    expect(all.map((m) => [m.values.x, m.nodes.cast?.opType ?? 'none'])).to.deep.equal([
      ['x', 'Cast'],
      [all[1]!.values.x, 'none'],
    ]);
    expect(all[1]!.values.x).to.match(/^Cast_\d+_output_0$/);
  });

  it('no-op Casts (fp32 -> fp32) and Identity are looked through and become part of the site', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    const y = g.op('Sqrt', [g.op('Identity', [g.op('Cast', [g.op('Abs', [x])], { to: DT.float32 })])]);
    const { all } = matches(g, y, p.Sqrt(p.Abs(p.var('x'))));
    expect(all).to.have.length(1);
    expect(all[0]!.site.map((n) => n.opType)).to.deep.equal(['Sqrt', 'Identity', 'Cast', 'Abs']);
  });

  it('const matches constants within tolerance, through Constant nodes and Casts; constAny captures values', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    const two = g.op('Cast', [g.constant(2, 'int64')], { to: DT.float32 });
    const y = g.op('Add', [g.op('Pow', [x, two]), g.scalar(1e-5, 'float16', 'eps')]);
    const { all } = matches(g, y, p.Add(p.Pow(p.var('x'), p.const(2, 'the exponent')), p.constAny('eps', 'epsilon')));
    expect(all).to.have.length(1);
    expect(all[0]!.consts.eps![0]).to.be.closeTo(1e-5, 1e-7); // fp16 1e-5
    expect(all[0]!.constNodes.map((n) => n.opType)).to.deep.equal(['Cast', 'Constant']);
    expect(all[0]!.site.map((n) => n.opType)).to.deep.equal(['Add', 'Pow']);
  });

  it('failures carry a reason and the offending node; the tracer keeps the furthest partial match', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    g.scope('/s');
    const y = g.op('Sqrt', [g.op('Add', [g.op('Pow', [x, g.constant(3)]), g.input('eps', 'float32', [])])]);
    const pat = p.Sqrt(p.Add(p.Pow(p.var('x'), p.const(2, 'the exponent')), p.constAny('eps', 'epsilon')));
    const { all, tracer } = matches(g, y, pat);
    expect(all).to.have.length(0);
    // Pow(x, 3) fails at the exponent with the Pow matched; the other operand order fails earlier.
    expect(tracer.best!.reason).to.equal('the exponent is 3, not 2');
    expect(tracer.best!.at).to.equal('/s/Constant');
    expect(describePartial(tracer.best!)).to.match(/matched Sqrt <- Add <- Pow$/);
  });

  it('Fused patterns match rmsfuse-domain nodes and the requested output only', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', DIMS);
    const [y, sum] = g.opN('PreNorm', [x, '', x, 'w'], {}, { domain: 'rmsfuse', outputs: ['y', 'sum'] });
    g.init('w', 'float32', [8], new Array(8).fill(1));
    const r1 = g.op('Abs', [sum!]);
    expect(matches(g, r1, p.Abs(p.Fused(['PreNorm']))).all).to.have.length(0);
    const g2 = new GraphBuilder();
    const x2 = g2.input('x', 'float32', DIMS);
    g2.init('w', 'float32', [8], new Array(8).fill(1));
    const [y2] = g2.opN('PreNorm', [x2, '', x2, 'w'], {}, { domain: 'rmsfuse', outputs: ['y', 'sum'] });
    expect(matches(g2, g2.op('Abs', [y2!]), p.Abs(p.Fused(['PreNorm']))).all).to.have.length(1);
    void y;
  });
});
