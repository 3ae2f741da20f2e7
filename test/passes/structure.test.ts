/**
 * The fused-node contract of SPEC section 3 and what the pass keeps: exact text of a fused graph
 * (Before/Expected), names, functions, ir_version, value_info, dead code, idempotence, subgraphs,
 * the report, debug output and targets. Numerics where run: SPEC tolerances (fp32/fp16 fewer
 * than 0.1% of elements over 1e-3 relative error; int8 within 1).
 */
import { expect } from 'chai';
import { DT, GraphBuilder, renderModel, valueInfo } from '../helpers/graph.js';
import { attrs, expectFusedMatchesReference, expectSameOutputs, optimize } from './harness.js';
import { normModel, rmsNorm } from './spellings.js';

const DIMS = ['batch', 'seq', 8];
const D64 = ['batch', 'seq', 64];

/** An HF Llama fp16 post-attention norm after the residual Add, the sum also a graph output. */
function hfPreNorm(): Uint8Array {
  const g = new GraphBuilder({ opset: 17 });
  const x = g.input('hidden', 'float16', DIMS);
  const r = g.input('attn_out', 'float16', DIMS);
  g.scope('/model/layers.0');
  const s = g.op('Add', [x, r]);
  g.scope('/model/layers.0/post_attention_layernorm');
  const y = rmsNorm(g, s, { dtype: 'float16', normDims: [8], rsqrt: 'div1' });
  g.output(y, 'float16', DIMS);
  g.output(s, 'float16', DIMS);
  return g.bytes();
}

