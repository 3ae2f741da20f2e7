/**
 * The validator in rmsfuse's own mode (the default): SPEC section 2's combination rules on every
 * target, the extensions of ATB it allows on every target, what fusion converts for an Ascend
 * target, and the fused node's tensor contract. ATB's exact behaviour is conformance.test.ts.
 */
import { expect } from 'chai';
import { parseAtbParam } from '../../compiler/op/atb.js';
import { defaultParam, signature, type DType, type FusedNodeDesc, type RmsNormParam } from '../../compiler/op/param.js';
import type { Target } from '../../compiler/op/target.js';
import {
  formatOutcome,
  mathParamProblem,
  validate,
  validateForTarget,
  type Dim,
  type MaybeTensor,
  type TensorSpec,
  type Validation,
} from '../../compiler/op/validate.js';

const t = (dtype: DType, shape: Dim[], initializer?: boolean): TensorSpec => ({ dtype, shape, initializer });
const param = (over: Partial<RmsNormParam>): RmsNormParam => ({ ...defaultParam(over.layerType ?? 'Norm'), ...over });

const H = 4096;
const X = [2, 8, H];
const ROWS = [2, 8];

/** Inputs and outputs of a well-formed fused node of variant p with activation dtype T. */
function node(p: RmsNormParam, dt: DType): { inputs: MaybeTensor[]; outputs: TensorSpec[] } {
  const x = t(dt, X);
  const w = t(dt, [H], true);
  const byRole = {
    x,
    residual: t(dt, X),
    gamma: w,
    beta: w,
    bias: w,
    scale: t(dt, [1], true),
    offset: t('int8', [1], true),
  };
  const outByRole = { y: x, sum: x, q: t('int8', X), rstd: t('float32', [...ROWS, 1]), scale: t('float32', ROWS) };
  const sig = signature(p);
  const inputs = sig.inputs.filter((r) => r !== 'bias' || p.hasBias);
  return { inputs: inputs.map((r) => byRole[r]), outputs: sig.outputs.map((r) => outByRole[r]) };
}

function check(p: RmsNormParam, dt: DType, target: Target, strictAtb = false): Validation {
  const { inputs, outputs } = node(p, dt);
  return validate(p, inputs, outputs, target, { strictAtb });
}

function expectOk(v: Validation, what = ''): void {
  expect(v, `${what} ${v.ok ? '' : v.message}`).to.deep.equal({ ok: true });
}

function expectFail(v: Validation, outcome: string, message?: RegExp): void {
  expect(formatOutcome(v)).to.equal(outcome);
  if (message && !v.ok) expect(v.message).to.match(message);
}

const PRE_DYNAMIC = param({ layerType: 'PreNorm', quantType: 'int8', dynamicQuant: 'symmetric' });
const POST_DYNAMIC = param({ layerType: 'PostNorm', quantType: 'int8', dynamicQuant: 'symmetric' });
const PRE_HIGH_PERFORMANCE = param({ layerType: 'PreNorm', precisionMode: 'high_performance' });
const ALL_TARGETS: Target[] = [undefined, 'webgpu', 'ascend910a', 'ascend910b', 'ascend310p', 'ascend310b', 'ascend950'];

