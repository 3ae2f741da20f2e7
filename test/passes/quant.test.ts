/**
 * Stages 3 and 4: static int8 QuantizeLinear and dynamic symmetric int8 quantization behind a
 * fused norm. Numerics (SPEC section 2): int8 outputs within 1; float outputs fewer than 0.1% of
 * elements over 1e-3 relative error; the dynamic per-row scale within 2^-8 relative.
 */
import { expect } from 'chai';
import { DT, GraphBuilder } from '../helpers/graph.js';
import { attrs, expectFusedMatchesReference, expectSameOutputs, optimize } from './harness.js';
import { rmsNorm, type NormSpelling } from './spellings.js';

type Layer = 'norm' | 'pre' | 'post';

interface QuantOptions {
  layer?: Layer;
  dtype?: 'float32' | 'float16';
  beta?: boolean;
  /** The norm output y is also read by something else (a graph output). */
  yOutside?: boolean;
  spelling?: NormSpelling;
}

interface StaticOptions extends QuantOptions {
  zp?: 'int8' | 'uint8' | 'none';
  /** Keep the QDQ pair: a DequantizeLinear reads q. */
  dq?: boolean;
}

interface DynamicOptions extends QuantOptions {
  scaleOp?: 'div127' | 'mul1over127';
  order?: 'clipRound' | 'roundClip';
  keepdims?: 0 | 1;
}

const DIMS = ['batch', 'seq', 64];

/** x [, residual] -> (residual Add) -> norm -> y, with the quantization appended by `quant`. */
function normThen(o: QuantOptions, quant: (g: GraphBuilder, v: string) => void) {
  const g = new GraphBuilder({ opset: 17 });
  const T = o.dtype ?? 'float32';
  const x = g.input('x', T, DIMS);
  let s = x;
  const layer = o.layer ?? 'norm';
  if (layer !== 'norm') {
    const r = g.input('residual', T, DIMS);
    g.scope('/model/layers.0');
    s = g.op('Add', [x, r]);
    if (layer === 'pre') g.output(g.op('Add', [s, g.input('other', T, DIMS)], {}, { outputs: ['next'] }), T, DIMS);
  }
  g.scope('/model/layers.0/input_layernorm');
  // Quantization follows a high_precision norm (high_performance excludes quantization).
  const y = rmsNorm(g, s, { dtype: T, castBack: 'afterGamma', ...o.spelling });
  if (o.yOutside) g.output(y, T, DIMS);
  g.scope('/model/layers.0/quant');
  let v = y;
  if (o.beta) v = g.op('Add', [v, g.init('beta', T, [64], Array.from({ length: 64 }, (_, i) => ((i * 5) % 11) * 0.1 - 0.5))]);
  // fp16: the quantizer reads fp32 (exact upcast), as QuantizeLinear with an fp32 scale needs.
  if (T === 'float16') v = g.op('Cast', [v], { to: DT.float32 });
  quant(g, v);
  return g;
}

function staticModel(o: StaticOptions = {}) {
  return normThen(o, (g, v) => {
    const scale = g.scalar(0.02, 'float32', 'scale');
    const zp = o.zp ?? 'int8';
    const ins = zp === 'none' ? [v, scale] : [v, scale, g.scalar(zp === 'int8' ? -3 : 128, zp, 'zero_point')];
    const q = g.op('QuantizeLinear', ins, {}, { outputs: ['q'] });
    g.output(q, zp === 'uint8' || zp === 'none' ? 'uint8' : 'int8', DIMS);
    if (o.dq) g.output(g.op('DequantizeLinear', [q, ...ins.slice(1)], {}, { outputs: ['dq'] }), 'float32', DIMS);
  });
}

function dynamicModel(o: DynamicOptions = {}) {
  return normThen(o, (g, v) => {
    const keep = o.keepdims ?? 1;
    let m = g.reduce('ReduceMax', g.op('Abs', [v]), [-1], keep);
    m = o.scaleOp === 'mul1over127' ? g.op('Mul', [m, g.constant(1 / 127)]) : g.op('Div', [m, g.constant(127)]);
    if (keep === 0) m = g.op('Unsqueeze', [m, g.init('axes', 'int64', [1], [-1])]);
    g.output(m, 'float32', ['batch', 'seq', 1]);
    const d = g.op('Div', [v, m]);
    const lo = g.constant(-128), hi = g.constant(127);
    const c = o.order === 'roundClip' ? g.op('Round', [g.op('Clip', [d, lo, hi])]) : g.op('Clip', [g.op('Round', [d]), lo, hi]);
    g.output(g.op('Cast', [c], { to: DT.int8 }, { outputs: ['q'] }), 'int8', DIMS);
  });
}

const OP: Record<Layer, string> = { norm: 'RmsNorm', pre: 'PreNorm', post: 'PostNorm' };