describe('passes: fused node contract', () => {
  it('Before/Expected: HF Llama fp16 residual + norm -> PreNorm high_performance', () => {
    const out = optimize(hfPreNorm());
    const L = '/model/layers.0/post_attention_layernorm';
    const expected = [
      'ir 10; opsets ai.onnx:17, rmsfuse:1',
      '  function rmsfuse.PreNorm<prenorm_f16_high_performance>(x, bias, residual, gamma) -> (y, sum)',
      `graph g(hidden: float16[batch,seq,8], attn_out: float16[batch,seq,8]) -> (${L}/Mul_1_output_0: float16[batch,seq,8], /model/layers.0/Add_output_0: float16[batch,seq,8])`,
      '  init weight: float16[8] [0.1311035, 0.1062012, -0.1850586, 1.467773, -0.06915283, 0.5639648, -1.694336, 0.8583984]',
      `  ${L}/PreNorm: ${L}/Mul_1_output_0, /model/layers.0/Add_output_0 = rmsfuse.PreNorm<prenorm_f16_high_performance>(hidden, '', attn_out, weight) ` +
        "{epsilon=0.000001, quant_type='none', dynamic_quant='none', precision_mode='high_performance', model_type='llama', rstd=0, has_bias=0}",
      '',
    ].join('\n');
    expect(out.text).to.equal(expected);
  });

  it('attributes have the SPEC types: epsilon FLOAT, strings STRING, rstd/has_bias INT', () => {
    const out = optimize(hfPreNorm());
    const n = out.model.graph!.node[0]!;
    expect(n.attribute.map((a) => `${a.name}:${a.type}`)).to.deep.equal([
      'epsilon:1', 'quant_type:3', 'dynamic_quant:3', 'precision_mode:3', 'model_type:3', 'rstd:2', 'has_bias:2',
    ]);
  });

  it('the function is the reference decomposition at the model opset, and the model runs as it is', async () => {
    const before = hfPreNorm();
    const out = optimize(before);
    const f = out.model.functions[0]!;
    expect(f.domain).to.equal('rmsfuse');
    expect(f.name).to.equal('PreNorm');
    expect(f.opsetImport.map((o) => `${o.domain}:${o.version}`)).to.deep.equal([':17']);
    expect(f.node.length).to.be.greaterThan(5);
    await expectFusedMatchesReference(out);
  });

  it('two identical layers share one function; distinct variants get one each', () => {
    const g = new GraphBuilder({ opset: 18 });
    const x = g.input('x', 'float32', DIMS);
    g.scope('/a');
    const a = rmsNorm(g, x, { normDims: [8] });
    g.scope('/b');
    const b = rmsNorm(g, a, { normDims: [8] });
    g.scope('/c');
    const c = rmsNorm(g, b, { normDims: [8], gamma: 'gemma' });
    g.output(c, 'float32', DIMS);
    const out = optimize(g.bytes());
    expect(out.model.graph!.node.map((n) => n.overload)).to.deep.equal(['rmsnorm_f32', 'rmsnorm_f32', 'rmsnorm_f32_gemma']);
    expect(out.model.functions.map((f) => f.overload)).to.deep.equal(['rmsnorm_f32', 'rmsnorm_f32_gemma']);
    expect(out.model.functions.every((f) => f.opsetImport[0]!.version === 18n)).to.equal(true);
    expect(out.model.irVersion).to.equal(10n);
  });

  it('names: the scope of the replaced nodes; fresh names without a scope; unique within the model', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    const a = rmsNorm(g, x, { normDims: [8] }); // no scope: Pow_0, ...
    const b = rmsNorm(g, a, { normDims: [8] });
    g.scope('/same');
    const c = rmsNorm(g, b, { normDims: [8] });
    const d = rmsNorm(g, c, { normDims: [8] });
    g.output(d, 'float32', DIMS);
    const out = optimize(g.bytes());
    expect(out.model.graph!.node.map((n) => n.name)).to.deep.equal(['RmsNorm', 'RmsNorm_1', '/same/RmsNorm', '/same/RmsNorm_1']);
  });

  it('graph inputs and outputs keep their names; fused outputs keep names, dtypes and shapes', () => {
    const before = hfPreNorm();
    const out = optimize(before);
    const orig = optimize(before, {}).model; // same input, same result
    expect(out.model.graph!.input.map((i) => i.name)).to.deep.equal(['hidden', 'attn_out']);
    expect(out.model.graph!.output).to.deep.equal(orig.graph!.output);
  });

  it('value_info of removed interior tensors goes; every other entry stays; unrelated dead code stays', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    g.scope('/n');
    const y = rmsNorm(g, x, { normDims: [8] });
    g.output(y, 'float32', DIMS);
    g.scope('/dead');
    const dead = g.op('Relu', [x]); // pre-existing dead code: read by nothing
    const pow = g.nodes.find((n) => n.opType === 'Pow')!.output[0]!;
    g.info(pow, 'float32', DIMS);
    g.info(y, 'float32', DIMS);
    g.info(dead, 'float32', DIMS);
    const out = optimize(g.bytes());
    expect(out.model.graph!.valueInfo.map((v) => v.name)).to.deep.equal([y, dead]);
    expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm', 'Relu']);
  });

  it('constants the site read are removed when nothing else reads them; shared ones stay while used', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    const eps = g.scalar(1e-6, 'float32', 'eps'); // shared by both norms and a third user
    const norm = (v: string) => {
      const ms = g.reduce('ReduceMean', g.op('Pow', [v, g.scalar(2, 'float32', 'two')]), [-1]);
      return g.op('Mul', [v, g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, eps])])])]);
    };
    const y = norm(norm(x));
    g.output(g.op('Add', [y, eps], {}, { outputs: ['out'] }), 'float32', DIMS);
    const out = optimize(g.bytes());
    expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm', 'RmsNorm', 'Add']);
    const inits = out.model.graph!.initializer.map((t) => t.name);
    expect(inits).to.include('eps');
    expect(inits.filter((n) => n.startsWith('two'))).to.deep.equal([]);
    expect(inits.filter((n) => n.includes('ones_gamma'))).to.have.length(2);
  });

  it('optimizing twice gives the same bytes (fused nodes and functions are never rewritten)', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float16', DIMS);
    const r = g.input('r', 'float16', DIMS);
    g.scope('/l0');
    const s = g.op('Add', [x, r]);
    g.scope('/l0/norm');
    const y = rmsNorm(g, s, { dtype: 'float16', normDims: [8], castBack: 'afterGamma' });
    g.scope('/l0/q');
    const q = g.op('QuantizeLinear', [g.op('Cast', [y], { to: 1 }), g.scalar(0.05, 'float32', 'scale'), g.scalar(0, 'int8', 'zp')], {}, { outputs: ['q'] });
    g.output(q, 'int8', DIMS);
    g.output(s, 'float16', DIMS);
    g.scope('/ln');
    g.output(rmsNorm(g, x, { dtype: 'float16', normDims: [8], gamma: 'none' }), 'float16', DIMS);
    // And one site left unfused (exponent 3): its remark repeats, nothing else changes.
    const once = optimize(g.bytes());
    expect(once.model.graph!.node.filter((n) => n.domain === 'rmsfuse').map((n) => n.opType)).to.deep.equal(['PreNorm', 'RmsNorm']);
    const twice = optimize(once.bytes);
    expect(Buffer.from(twice.bytes).equals(Buffer.from(once.bytes))).to.equal(true);
    expect(twice.report.fused).to.deep.equal([]);
  });

  it('a model with nothing to fuse comes back byte-identical', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    g.output(g.op('Relu', [x]), 'float32', DIMS);
    const before = g.bytes();
    const out = optimize(before);
    expect(Buffer.from(out.bytes).equals(Buffer.from(before))).to.equal(true);
  });

  it('rstd read elsewhere becomes the second output of RmsNorm (rstd=1)', async () => {
    const { g, y } = normModel({ normDims: [8] });
    const recip = g.nodes.find((n) => n.opType === 'Reciprocal')!.output[0]!;
    g.output(recip, 'float32', ['batch', 'seq', 1]);
    const before = g.bytes();
    const out = optimize(before);
    const n = out.model.graph!.node[0]!;
    expect(out.model.graph!.node.length).to.equal(1);
    expect(attrs(n).rstd).to.equal(1);
    expect(n.output).to.deep.equal([y, recip]);
    expect(n.overload).to.equal('rmsnorm_f32_rstd');
    await expectSameOutputs(before, out.bytes);
    await expectFusedMatchesReference(out);
  });
});

