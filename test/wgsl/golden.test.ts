/**
 * Golden files: the WGSL and the emitted launcher module of a fixed set of kernel specs are kept
 * under test/golden/wgsl/ and reviewed as ordinary git diffs. A change in generated code fails
 * here with a unified diff; `npm run golden:accept` (RMSFUSE_ACCEPT_GOLDEN=1) rewrites the files.
 * A refactor of the generators shows no golden diff.
 */
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import type { FloatDType } from '../../compiler/op/param.js';
import { launcherModule } from '../../codegen/wgsl/emit.js';
import { generateWgsl } from '../../codegen/wgsl/generate.js';
import { kernelId, wgslSpecFromDesc, type WgslFeatures } from '../../codegen/wgsl/spec.js';
import { findVariant, makeDesc, type DescOptions } from './fixtures.js';
import { goldenChecker } from '../helpers/golden.js';
import { unifiedDiff } from '../helpers/unified-diff.js';

const GOLDEN_DIR = fileURLToPath(new URL('../golden/wgsl/', import.meta.url));

const PORTABLE: WgslFeatures = { shaderF16: false, subgroups: false };
const FULL: WgslFeatures = { shaderF16: true, subgroups: true };

interface GoldenSpec {
  name: string;
  variant: string;
  x: FloatDType;
  H: number;
  features: WgslFeatures;
  desc?: DescOptions;
}

/** One spec per layout and feature the generator distinguishes. */
const GOLDEN: GoldenSpec[] = [
  { name: 'norm_f32_h4096', variant: 'norm', x: 'float32', H: 4096, features: PORTABLE },
  { name: 'norm_f16_native_subgroups_h4096', variant: 'norm', x: 'float16', H: 4096, features: FULL },
  { name: 'norm_rstd_f32_h8', variant: 'norm rstd', x: 'float32', H: 8, features: PORTABLE },
  { name: 'norm_gemma_f16_packed_f32gamma_h768', variant: 'norm gemma', x: 'float16', H: 768, features: PORTABLE, desc: { weights: 'float32' } },
  { name: 'prenorm_high_performance_f16_packed_h4095', variant: 'prenorm high_performance', x: 'float16', H: 4095, features: PORTABLE },
  { name: 'postnorm_bias_bf16_h2050', variant: 'postnorm bias', x: 'bfloat16', H: 2050, features: PORTABLE },
  { name: 'norm_int8_static_f16_packed_h6', variant: 'norm int8 static', x: 'float16', H: 6, features: PORTABLE },
  { name: 'postnorm_int8_static_f32_h127', variant: 'postnorm int8 static', x: 'float32', H: 127, features: PORTABLE },
  { name: 'prenorm_int8_dynamic_f16_native_subgroups_h4096', variant: 'prenorm int8 dynamic', x: 'float16', H: 4096, features: FULL },
  { name: 'norm_int8_dynamic_f32_h32768', variant: 'norm int8 dynamic', x: 'float32', H: 32768, features: PORTABLE },
  // Split-row path: the sum read back from shared words (scalar units), and subgroups with x + residual recomputed.
  { name: 'prenorm_bias_f16_packed_h16383', variant: 'prenorm bias', x: 'float16', H: 16383, features: PORTABLE },
  { name: 'postnorm_f16_native_subgroups_h16384', variant: 'postnorm', x: 'float16', H: 16384, features: FULL },
];

const checkGolden = goldenChecker(GOLDEN_DIR);

describe('WGSL golden files (test/golden/wgsl)', () => {
  for (const g of GOLDEN) {
    it(g.name, () => {
      const spec = wgslSpecFromDesc(makeDesc('golden', findVariant(g.variant), g.x, g.H, g.desc), g.features);
      const kernel = generateWgsl(spec);
      checkGolden(`${g.name}.wgsl`, kernel.source);
      checkGolden(`${g.name}.ts`, launcherModule(kernelId(spec), spec, kernel));
    });
  }

  it('shows a mismatch as a unified diff', () => {
    const d = unifiedDiff('a\nb\nc\n', 'a\nB\nc\n', 'x.wgsl');
    expect(d).to.equal('--- x.wgsl (golden)\n+++ x.wgsl (generated)\n@@ -1,4 +1,4 @@\n a\n-b\n+B\n c\n ');
  });
});
