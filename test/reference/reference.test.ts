/**
 * The CPU reference on small hand-computed cases (bf16 ones in particular: onnxruntime's CPU
 * provider has no bf16 for most ops, so these are bf16's only check), and the structure of the
 * decomposition functions (names, inputs, attribute references, opset-dependent reduce axes).
 */
import { expect } from 'chai';
import { type DecomposeIO, buildFunction, functionInputs, functionName } from '../../compiler/op/decompose.js';
import { type InputRole, type RmsNormParam, defaultParam } from '../../compiler/op/param.js';
import { f32ToBf16Bits } from '../../runtime/numeric.js';
import { rmsNormReference } from '../../runtime/reference.js';

const f32 = (...v: number[]) => Float32Array.from(v);
const P = (layer: RmsNormParam['layerType'], over: Partial<RmsNormParam> = {}): RmsNormParam => ({ ...defaultParam(layer, 1e-6), ...over });

describe('reference: hand-computed cases', () => {
  // x = [3, 4]: mean(x^2) = 12.5, rstd = 1/sqrt(12.5 + 1e-6) = 0.28284270 (fp32 0.28284270...)
  // x*rstd = [0.8485281, 1.1313709]
  const x = f32(3, 4);
  const rstd = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(12.5 + Math.fround(1e-6)))));

  it('bf16 Norm: y rounded to bf16 with RNE', () => {
    const r = rmsNormReference(P('Norm'), 'bfloat16', 2, { x, gamma: f32(1, 1) });
    // 0.8485281 in [0.5, 1): ulp 2^-8 -> 217.22 -> 217/256; 1.1313709 in [1, 2): ulp 2^-7 -> 144.82 -> 145/128
    expect(Array.from(r.y!)).to.deep.equal([0.84765625, 1.1328125]);
    expect(Array.from(r.y!).map(f32ToBf16Bits)).to.deep.equal([0x3f59, 0x3f91]);
    expect(r.rstd).to.equal(undefined);
  });

  it('bf16 high_performance rounds x*rstd to bf16 before the gamma multiply', () => {
    const gamma = f32(1.5, 1.5);
    const hp = rmsNormReference(P('Norm', { precisionMode: 'high_performance' }), 'bfloat16', 2, { x, gamma });
    const hi = rmsNormReference(P('Norm'), 'bfloat16', 2, { x, gamma });
    // hp: 0.84765625*1.5 = 1.271484375 -> 162.75/128 -> 163/128; 1.1328125*1.5 = 1.69921875 -> 217.5 tie -> 218/128
    expect(Array.from(hp.y!)).to.deep.equal([1.2734375, 1.703125]);
    // high precision: 1.2727922 -> 163/128; 1.6970563 -> 217.22 -> 217/128
    expect(Array.from(hi.y!)).to.deep.equal([1.2734375, 1.6953125]);
  });

  it('bf16 gemma multiplies by (1 + gamma) in fp32', () => {
    const r = rmsNormReference(P('Norm', { modelType: 'gemma' }), 'bfloat16', 2, { x, gamma: f32(0, 0.5) });
    // [0.8485281, 1.6970563] -> [217/256, 217/128]
    expect(Array.from(r.y!)).to.deep.equal([0.84765625, 1.6953125]);
  });

  it('rstd output is the fp32 per-row rstd', () => {
    const r = rmsNormReference(P('Norm', { rstd: true }), 'float32', 2, { x: f32(3, 4, 0, 0), gamma: f32(1, 1) });
    expect(r.rstd![0]).to.equal(rstd);
    expect(r.rstd![0]).to.be.closeTo(1 / Math.sqrt(12.5), 1e-7);
    // an all-zero row: rstd = 1/sqrt(eps), y = 0
    expect(r.rstd![1]).to.equal(Math.fround(1 / Math.fround(Math.sqrt(Math.fround(1e-6)))));
    expect(Array.from(r.y!.subarray(2))).to.deep.equal([0, 0]);
  });

  it('bf16 PreNorm: sum is rounded to bf16 (ties to even) before the norm reads it', () => {
    // 1 + 2^-8 is a tie -> 1 (even); 1 + 3*2^-8 is a tie -> 1 + 2^-6 (even)
    const r = rmsNormReference(P('PreNorm'), 'bfloat16', 2, { x: f32(1, 1), residual: f32(2 ** -8, 3 * 2 ** -8), gamma: f32(1, 1) });
    expect(Array.from(r.sum!)).to.deep.equal([1, 1.015625]);
    const again = rmsNormReference(P('Norm'), 'bfloat16', 2, { x: r.sum!, gamma: f32(1, 1) });
    expect(Array.from(r.y!)).to.deep.equal(Array.from(again.y!));
    // PostNorm returns y only
    const post = rmsNormReference(P('PostNorm'), 'bfloat16', 2, { x: f32(1, 1), residual: f32(2 ** -8, 3 * 2 ** -8), gamma: f32(1, 1) });
    expect(post.sum).to.equal(undefined);
    expect(Array.from(post.y!)).to.deep.equal(Array.from(r.y!));
  });

  it('PreNorm with bias: sum = T((x + residual) + bias)', () => {
    const r = rmsNormReference(P('PreNorm', { hasBias: true }), 'float16', 2, {
      x: f32(1, 2, 3, 4),
      residual: f32(0.5, 0.25, -1, -1),
      bias: f32(0.125, -0.25),
      gamma: f32(1, 1),
    });
    expect(Array.from(r.sum!)).to.deep.equal([1.625, 2, 2.125, 2.75]);
  });

  it('bf16 dynamic int8: scale = max|v|/127, q = round(v/scale); zero row gets the 2^-23 floor', () => {
    const r = rmsNormReference(P('Norm', { quantType: 'int8', dynamicQuant: 'symmetric' }), 'bfloat16', 2, {
      x: f32(3, 4, 0, 0, 3, -4),
      gamma: f32(1, 1),
    });
    // v = [0.84765625, 1.1328125]; 0.84765625 / (1.1328125/127) = 95.03 -> 95
    expect(Array.from(r.q!)).to.deep.equal([95, 127, 0, 0, 95, -127]);
    expect(r.scale![0]).to.equal(Math.fround(1.1328125 / 127));
    expect(r.scale![1]).to.equal(2 ** -23);
    expect(r.scale![2]).to.equal(r.scale![0]);
    expect(r.y).to.equal(undefined);
  });

  it('dynamic int8 with beta quantizes T(y + beta)', () => {
    const r = rmsNormReference(P('Norm', { quantType: 'int8', dynamicQuant: 'symmetric' }), 'bfloat16', 2, {
      x: f32(0, 0),
      gamma: f32(1, 1),
      beta: f32(0.5, -0.25),
    });
    // y = 0, v = beta: scale = 0.5/127, q = [127, -63.5 -> -64 (tie to even)]
    expect(Array.from(r.q!)).to.deep.equal([127, -64]);
  });

  it('static int8: saturation, offset, and beta', () => {
    // x = [1, -1, 1, -1]: rstd = 1/sqrt(1 + 1e-6), y ~= +-gamma * 0.9999995
    const xs = f32(1, -1, 1, -1);
    const gamma = f32(1, 1, 0.25, 0.75);
    const base = P('Norm', { quantType: 'int8' });
    // scale 1/128: +-127.99994 -> +-128 -> [127, -128]; 0.25 -> 31.99998 -> 32; -0.75 -> -96
    expect(Array.from(rmsNormReference(base, 'float32', 4, { x: xs, gamma, scale: 1 / 128 }).q!)).to.deep.equal([127, -128, 32, -96]);
    // offset +5 shifts after rounding and saturates again
    expect(Array.from(rmsNormReference(base, 'float32', 4, { x: xs, gamma, scale: 1 / 128, offset: 5 }).q!)).to.deep.equal([127, -123, 37, -91]);
    // beta 1/256 adds half a step: 0.25*0.9999995 + 1/256 -> 32.49998 -> 32
    expect(Array.from(rmsNormReference(base, 'float32', 4, { x: xs, gamma, scale: 1 / 128, beta: f32(0, 0, 1 / 256, 2 / 256) }).q!)).to.deep.equal([127, -128, 32, -95]);
  });

  it('PostNorm static int8 returns q and the unquantized y', () => {
    const r = rmsNormReference(P('PostNorm', { quantType: 'int8' }), 'float16', 2, { x: f32(3, 4), residual: f32(0, 0), gamma: f32(1, 1), scale: 0.01 });
    // y in fp16: 0.8485281 -> 0.84863281 (869/1024); 1.1313709 -> 1.1318359 (1159/1024)
    expect(Array.from(r.y!)).to.deep.equal([869 / 1024, 1159 / 1024]);
    // q quantizes the fp16 y: 84.86 -> 85, 113.18 -> 113
    expect(Array.from(r.q!)).to.deep.equal([85, 113]);
    expect(r.sum).to.equal(undefined);
  });

  it('k > 1: H is the product of the normalized axes', () => {
    const r = rmsNormReference(P('Norm', { rstd: true }), 'float32', 4, { x: f32(1, 1, 1, 1, 2, 2, 2, 2), gamma: f32(1, 2, 3, 4) });
    expect(r.rstd!.length).to.equal(2);
    expect(r.rstd![1]).to.be.closeTo(0.5, 1e-6);
  });

  it('rejects mismatched lengths', () => {
    expect(() => rmsNormReference(P('Norm'), 'float32', 3, { x: f32(1, 2, 3, 4), gamma: f32(1, 1, 1) })).to.throw(/multiple of H/);
    expect(() => rmsNormReference(P('Norm'), 'float32', 2, { x: f32(1, 2), gamma: f32(1, 1, 1) })).to.throw(/gamma/);
    expect(() => rmsNormReference(P('PreNorm'), 'float32', 2, { x: f32(1, 2), gamma: f32(1, 1) })).to.throw(/residual/);
  });
});