describe('validate: rmsfuse extensions of ATB (SPEC section 2)', () => {
  it('allows PreNorm with dynamic quantization on no target, webgpu, ascend910b, ascend310p and ascend950', () => {
    for (const target of [undefined, 'webgpu', 'ascend910b', 'ascend310p', 'ascend950'] as Target[]) {
      expectOk(check(PRE_DYNAMIC, 'float16', target), String(target));
    }
  });

  it('under strictAtb, refuses PreNorm with dynamic quantization at creation (ATB has no such operation)', () => {
    expectFail(check(PRE_DYNAMIC, 'float16', 'ascend910b', true), 'C:ERROR_INVALID_PARAM', /dynamic quantization on PreNorm is an rmsfuse extension/);
  });

  it('keeps ATB\'s dtype and size limits for the extension on Ascend (fp16 only, H <= 12288 as Norm dynamic quantization)', () => {
    expectFail(check(PRE_DYNAMIC, 'bfloat16', 'ascend910b'), 'I:ERROR_INVALID_TENSOR_INI_MATCH');
    expectOk(check(PRE_DYNAMIC, 'bfloat16', 'webgpu'));
    const x = t('float16', [4, 12304]);
    const w = t('float16', [12304]);
    const inputs = [x, x, w, w];
    const outputs = [t('int8', [4, 12304]), t('float32', [4]), x];
    expectFail(validate(PRE_DYNAMIC, inputs, outputs, 'ascend910b'), 'I:ERROR_INVALID_TENSOR_SIZE', /H <= 12288/);
    expectOk(validate(PRE_DYNAMIC, inputs, outputs, 'webgpu'));
  });

  it('allows PostNorm with dynamic quantization where ATB runs PostNorm int8 (ascend910b only), and everywhere off Ascend', () => {
    expectOk(check(POST_DYNAMIC, 'float16', 'ascend910b'));
    expectOk(check(POST_DYNAMIC, 'float16', 'webgpu'));
    expectFail(check(POST_DYNAMIC, 'float16', 'ascend310p'), 'C:ERROR_INVALID_PARAM', /only on ascend910b/);
  });

  it('allows PreNorm with high_performance (fp16) and PostNorm with gemma on Ascend; strictAtb refuses both', () => {
    expectOk(check(PRE_HIGH_PERFORMANCE, 'float16', 'ascend910b'));
    expectFail(check(PRE_HIGH_PERFORMANCE, 'float16', 'ascend910b', true), 'C:ERROR_INVALID_PARAM', /precisionMode/);
    const postGemma = param({ layerType: 'PostNorm', modelType: 'gemma' });
    expectOk(check(postGemma, 'bfloat16', 'ascend950'));
    expectFail(check(postGemma, 'bfloat16', 'ascend950', true), 'C:ERROR_INVALID_PARAM', /modelType/);
  });

  it('does not extend the SoCs: no PreNorm/PostNorm at all on ascend910a and ascend310b', () => {
    for (const target of ['ascend910a', 'ascend310b'] as Target[]) {
      expectFail(check(PRE_HIGH_PERFORMANCE, 'float16', target), 'C:ERROR_INVALID_PARAM', /runs only Norm/);
      expectOk(check(param({ precisionMode: 'high_performance' }), 'float16', target));
    }
  });
});

