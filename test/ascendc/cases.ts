/**
 * The kernels the Ascend C tests compile and the launches they run. Not a cross product: each
 * variant appears in fp16, bf16 and fp32 somewhere, each tiling mode and tail shape is hit
 * (H = 16, 32: several rows per tile and DataCopyPad rows; 4096, 5120: one or several rows;
 * 12288: one row, single buffered; 16384: split-D), and every kernel also runs on a small UB to
 * force split-D (so every variant's split-D path is checked without compiling more kernels).
 */
import type { FloatDType } from '../../compiler/op/param.js';
import type { VariantOptions } from './helpers.js';

export interface KernelCase {
  label: string;
  variant: VariantOptions;
  xDType: FloatDType;
  H: number;
}

const k = (label: string, variant: VariantOptions, xDType: FloatDType, H: number): KernelCase => ({ label, variant, xDType, H });

export const KERNEL_CASES: KernelCase[] = [
  // Norm
  k('norm', {}, 'float16', 16),
  k('norm', {}, 'float16', 4096),
  k('norm', {}, 'float16', 12288),
  k('norm', {}, 'bfloat16', 5120),
  k('norm', {}, 'bfloat16', 16384),
  k('norm', {}, 'float32', 32),
  k('norm', {}, 'float32', 12288),
  k('norm fp32 gamma', { gammaDType: 'float32' }, 'float16', 5120),
  k('norm gemma', { gemma: true }, 'float16', 32),
  k('norm gemma', { gemma: true }, 'bfloat16', 4096),
  k('norm gemma', { gemma: true }, 'float32', 5120),
  k('norm high_performance', { hp: true }, 'float16', 4096),
  k('norm high_performance fp32 gamma', { hp: true, gammaDType: 'float32' }, 'float16', 16),
  k('norm high_performance', { hp: true }, 'bfloat16', 32),
  k('norm rstd', { rstd: true }, 'float32', 4096),
  k('norm rstd', { rstd: true }, 'float32', 16384),
  k('norm rstd', { rstd: true }, 'float16', 16),
  // Norm + int8
  k('norm int8 static', { quant: 'static', beta: true, offset: true }, 'float16', 4096),
  k('norm int8 static', { quant: 'static' }, 'float16', 16),
  k('norm int8 static', { quant: 'static', beta: true, offset: true, scaleDType: 'float16' }, 'bfloat16', 5120),
  k('norm int8 static', { quant: 'static', offset: true }, 'float32', 32),
  k('norm int8 dynamic', { quant: 'dynamic', beta: true }, 'float16', 5120),
  k('norm int8 dynamic', { quant: 'dynamic' }, 'float16', 32),
  k('norm int8 dynamic', { quant: 'dynamic' }, 'bfloat16', 4096),
  k('norm int8 dynamic', { quant: 'dynamic', beta: true }, 'float32', 16384),
  // PreNorm
  k('prenorm bias', { layer: 'PreNorm', bias: true }, 'float16', 12288),
  k('prenorm', { layer: 'PreNorm' }, 'float16', 16),
  k('prenorm bias', { layer: 'PreNorm', bias: true }, 'bfloat16', 4096),
  k('prenorm bias', { layer: 'PreNorm', bias: true }, 'float32', 5120),
  k('prenorm high_performance', { layer: 'PreNorm', hp: true }, 'float16', 4096),
  k('prenorm gemma', { layer: 'PreNorm', gemma: true }, 'bfloat16', 32),
  k('prenorm int8 static', { layer: 'PreNorm', quant: 'static', beta: true, offset: true }, 'float16', 4096),
  k('prenorm int8 static', { layer: 'PreNorm', quant: 'static' }, 'float32', 16),
  k('prenorm int8 dynamic', { layer: 'PreNorm', quant: 'dynamic', beta: true }, 'float16', 16384),
  k('prenorm int8 dynamic', { layer: 'PreNorm', quant: 'dynamic' }, 'bfloat16', 32),
  // PostNorm
  k('postnorm bias', { layer: 'PostNorm', bias: true }, 'float16', 5120),
  k('postnorm', { layer: 'PostNorm' }, 'bfloat16', 12288),
  k('postnorm bias', { layer: 'PostNorm', bias: true }, 'float32', 16),
  k('postnorm int8 static', { layer: 'PostNorm', quant: 'static', offset: true }, 'float16', 32),
  k('postnorm int8 static', { layer: 'PostNorm', quant: 'static', offset: true }, 'float32', 4096),
  k('postnorm int8 dynamic', { layer: 'PostNorm', quant: 'dynamic' }, 'float16', 4096),
];

/**
 * Row counts per kernel: 1 (decode), 7 (fewer rows than cores, a tail), 48 (one row per core on
 * a 910B) and 1000 (many rows per core and tile) for short rows; fewer for long rows, where the
 * time goes into the JS reference rather than into anything a larger count would show.
 */
export function rowsFor(H: number): number[] {
  if (H <= 32) return [1, 7, 48, 1000];
  if (H <= 5120) return [1, 7, 20];
  return [1, 7];
}

/** A UB small enough that every H >= 4096 takes the split-D path (32 KB). */
export const SMALL_UB = 32 * 1024;