describe('passes: subgraphs', () => {
  function ifModel(): Uint8Array {
    const branch = (name: string, gammaVal: number) => {
      const b = new GraphBuilder({ opset: 17, name });
      b.scope(`/${name}`);
      const y = rmsNorm(b, 'x', { normDims: [8] });
      b.nodes.push(...[]);
      // Different gamma per branch, so the branches are told apart numerically.
      b.initializers[0]!.rawData = new Uint8Array(Float32Array.from({ length: 8 }, (_, i) => gammaVal + i).buffer);
      b.outputs.push(valueInfo(y, 'float32'));
      return { graph: b.graph(), y };
    };
    const g = new GraphBuilder({ opset: 17 });
    g.input('x', 'float32', DIMS);
    const cond = g.input('cond', 'bool', []);
    const t = branch('then', 1);
    const e = branch('else', -3);
    g.op('If', [cond], { then_branch: t.graph, else_branch: e.graph }, { name: 'if', outputs: ['y'] });
    g.output('y', 'float32', DIMS);
    return g.bytes();
  }

  it('norms inside If branches fuse, with the graph path in the report, and run the same', async () => {
    const before = ifModel();
    const out = optimize(before);
    const attrsG = out.model.graph!.node[0]!.attribute;
    for (const a of attrsG) expect(a.g!.node.map((n) => `${n.domain}.${n.opType}`)).to.deep.equal(['rmsfuse.RmsNorm']);
    expect(out.report.fused.map((f) => f.graph)).to.deep.equal(['if.then', 'if.else']);
    expect(out.model.functions.map((f) => f.overload)).to.deep.equal(['rmsnorm_f32']);
    await expectSameOutputs(before, out.bytes);
  });

  it('a norm inside a Loop body fuses and the loop runs the same', async () => {
    const body = new GraphBuilder({ opset: 17, name: 'body' });
    body.input('i', 'int64', []);
    body.input('cond_in', 'bool', []);
    const h = body.input('h', 'float32', DIMS);
    body.scope('/body');
    const y = rmsNorm(body, h, { normDims: [8] });
    const cond = body.op('Identity', [body.inputs[1]!.name]);
    body.output(cond, 'bool', []);
    body.output(y, 'float32', DIMS);
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float32', DIMS);
    const trip = g.init('trip', 'int64', [], [3]);
    const c0 = g.init('c0', 'bool', [], [1]);
    g.op('Loop', [trip, c0, x], { body: body.graph() }, { name: 'loop', outputs: ['out'] });
    g.output('out', 'float32', DIMS);
    const before = g.bytes();
    const out = optimize(before);
    expect(out.model.graph!.node[0]!.attribute[0]!.g!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm', 'Identity']);
    await expectSameOutputs(before, out.bytes, { spread: 1 });
  });
});

describe('passes: report, debug, explain', () => {
  it('report entries: node, op_type, attributes, replaced node names, graph', () => {
    const out = optimize(hfPreNorm());
    expect(out.report.fused).to.have.length(1);
    const f = out.report.fused[0]!;
    expect(f.node).to.equal('/model/layers.0/post_attention_layernorm/PreNorm');
    expect(f.op_type).to.equal('PreNorm');
    expect(f.attributes).to.deep.equal({
      epsilon: Math.fround(1e-6), quant_type: 'none', dynamic_quant: 'none', precision_mode: 'high_performance',
      model_type: 'llama', rstd: 0, has_bias: 0,
    });
    expect(f.graph).to.equal('');
    expect([...f.replaced].sort()).to.deep.equal(
      ['Add', 'Cast', 'Cast_1', 'Constant', 'Constant_1', 'Constant_2', 'Div', 'Mul', 'Mul_1', 'Pow', 'ReduceMean', 'Sqrt']
        .map((n) => (n === 'Add' ? '/model/layers.0/Add' : `/model/layers.0/post_attention_layernorm/${n}`)).concat(['/model/layers.0/post_attention_layernorm/Add']).sort(),
    );
    const counts = out.report.passes.find((p) => p.pass === 'fuse-rms-norm')!.counts;
    expect(counts).to.deep.equal({ 'rms-norm': 1, residual: 1, 'quant-static': 0, 'quant-dynamic': 0 });
  });

  it('debug prints attempts, matches and hits per rule, and best partial matches of failed roots', () => {
    const { g } = normModel({ eps: 0 });
    const out = optimize(g.bytes(), { debug: true });
    const log = out.log.join('\n');
    expect(log).to.match(/rule rms-norm: \d+ attempts, \d+ matches, 0 fused/);
    expect(log).to.match(/rms-norm at \/model\/layers\.0\/input_layernorm\/Mul_1: epsilon 0 is out of range/);
  });

  it('explain prints the best partial match for the named candidates only', () => {
    const { g } = normModel({ square: 'pow', eps: 2 });
    const out = optimize(g.bytes(), { explain: ['/model/layers.0/input_layernorm/ReduceMean'] });
    expect(out.log).to.have.length(1);
    expect(out.log[0]).to.match(/explain \/model\/layers\.0\/input_layernorm\/ReduceMean: epsilon 2 is out of range .*matched Mul <- Mul <- Reciprocal/);
  });
});

describe('passes: targets', () => {
  it('webgpu and no target fuse every valid site', () => {
    for (const target of [undefined, 'webgpu'] as const) {
      const out = optimize(normModel({}).g.bytes(), { target });
      expect(out.model.graph!.node.map((n) => n.opType)).to.deep.equal(['RmsNorm']);
    }
  });

  it('ascend910b: an fp32 Norm stays unfused (ATB Norm takes fp16/bf16), with the validator reason', () => {
    const out = optimize(normModel({}).g.bytes(), { target: 'ascend910b' });
    expect(out.model.graph!.node.some((n) => n.domain === 'rmsfuse')).to.equal(false);
    expect(out.report.remarks[0]!.reason).to.match(/ascend910b: I:ERROR_INVALID_TENSOR_INI_MATCH/);
  });

  it('ascend910b: fp16 x with an fp32 gamma gets a converted fp16 gamma initializer; the report says so', async () => {
    const before = normModel({ dtype: 'float16', castBack: 'afterGamma' }).g.bytes();
    const out = optimize(before, { target: 'ascend910b' });
    const n = out.model.graph!.node[0]!;
    expect(n.input[1]).to.equal('weight_float16');
    expect(out.model.graph!.initializer.map((t) => `${t.name}:${t.dataType}`)).to.deep.equal(['weight_float16:10']);
    expect(out.report.fused[0]!.notes!.join()).to.match(/gamma 'weight' \(float32\[64\]\) converted to float16\[64\]/);
    // gamma rounded to fp16 is the target's math; still within SPEC tolerance of the original.
    await expectSameOutputs(before, out.bytes, { exactSums: true });
  });

  it('ascend310p: PostNorm fuses, its static quantization stays outside (no PostNorm int8 there), with a remark', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'float16', D64);
    const r = g.input('r', 'float16', D64);
    g.scope('/l');
    const s = g.op('Add', [x, r]);
    g.scope('/l/norm');
    const y = rmsNorm(g, s, { dtype: 'float16', castBack: 'afterGamma' });
    g.output(y, 'float16', D64);
    g.scope('/l/q');
    g.output(g.op('QuantizeLinear', [y, g.scalar(0.05, 'float16', 'scale'), g.scalar(0, 'int8', 'zp')], {}, { outputs: ['q'] }), 'int8', D64);
    const bytes = g.bytes();
    const none = optimize(bytes);
    expect(none.model.graph!.node.map((n) => n.opType)).to.deep.equal(['PostNorm']);
    const p310 = optimize(bytes, { target: 'ascend310p' });
    expect(p310.model.graph!.node.map((n) => n.opType)).to.deep.equal(['PostNorm', 'QuantizeLinear']);
    expect(p310.report.remarks).to.have.length(1);
    expect(p310.report.remarks[0]!.node).to.equal('/l/q/QuantizeLinear');
    expect(p310.report.remarks[0]!.reason).to.match(/ascend310p/);
  });

  it('ascend910b: static quantization without beta gets zero beta and [1] scale/offset initializers', async () => {
    const g = new GraphBuilder({ opset: 19 });
    const x = g.input('x', 'float16', D64);
    g.scope('/n');
    const y = rmsNorm(g, x, { dtype: 'float16', castBack: 'afterGamma' });
    g.output(g.op('QuantizeLinear', [y, g.scalar(0.05, 'float16', 'scale'), g.scalar(2, 'int8', 'zp')], {}, { outputs: ['q'] }), 'int8', D64);
    const before = g.bytes();
    const out = optimize(before, { target: 'ascend910b' });
    const n = out.model.graph!.node[0]!;
    expect(n.input).to.deep.equal(['x', 'weight_float16', 'zero_beta', 'scale_float16', 'zp_int8']);
    expect(renderModel(out.model)).to.match(/init zp_int8: int8\[1\] \[2\]/);
    await expectSameOutputs(before, out.bytes, { exactSums: true });
  });

  it('bf16 with the gamma multiply in bf16: high_performance is fp16-only, so the norm fuses without gamma and says why', () => {
    const g = new GraphBuilder({ opset: 17 });
    const x = g.input('x', 'bfloat16', D64);
    g.scope('/n');
    const x32 = g.op('Cast', [x], { to: DT.float32 });
    const ms = g.reduce('ReduceMean', g.op('Pow', [x32, g.constant(2)]), [-1]);
    const n = g.op('Mul', [x32, g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constant(1e-6)])])])]);
    const y = g.op('Mul', [g.op('Cast', [n], { to: DT.bfloat16 }), g.init('w', 'bfloat16', [64], new Array(64).fill(1))]);
    g.output(y, 'bfloat16', D64);
    const out = optimize(g.bytes());
    expect(out.model.graph!.node.map((x) => x.opType)).to.deep.equal(['RmsNorm', 'Mul']);
    expect(attrs(out.model.graph!.node[0]!).precision_mode).to.equal('high_precision');
    expect(out.report.remarks).to.have.length(1);
    expect(out.report.remarks[0]!.node).to.equal('/n/Mul_1');
    expect(out.report.remarks[0]!.reason).to.match(/high_performance .* needs float16 x; got bfloat16/);
  });
});