describe('validate: combination rules on every target', () => {
  const refused: [string, RmsNormParam, RegExp][] = [
    ['rstd + gemma', param({ rstd: true, modelType: 'gemma' }), /rstd and gemma exclude each other/],
    ['rstd + high_performance', param({ rstd: true, precisionMode: 'high_performance' }), /rstd and high_performance exclude each other/],
    ['high_performance + gemma', param({ precisionMode: 'high_performance', modelType: 'gemma' }), /exclude each other/],
    ['gemma + int8', param({ modelType: 'gemma', quantType: 'int8' }), /gemma is not supported with quantization/],
    ['high_performance + dynamic int8', param({ layerType: 'PreNorm', precisionMode: 'high_performance', quantType: 'int8', dynamicQuant: 'symmetric' }), /high_performance is not supported with quantization/],
    ['rstd + int8', param({ rstd: true, quantType: 'int8' }), /rstd is not supported with quantization/],
    ['has_bias + int8', param({ layerType: 'PreNorm', hasBias: true, quantType: 'int8' }), /has_bias is only supported without quantization/],
    ['has_bias on Norm', param({ hasBias: true }), /has_bias applies only to PreNorm and PostNorm/],
    ['rstd on PreNorm', param({ layerType: 'PreNorm', rstd: true }), /rstd is only defined for Norm/],
    ['dynamic without int8', param({ dynamicQuant: 'symmetric' }), /needs quant_type int8/],
    ['epsilon 0', param({ epsilon: 0 }), /epsilon must be in \(0, 1\]/],
    ['epsilon 1.5', param({ epsilon: 1.5 }), /epsilon must be in \(0, 1\]/],
    ['epsilon NaN', param({ epsilon: Number.NaN }), /epsilon/],
  ];
  for (const [name, p, message] of refused) {
    it(`refuses ${name} at creation on every target`, () => {
      for (const target of ALL_TARGETS) {
        const v = validate(p, [t('float16', X), t('float16', [H])], undefined, target);
        expectFail(v, 'C:ERROR_INVALID_PARAM');
        // On Ascend, ATB's own creation checks (SoC, zero epsilon) may speak first.
        if (target === undefined || target === 'webgpu') expect(v.ok ? '' : v.message, String(target)).to.match(message);
      }
    });
  }

  it('accepts the single modes and their absence', () => {
    for (const p of [param({}), param({ rstd: true }), param({ modelType: 'gemma' }), param({ precisionMode: 'high_performance' })]) {
      expect(mathParamProblem(p), JSON.stringify(p)).to.equal(undefined);
    }
  });

  it('refuses asymmetric dynamic quantization and undefined ATB enums given as ATB parameters, off Ascend too', () => {
    const asym = parseAtbParam({ layerType: 1, normParam: { quantType: 2, dynamicQuantType: 2 } });
    expectFail(validate(asym, [t('float16', X), t('float16', [H]), t('float16', [H])], undefined, 'webgpu'), 'C:ERROR_INVALID_PARAM', /dynamicQuantType 2/);
    expectFail(validate(asym, [], undefined, 'ascend910b'), 'C:ERROR_INVALID_PARAM', /asymmetric/);
    expectFail(validate(parseAtbParam({ layerType: 0 }), [], undefined, undefined), 'C:ERROR_INVALID_PARAM', /layerType 0/);
    expectFail(validate(parseAtbParam({ layerType: 1, normParam: { quantType: 1 } }), [], undefined, 'webgpu'), 'C:ERROR_INVALID_PARAM', /quantType 1/);
  });

  it('follows ATB exactly under strictAtb: ATB only refuses a zero epsilon, rmsfuse also one above 1', () => {
    const big = param({ epsilon: 2 });
    expectOk(check(big, 'float16', 'ascend910b', true));
    expectFail(check(big, 'float16', 'ascend910b'), 'C:ERROR_INVALID_PARAM', /epsilon/);
  });
});

