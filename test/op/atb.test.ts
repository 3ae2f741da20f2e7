/** ATB's RmsNormParam as rmsfuse reads it: JSON, SoC names, dtypes, conversion to and from RmsNormParam. */
import { expect } from 'chai';
import {
  atbCannotExpress,
  dtypeFromAtb,
  fromRmsNormParam,
  parseAtbParam,
  targetFromSoc,
  targetsFromSocList,
  toRmsNormParam,
} from '../../compiler/op/atb.js';
import { defaultParam, type RmsNormParam } from '../../compiler/op/param.js';

const param = (over: Partial<RmsNormParam>): RmsNormParam => ({ ...defaultParam(over.layerType ?? 'Norm'), ...over });

describe('atb: SoC names and dtypes', () => {
  it('maps the table\'s SocVersion names and real SoC names to targets', () => {
    const cases: [string, string][] = [
      ['Ascend910B', 'ascend910b'],
      ['Ascend910B4', 'ascend910b'],
      ['Ascend910_9391', 'ascend910b'],
      ['Ascend910A', 'ascend910a'],
      ['Ascend910ProB', 'ascend910a'],
      ['Ascend310P', 'ascend310p'],
      ['Ascend310P3', 'ascend310p'],
      ['Ascend310B', 'ascend310b'],
      ['Ascend310B1', 'ascend310b'],
      ['Ascend950', 'ascend950'],
      [' ascend950 ', 'ascend950'],
    ];
    for (const [name, target] of cases) expect(targetFromSoc(name), name).to.equal(target);
    expect(() => targetFromSoc('Ascend610')).to.throw(/unknown Ascend SoC/);
  });

  it('reads a SocVersion list; empty means every SoC', () => {
    expect(targetsFromSocList('')).to.have.members(['ascend910a', 'ascend910b', 'ascend310p', 'ascend310b', 'ascend950']);
    expect(targetsFromSocList('Ascend910B,Ascend310P')).to.deep.equal(['ascend910b', 'ascend310p']);
  });

  it('maps ATB dtype names', () => {
    expect(['float', 'float16', 'bf16', 'int8', 'int64'].map(dtypeFromAtb)).to.deep.equal(['float32', 'float16', 'bfloat16', 'int8', 'int64']);
    expect(() => dtypeFromAtb('complex64')).to.throw(/unknown ATB dtype/);
  });
});

describe('atb: parseAtbParam', () => {
  it('keeps values the validator must refuse (layerType 0, quantType 1, asymmetric, zero layerNormEps, rsv)', () => {
    expect(parseAtbParam({ layerType: 0 }).layerType).to.equal(0);
    expect(parseAtbParam({ layerType: 2, preNormParam: { quantType: 1 } }).preNormParam.quantType).to.equal(1);
    expect(parseAtbParam({ layerType: 1, normParam: { dynamicQuantType: 2 } }).normParam.dynamicQuantType).to.equal(2);
    expect(parseAtbParam({ layerType: 1, normParam: { layerNormEps: 0 } }).normParam.layerNormEps).to.equal(0);
    expect(parseAtbParam({ layerType: 3, postNormParam: { rsv: [1] } }).postNormParam.rsv).to.deep.equal([1]);
    expect(parseAtbParam({ layerType: 1, rsv: [0, 2] }).rsv).to.deep.equal([0, 2]);
  });

  it('reads only the active layer\'s sub-parameter, like ATB (others keep their defaults)', () => {
    const raw = parseAtbParam({ layerType: 1, normParam: { epsilon: 1e-6 }, preNormParam: { epsilon: 0, hasBias: true } });
    expect(raw.preNormParam.epsilon).to.equal(Math.fround(1e-5));
    expect(raw.preNormParam.hasBias).to.equal(false);
  });

  it('rounds epsilon to a C++ float, accepts enum names and JSON text, ignores dropped fields', () => {
    const raw = parseAtbParam(
      '{"layerType": "RMS_NORM_NORM", "normParam": {"epsilon": 1e-6, "quantType": "QUANT_INT8", "precisionMode": "HIGH_PERFORMANCE_MODE", "quantInputScale": 1}}',
    );
    expect(raw.layerType).to.equal(1);
    expect(raw.normParam.epsilon).to.equal(Math.fround(1e-6)).and.not.equal(1e-6);
    expect(raw.normParam.quantType).to.equal(2);
    expect(raw.normParam.precisionMode).to.equal(1);
  });

  it('refuses values of the wrong JSON type', () => {
    expect(() => parseAtbParam({ layerType: 1, normParam: { epsilon: '1e-5' } })).to.throw(/epsilon: expected a number/);
    expect(() => parseAtbParam({ layerType: 'NORM_ISH' })).to.throw(/layerType/);
    expect(() => parseAtbParam({ layerType: 2, preNormParam: { hasBias: 'yes' } })).to.throw(/hasBias/);
    expect(() => parseAtbParam([])).to.throw(/must be an object/);
  });
});