describe('passes: static int8 quantization (stage 3)', () => {
  const cases: { name: string; o: StaticOptions; outputs: (sum: boolean) => string[] }[] = [
    { name: 'Norm fp32, QDQ pair (the DequantizeLinear stays)', o: { dq: true }, outputs: () => ['q'] },
    { name: 'Norm fp32 with beta', o: { beta: true }, outputs: () => ['q'] },
    { name: 'Norm fp16 (Cast to fp32 before QuantizeLinear) with beta', o: { dtype: 'float16', beta: true }, outputs: () => ['q'] },
    { name: 'Norm fp32 without a zero point, output_dtype int8 is not set: uint8 stays outside', o: { zp: 'none' }, outputs: () => [] },
    { name: 'PreNorm fp32 with beta: q and the sum', o: { layer: 'pre', beta: true }, outputs: () => ['q', 'sum'] },
    { name: 'PostNorm fp16 whose y is also read: q and y', o: { layer: 'post', dtype: 'float16', yOutside: true }, outputs: () => ['q', 'y'] },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const g = staticModel(c.o);
      const before = g.bytes();
      const out = optimize(before);
      const fused = out.model.graph!.node.filter((n) => n.domain === 'rmsfuse');
      const layer = c.o.layer ?? 'norm';
      expect(fused.map((n) => n.opType)).to.deep.equal([OP[layer]]);
      const n = fused[0]!;
      const a = attrs(n);
      const quantized = c.o.zp !== 'none';
      expect(a.quant_type).to.equal(quantized ? 'int8' : 'none');
      expect(a.dynamic_quant).to.equal('none');
      if (quantized) {
        expect(n.output[0]).to.equal('q');
        expect(n.input).to.include.members(['scale', 'zero_point', ...(c.o.beta ? ['beta'] : [])]);
        expect(out.model.graph!.node.map((x) => x.opType)).to.deep.equal([OP[layer], ...(layer === 'pre' ? ['Add'] : []), ...(c.o.dq ? ['DequantizeLinear'] : [])]);
        expect(n.name).to.equal(`/model/layers.0/input_layernorm/${OP[layer]}`);
        expect(out.report.remarks).to.deep.equal([]);
      } else {
        expect(out.model.graph!.node.some((x) => x.opType === 'QuantizeLinear')).to.equal(true);
        expect(out.report.remarks.map((r) => r.reason).join()).to.match(/uint8/);
      }
      await expectSameOutputs(before, out.bytes, { exactSums: c.o.dtype === 'float16' });
      await expectFusedMatchesReference(out, { seed: 3 });
    });
  }

  it('a Norm whose y is also read elsewhere keeps the QuantizeLinear outside (only PostNorm has y and q), with a remark', async () => {
    const g = staticModel({ yOutside: true });
    const before = g.bytes();
    const out = optimize(before);
    expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm', 'QuantizeLinear']);
    expect(attrs(out.model.graph!.node[0]!).quant_type).to.equal('none');
    expect(out.report.remarks.map((r) => r.reason).join()).to.match(/only PostNorm keeps y next to q/);
    await expectSameOutputs(before, out.bytes);
  });

  it('a high_performance norm keeps its quantization outside (they exclude each other), with a remark', async () => {
    const g = staticModel({ dtype: 'float16', spelling: { castBack: 'beforeGamma' } });
    const out = optimize(g.bytes());
    expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm', 'Cast', 'QuantizeLinear']);
    expect(out.report.remarks.map((r) => r.reason).join()).to.match(/high_performance is not supported with quantization/);
  });
});

describe('passes: dynamic symmetric int8 quantization (stage 4)', () => {
  const cases: { name: string; o: DynamicOptions }[] = [
    { name: 'Norm fp32: ReduceMax(Abs) / 127, Round, Clip, Cast int8', o: {} },
    { name: 'Norm fp32 with beta, * (1/127), Clip before Round', o: { beta: true, scaleOp: 'mul1over127', order: 'roundClip' } },
    { name: 'Norm fp16 (Cast to fp32), ReduceMax keepdims=0 + Unsqueeze', o: { dtype: 'float16', keepdims: 0 } },
    { name: 'PreNorm fp32 (rmsfuse extension): q, scale and the sum', o: { layer: 'pre', beta: true } },
    { name: 'PostNorm fp16 (rmsfuse extension): q and scale', o: { layer: 'post', dtype: 'float16' } },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const g = dynamicModel(c.o);
      const before = g.bytes();
      const out = optimize(before);
      const layer = c.o.layer ?? 'norm';
      const nodes = out.model.graph!.node;
      expect(nodes.map((n) => n.opType), out.text).to.deep.equal([OP[layer], ...(layer === 'pre' ? ['Add'] : [])]);
      const n = nodes.find((x) => x.domain === 'rmsfuse')!;
      expect(attrs(n)).to.include({ quant_type: 'int8', dynamic_quant: 'symmetric', precision_mode: 'high_precision' });
      // Outputs keep the graph's names: q, the per-row scale tensor (keepdims shape), the sum.
      const scale = g.outputs.find((o) => o.name !== 'q' && o.name !== 'next')!.name;
      expect(n.output.slice(0, 2)).to.deep.equal(['q', scale]);
      expect(n.output.length).to.equal(layer === 'pre' ? 3 : 2);
      expect(out.report.remarks).to.deep.equal([]);
      await expectSameOutputs(before, out.bytes, { exactSums: c.o.dtype === 'float16' }, { [scale]: 'scale' });
      await expectFusedMatchesReference(out, { seed: 4 });
    });
  }

  it('QuantizeLinear with the per-row scale in blocks of one row (opset 21, output_dtype int8)', async () => {
    const g = new GraphBuilder({ opset: 21, irVersion: 10 });
    const x = g.input('x', 'float32', DIMS);
    g.scope('/model/norm');
    const y = rmsNorm(g, x, {});
    const scale = g.op('Div', [g.reduce('ReduceMax', g.op('Abs', [y]), [-1], 1), g.constant(127)]);
    g.output(scale, 'float32', ['batch', 'seq', 1]);
    g.output(g.op('QuantizeLinear', [y, scale], { axis: -1, block_size: 64, output_dtype: DT.int8 }, { outputs: ['q'] }), 'int8', DIMS);
    const before = g.bytes();
    const out = optimize(before);
    expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm']);
    expect(out.model.graph!.node[0]!.output).to.deep.equal(['q', scale]);
    // The static rule saw this QuantizeLinear first (per-row scale: not static); no remark survives.
    expect(out.report.remarks).to.deep.equal([]);
    await expectSameOutputs(before, out.bytes, {}, { [scale]: 'scale' });
  });
});