describe('validate: dtypes and sizes per target', () => {
  const variants: [string, RmsNormParam][] = [
    ['Norm', param({})],
    ['Norm rstd', param({ rstd: true })],
    ['Norm gemma', param({ modelType: 'gemma' })],
    ['Norm int8 static', param({ quantType: 'int8' })],
    ['Norm int8 dynamic', param({ quantType: 'int8', dynamicQuant: 'symmetric' })],
    ['PreNorm with bias', param({ layerType: 'PreNorm', hasBias: true })],
    ['PreNorm int8 static', param({ layerType: 'PreNorm', quantType: 'int8' })],
    ['PreNorm int8 dynamic', PRE_DYNAMIC],
    ['PostNorm', param({ layerType: 'PostNorm' })],
    ['PostNorm int8 static', param({ layerType: 'PostNorm', quantType: 'int8' })],
    ['PostNorm int8 dynamic', POST_DYNAMIC],
  ];

  it('webgpu (and no target) take bfloat16, float16 and float32 for every variant but high_performance', () => {
    for (const target of ['webgpu', undefined] as Target[]) {
      for (const [name, p] of variants) {
        for (const dt of ['bfloat16', 'float16', 'float32'] as DType[]) expectOk(check(p, dt, target), `${name} ${dt} on ${target}`);
      }
    }
  });

  it('high_performance needs float16 x on every target (its gamma multiply is fp16)', () => {
    for (const target of ALL_TARGETS) {
      expectOk(check(param({ precisionMode: 'high_performance' }), 'float16', target), String(target));
      expectFail(check(param({ precisionMode: 'high_performance' }), 'bfloat16', target), 'I:ERROR_INVALID_TENSOR_DTYPE', /float16/);
    }
  });

  it('rstd: any float x off Ascend; float32 x on ascend910b only', () => {
    const rstd = param({ rstd: true });
    expectOk(check(rstd, 'float16', 'webgpu'));
    expectOk(check(rstd, 'float32', 'ascend910b'));
    expectFail(check(rstd, 'float16', 'ascend910b'), 'I:ERROR_INVALID_TENSOR_DTYPE', /rstd is only supported with float32 x on ascend910b/);
    expectFail(check(rstd, 'float32', 'ascend310p'), 'I:ERROR_INVALID_PARAM', /only supported on ascend910b/);
  });

  it('bfloat16 runs on ascend910b and ascend950 only', () => {
    expectOk(check(param({}), 'bfloat16', 'ascend910b'));
    expectOk(check(param({}), 'bfloat16', 'ascend950'));
    for (const target of ['ascend910a', 'ascend310p', 'ascend310b'] as Target[]) {
      expectFail(check(param({}), 'bfloat16', target), 'I:ERROR_INVALID_TENSOR_DTYPE', /no bfloat16/);
    }
  });

  it('H must be 32-byte aligned on Ascend, not on webgpu', () => {
    const p = param({});
    const inputs = [t('float16', [3, 1000]), t('float16', [1000])];
    expectOk(validate(p, inputs, [t('float16', [3, 1000])], 'webgpu'));
    expectFail(validate(p, inputs, undefined, 'ascend910b'), 'I:ERROR_INVALID_TENSOR_SIZE', /multiple of 16/);
    // 32 bytes are 8 float32 elements: H=1000 is aligned for float32 x (rstd takes float32).
    const rstd = param({ rstd: true });
    expectOk(validate(rstd, [t('float32', [3, 1000]), t('float32', [1000])], undefined, 'ascend910b'));
    expectFail(validate(rstd, [t('float32', [3, 1004]), t('float32', [1004])], undefined, 'ascend910b'), 'I:ERROR_INVALID_TENSOR_SIZE', /multiple of 8/);
  });

  it('x must be a float tensor on every target', () => {
    for (const target of ALL_TARGETS) {
      const v = validate(param({}), [t('int32', X), t('int32', [H])], undefined, target);
      expect(v.ok, String(target)).to.equal(false);
      expect(formatOutcome(v)).to.match(/^I:ERROR_INVALID_TENSOR_(DTYPE|INI_MATCH)$/);
    }
  });
});