describe('decompose: function structure', () => {
  const io = (over: Partial<DecomposeIO> = {}): DecomposeIO => ({ xDType: 'float16', gammaDType: 'float16', present: new Set<InputRole>(), opset: 17, ...over });

  it('names by structure: op type as name, structural overload, epsilon not in it', () => {
    const f = buildFunction(P('PreNorm', { precisionMode: 'high_performance' }), io());
    expect(f.domain).to.equal('rmsfuse');
    expect(f.name).to.equal('PreNorm');
    expect(f.overload).to.equal('prenorm_f16_high_performance');
    expect(functionName(P('PreNorm', { epsilon: 1e-3, precisionMode: 'high_performance' }), io())).to.equal(f.overload);
    expect(f.opsetImport.map((o) => [o.domain, o.version])).to.deep.equal([['', 17n]]);
  });

  it('distinct structures get distinct names, equal ones equal names', () => {
    const names = new Map<string, string>();
    const params: RmsNormParam[] = [
      P('Norm'), P('Norm', { modelType: 'gemma' }), P('Norm', { precisionMode: 'high_performance' }), P('Norm', { rstd: true }),
      P('Norm', { quantType: 'int8' }), P('Norm', { quantType: 'int8', dynamicQuant: 'symmetric' }),
      P('PreNorm'), P('PostNorm'), P('PreNorm', { quantType: 'int8' }), P('PostNorm', { quantType: 'int8', dynamicQuant: 'symmetric' }),
    ];
    const presents: InputRole[][] = [[], ['beta'], ['offset'], ['beta', 'offset']];
    for (const param of params)
      for (const xDType of ['float32', 'float16', 'bfloat16'] as const)
        for (const gammaDType of ['float32', xDType] as const)
          for (const present of presents)
            for (const k of [1, 2]) {
              const d: DecomposeIO = { xDType, gammaDType, present: new Set(present), normalizedAxes: k, opset: 18 };
              // the structure: what the body reads (present filtered to the variant's optional slots)
              const fn = buildFunction(param, d);
              const body = JSON.stringify({ inputs: fn.input, outputs: fn.output, nodes: fn.node.map((n) => [n.opType, n.input, n.output, n.attribute.map((a) => [a.name, a.i, a.f, a.refAttrName, a.ints.map(String)])]) }, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
              const name = functionName(param, d);
              const prev = names.get(name);
              if (prev !== undefined) expect(prev, `name ${name} used for two different bodies`).to.equal(body);
              names.set(name, body);
            }
    // Different names may share a body (fp32 high_performance is plain fp32 math), which is
    // harmless; the property that matters, one name -> one body, is checked above.
    expect(names.size).to.be.greaterThan(100);
  });

  it('declares inputs positionally, drops trailing absent ones, never reads interior absent ones', () => {
    const stat = P('Norm', { quantType: 'int8' });
    expect(functionInputs(stat, new Set())).to.deep.equal(['x', 'gamma', 'beta', 'scale']);
    expect(functionInputs(stat, new Set(['offset']))).to.deep.equal(['x', 'gamma', 'beta', 'scale', 'offset']);
    const f = buildFunction(stat, io({ present: new Set(['offset']) }));
    const read = new Set(f.node.flatMap((n) => n.input));
    expect(read.has('beta')).to.equal(false);
    expect(read.has('offset')).to.equal(true);
    expect(functionInputs(P('PreNorm'), new Set())).to.deep.equal(['x', 'bias', 'residual', 'gamma']);
    expect(functionInputs(P('Norm', { quantType: 'int8', dynamicQuant: 'symmetric' }), new Set())).to.deep.equal(['x', 'gamma']);
  });

  it('reads epsilon through an attribute reference and declares every fused attribute', () => {
    const f = buildFunction(P('Norm'), io());
    const c = f.node.find((n) => n.attribute.some((a) => a.refAttrName === 'epsilon'));
    expect(c?.opType).to.equal('Constant');
    expect(f.attribute).to.include.members(['epsilon', 'quant_type', 'dynamic_quant', 'precision_mode', 'model_type', 'rstd', 'has_bias']);
  });

  it('reduce axes: attribute below opset 18, input from 18', () => {
    const f17 = buildFunction(P('Norm'), io({ opset: 17, normalizedAxes: 2 }));
    const rm17 = f17.node.find((n) => n.opType === 'ReduceMean')!;
    expect(rm17.input).to.have.length(1);
    expect(rm17.attribute.find((a) => a.name === 'axes')!.ints).to.deep.equal([-2n, -1n]);
    const f18 = buildFunction(P('Norm'), io({ opset: 18 }));
    const rm18 = f18.node.find((n) => n.opType === 'ReduceMean')!;
    expect(rm18.input).to.have.length(2);
    expect(rm18.attribute.some((a) => a.name === 'axes')).to.equal(false);
  });

  it('refuses has_bias disagreeing with the bias input, and opsets below 13', () => {
    expect(() => buildFunction(P('PreNorm', { hasBias: true }), io())).to.throw(/has_bias/);
    expect(() => buildFunction(P('PreNorm'), io({ present: new Set(['bias']) }))).to.throw(/has_bias/);
    expect(() => buildFunction(P('Norm'), io({ opset: 12 }))).to.throw(/opset/);
  });
});