describe('atb: RmsNormParam <-> ATB parameter', () => {
  const variants: RmsNormParam[] = [
    param({ epsilon: 1e-6 }),
    param({ rstd: true }),
    param({ modelType: 'gemma' }),
    param({ precisionMode: 'high_performance' }),
    param({ quantType: 'int8' }),
    param({ quantType: 'int8', dynamicQuant: 'symmetric' }),
    param({ layerType: 'PreNorm', hasBias: true }),
    param({ layerType: 'PreNorm', quantType: 'int8' }),
    param({ layerType: 'PreNorm', quantType: 'int8', dynamicQuant: 'symmetric' }),
    param({ layerType: 'PreNorm', precisionMode: 'high_performance' }),
    param({ layerType: 'PostNorm', modelType: 'gemma' }),
    param({ layerType: 'PostNorm', quantType: 'int8' }),
  ];

  it('round-trips every variant, extensions included', () => {
    for (const p of variants) expect(toRmsNormParam(fromRmsNormParam(p)), JSON.stringify(p)).to.deep.equal({ ok: true, param: p });
  });

  it('reads ATB JSON into the clean parameter', () => {
    const converted = toRmsNormParam(parseAtbParam({ layerType: 2, preNormParam: { quantType: 2, epsilon: 1e-6 } }));
    expect(converted).to.deep.equal({
      ok: true,
      param: param({ layerType: 'PreNorm', quantType: 'int8', epsilon: Math.fround(1e-6) }),
    });
  });

  it('says why an ATB parameter has no rmsfuse form', () => {
    const reason = (json: object): string => {
      const c = toRmsNormParam(parseAtbParam(json));
      return c.ok ? '' : c.reason;
    };
    expect(reason({ layerType: 0 })).to.match(/layerType 0 is not defined/);
    expect(reason({ layerType: 1, normParam: { quantType: 1 } })).to.match(/quantType 1/);
    expect(reason({ layerType: 1, normParam: { quantType: 2, dynamicQuantType: 2 } })).to.match(/dynamicQuantType 2/);
    expect(reason({ layerType: 1, normParam: { rsv: [0, 0, 3] } })).to.match(/normParam\.rsv\[2\] is 3/);
  });

  it('says which parameters ATB itself cannot hold (rmsfuse extensions)', () => {
    expect(atbCannotExpress(param({ quantType: 'int8', dynamicQuant: 'symmetric' }))).to.equal(undefined);
    expect(atbCannotExpress(param({ layerType: 'PreNorm', hasBias: true }))).to.equal(undefined);
    expect(atbCannotExpress(param({ layerType: 'PreNorm', precisionMode: 'high_performance' }))).to.match(/precisionMode/);
    expect(atbCannotExpress(param({ layerType: 'PostNorm', quantType: 'int8', dynamicQuant: 'symmetric' }))).to.match(/dynamicQuantType/);
    expect(atbCannotExpress(param({ layerType: 'PostNorm', modelType: 'gemma' }))).to.match(/modelType/);
    expect(atbCannotExpress(param({ hasBias: true }))).to.match(/has_bias/);
  });
});