describe('validate: what fusion converts for an Ascend target', () => {
  const norm = param({});
  const x16 = t('float16', X);

  it('takes an fp32 gamma with fp16 x when gamma is an initializer (fusion converts it), not otherwise', () => {
    expectOk(validate(norm, [x16, t('float32', [H], true)], [x16], 'ascend910b'));
    expectFail(validate(norm, [x16, t('float32', [H], false)], [x16], 'ascend910b'), 'I:ERROR_INVALID_TENSOR_INI_MATCH', /float16/);
    expectFail(validate(norm, [x16, t('float32', [H], true)], [x16], 'ascend910b', { strictAtb: true }), 'I:ERROR_INVALID_TENSOR_INI_MATCH');
    expectOk(validate(norm, [x16, t('float32', [H], false)], [x16], 'webgpu'));
  });

  it('takes a scalar fp32 QDQ scale and int8 zero point for static quantization', () => {
    const p = param({ quantType: 'int8' });
    const inputs = [x16, t('float16', [H], true), undefined, t('float32', [], true), t('int8', [], true)];
    expectOk(validate(p, inputs, [t('int8', X)], 'ascend910b'));
    expectOk(validate(p, inputs, [t('int8', X)], 'webgpu'));
    expectFail(validate(p, inputs, [t('int8', X)], 'ascend910b', { strictAtb: true }), 'I:ERROR_INVALID_IN_TENSOR_NUM');
  });

  it('supplies absent beta and offset as zeros; strictAtb wants ATB\'s five inputs', () => {
    const p = param({ quantType: 'int8' });
    const inputs = [x16, t('float16', [H]), undefined, t('float16', [1])];
    expectOk(validate(p, inputs, [t('int8', X)], 'ascend310p'));
    expectFail(validate(p, inputs, [t('int8', X)], 'ascend310p', { strictAtb: true }), 'I:ERROR_INVALID_IN_TENSOR_NUM', /takes 5 inputs/);
  });

  it('refuses a uint8 zero point and a per-channel scale on every target', () => {
    const p = param({ quantType: 'int8' });
    for (const target of ['webgpu', 'ascend910b'] as Target[]) {
      expectFail(validate(p, [x16, t('float16', [H]), undefined, t('float16', [1]), t('uint8', [1])], undefined, target), 'I:ERROR_INVALID_TENSOR_DTYPE', /int8/);
      expectFail(validate(p, [x16, t('float16', [H]), undefined, t('float16', [H])], undefined, target), 'I:ERROR_INVALID_TENSOR_DIM', /one value/);
    }
  });
});

