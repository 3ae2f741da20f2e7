/**
 * Golden files: the kernel, tiling header, ACL host snippet and TS launcher generated for a fixed
 * set of Ascend kernel specs are kept under test/golden/ascendc/ and reviewed as ordinary git
 * diffs. A change in generated code fails here with a unified diff; `npm run golden:accept`
 * (RMSFUSE_ACCEPT_GOLDEN=1) rewrites the files. A refactor of the generator shows no golden diff.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FloatDType } from '../../compiler/op/param.js';
import type { AscendTarget } from '../../compiler/op/target.js';
import { launcherModule } from '../../codegen/ascendc/emit.js';
import { generateAscend } from '../../codegen/ascendc/generate.js';
import { kernelId } from '../../codegen/ascendc/spec.js';
import { ACCEPT_GOLDEN as ACCEPT, goldenChecker } from '../helpers/golden.js';
import { makeSpec, type VariantOptions } from './helpers.js';

const GOLDEN_DIR = fileURLToPath(new URL('../golden/ascendc/', import.meta.url));

interface GoldenSpec {
  name: string;
  variant: VariantOptions;
  x: FloatDType;
  H: number;
  target?: AscendTarget;
}

/** One spec per code path the generator distinguishes. */
const GOLDEN: GoldenSpec[] = [
  { name: 'norm_f16_h4096', variant: {}, x: 'float16', H: 4096 },
  { name: 'norm_gemma_bf16_f32gamma_h5120', variant: { gemma: true, gammaDType: 'float32' }, x: 'bfloat16', H: 5120 },
  { name: 'norm_high_performance_f16_h16', variant: { hp: true }, x: 'float16', H: 16 },
  { name: 'norm_rstd_f32_h16384', variant: { rstd: true }, x: 'float32', H: 16384 },
  { name: 'norm_int8_static_f16_beta_offset_h4096', variant: { quant: 'static', beta: true, offset: true }, x: 'float16', H: 4096 },
  { name: 'norm_int8_dynamic_bf16_h32', variant: { quant: 'dynamic' }, x: 'bfloat16', H: 32 },
  { name: 'prenorm_bias_f16_h12288', variant: { layer: 'PreNorm', bias: true }, x: 'float16', H: 12288 },
  { name: 'prenorm_int8_dynamic_f16_beta_h4096', variant: { layer: 'PreNorm', quant: 'dynamic', beta: true }, x: 'float16', H: 4096 },
  { name: 'postnorm_bias_f32_h16', variant: { layer: 'PostNorm', bias: true }, x: 'float32', H: 16 },
  { name: 'postnorm_int8_static_f16_offset_h5120_310p', variant: { layer: 'PostNorm', quant: 'static', offset: true }, x: 'float16', H: 5120, target: 'ascend310p' },
];

const checkGolden = goldenChecker(GOLDEN_DIR);

describe('Ascend C golden files (test/golden/ascendc)', () => {
  for (const g of GOLDEN) {
    it(g.name, () => {
      const spec = makeSpec(g.variant, g.x, g.H, g.target);
      const sources = generateAscend(spec);
      checkGolden(`${g.name}.cpp`, sources.kernelCpp);
      checkGolden(`${g.name}_tiling.h`, sources.tilingHeader);
      checkGolden(`${g.name}_host.cpp`, sources.hostSnippet);
      checkGolden(`${g.name}.ts`, launcherModule(kernelId(spec), spec));
    });
  }

  it('holds no stale golden files', () => {
    if (ACCEPT || !fs.existsSync(GOLDEN_DIR)) return;
    const expected = new Set(GOLDEN.flatMap((g) => [`${g.name}.cpp`, `${g.name}_tiling.h`, `${g.name}_host.cpp`, `${g.name}.ts`]));
    const stale = fs.readdirSync(GOLDEN_DIR).filter((f) => !expected.has(f));
    expect(stale, 'golden files no spec generates').to.deep.equal([]);
  });
});