describe('validate: the fused node\'s inputs and outputs', () => {
  const pre = param({ layerType: 'PreNorm' });
  const x = t('float16', X);
  const gamma = t('float16', [H]);

  it('takes PreNorm without bias in the fused node\'s form [x, "", residual, gamma] and in ATB\'s [x, residual, gamma]', () => {
    for (const target of ['webgpu', 'ascend910b', undefined] as Target[]) {
      expectOk(validate(pre, [x, undefined, x, gamma], [x, x], target), String(target));
      expectOk(validate(pre, [x, x, gamma], [x, x], target), String(target));
    }
  });

  it('needs the bias input when has_bias is set, and no more inputs than the variant has', () => {
    const withBias = param({ layerType: 'PreNorm', hasBias: true });
    for (const target of ['webgpu', 'ascend910b'] as Target[]) {
      expectFail(validate(withBias, [x, undefined, x, gamma], undefined, target), 'I:ERROR_INVALID_IN_TENSOR_NUM', /bias/);
      expectFail(validate(pre, [x, gamma, x, gamma], undefined, target), 'I:ERROR_INVALID_IN_TENSOR_NUM');
      expectFail(validate(param({}), [x], undefined, target), 'I:ERROR_INVALID_IN_TENSOR_NUM', /gamma/);
    }
  });

  it('refuses a residual of another shape and a gamma that broadcasts along other axes', () => {
    for (const target of ['webgpu', 'ascend910b'] as Target[]) {
      expectFail(validate(pre, [x, t('float16', [2, 1, H]), gamma], undefined, target), 'I:ERROR_INVALID_TENSOR_DIM', /residual/);
      expectFail(validate(param({}), [x, t('float16', [8, 1])], undefined, target), 'I:ERROR_INVALID_TENSOR_DIM', /gamma/);
    }
  });

  it('checks outputs: count, dtype, rank, shape', () => {
    for (const target of ['webgpu', 'ascend910b'] as Target[]) {
      expectFail(validate(pre, [x, x, gamma], [x], target), 'S:ERROR_INVALID_IN_TENSOR_NUM', /2 outputs/);
      expectFail(validate(pre, [x, x, gamma], [x, t('float32', X)], target), 'S:ERROR_INVALID_TENSOR_DTYPE', /sum/);
      expectFail(validate(pre, [x, x, gamma], [t('float16', [16, H]), x], target), 'S:ERROR_INVALID_TENSOR_SIZE');
      expectFail(validate(pre, [x, x, gamma], [x, t('float16', [2, 9, H])], target), 'S:ERROR_INVALID_TENSOR_DIM', /sum/);
    }
  });

  it('rstd keeps x\'s rank with the normalized axes set to 1 (k = gamma\'s rank)', () => {
    const rstd = param({ rstd: true });
    const xf = t('float32', X);
    expectOk(validate(rstd, [xf, t('float32', [H])], [xf, t('float32', [2, 8, 1])], 'ascend910b'));
    expectOk(validate(rstd, [xf, t('float32', [8, H])], [xf, t('float32', [2, 1, 1])], 'webgpu'));
    expectFail(validate(rstd, [xf, t('float32', [H])], [xf, t('float32', [2, 8])], 'webgpu'), 'S:ERROR_INVALID_TENSOR_DIM', /rstd/);
    expectFail(validate(rstd, [xf, t('float32', [H])], [xf, t('float16', [2, 8, 1])], 'webgpu'), 'S:ERROR_INVALID_TENSOR_DTYPE', /float32/);
  });

  it('the dynamic scale holds one float32 per row, with or without the kept axis', () => {
    const dyn = param({ quantType: 'int8', dynamicQuant: 'symmetric' });
    const inputs = [x, gamma, gamma];
    for (const target of ['webgpu', 'ascend910b'] as Target[]) {
      expectOk(validate(dyn, inputs, [t('int8', X), t('float32', ROWS)], target));
      expectOk(validate(dyn, inputs, [t('int8', X), t('float32', [...ROWS, 1])], target));
      expectFail(validate(dyn, inputs, [t('int8', X), t('float32', [2, 4])], target), 'S:ERROR_INVALID_TENSOR_DIM', /per row/);
      expectFail(validate(dyn, inputs, [t('float16', X), t('float32', ROWS)], target), 'S:ERROR_INVALID_TENSOR_DTYPE', /int8/);
    }
  });

  it('takes symbolic batch dims; Ascend needs a static H', () => {
    const xs = t('float16', ['batch', 'seq', H]);
    for (const target of ['webgpu', 'ascend910b'] as Target[]) expectOk(validate(param({}), [xs, gamma], [xs], target));
    const dynamicH = [t('float16', ['batch', 'hidden']), t('float16', ['hidden'])];
    expectOk(validate(param({}), dynamicH, undefined, 'webgpu'));
    expectFail(validate(param({}), dynamicH, undefined, 'ascend910b'), 'I:ERROR_INVALID_TENSOR_SIZE', /static/);
  });
});

describe('validateForTarget', () => {
  it('reads a fused node description, absent inputs named \'\'', () => {
    const p = param({ layerType: 'PreNorm' });
    const desc: Pick<FusedNodeDesc, 'param' | 'inputs' | 'outputs'> = {
      param: p,
      inputs: [
        { name: 'h', role: 'x', dtype: 'float16', shape: ['b', 's', H] },
        { name: '', role: 'bias', dtype: 'float16', shape: [] },
        { name: 'r', role: 'residual', dtype: 'float16', shape: ['b', 's', H] },
        { name: 'w', role: 'gamma', dtype: 'float32', shape: [H], initializer: true },
      ],
      outputs: [
        { name: 'y', role: 'y', dtype: 'float16', shape: ['b', 's', H] },
        { name: 'sum', role: 'sum', dtype: 'float16', shape: ['b', 's', H] },
      ],
    };
    expectOk(validateForTarget(desc, 'ascend910b'));
    expectOk(validateForTarget(desc, 'webgpu'));
    expectFail(validateForTarget(desc, 'ascend910b', { strictAtb: true }), 'I:ERROR_INVALID_TENSOR_INI_MATCH');
    expectFail(validateForTarget(desc, 'ascend310b'), 'C:ERROR_INVALID_PARAM', /runs only Norm/);
  });
});
