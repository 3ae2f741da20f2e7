/**
 * The WGSL kernel cases: a chosen set of shapes per variant, not a cross product (SwiftShader is
 * slow). Shared by execute.test.ts (SwiftShader, in CI) and bench/wgsl/gpu-check.ts (the same cases
 * on any adapter, e.g. a real GPU, where native fp16 runs too).
 *
 * CASES: each variant in fp32 and in packed fp16 on a different shape; together they cover H = 1,
 * 3, 4, 8, 4095, 4096, 16384, odd H for packed fp16 and int8 outputs, rows = 1 and rows = 70000
 * (2-D dispatch). SPLIT_CASES: the split-row path (few rows of H >= 8192): Norm, PreNorm,
 * PostNorm, static and dynamic int8 in fp32 and packed fp16 at H = 16384 and 32768 (static int8 at
 * H not a multiple of 4, where chunks must start on words of the packed output), then the other
 * variants, vec1/vec2 units, bf16 and subgroups.
 */
import type { FloatDType, FusedNodeDesc } from '../../compiler/op/param.js';
import type { Launcher, LauncherOptions } from '../../runtime/webgpu/runtime.js';
import { compareOutputs, findVariant, makeData, reference, type DataOptions, type DescOptions, type Variant } from './fixtures.js';

export interface Case {
  variant: Variant;
  x: FloatDType;
  H: number;
  rows: number;
  desc?: DescOptions;
  zeroRows?: number[];
  /** Emit with the subgroups feature (SwiftShader has it; one-row workgroups then use subgroupAdd). */
  subgroups?: boolean;
  /** Launcher options: small limits force several dispatches or a 2-D grid. */
  launcher?: LauncherOptions;
  note?: string;
}

const c = (name: string, x: FloatDType, H: number, rows: number, more: Partial<Case> = {}): Case => ({ variant: findVariant(name), x, H, rows, ...more });

export const CASES: Case[] = [
  // Every variant in fp32 and packed fp16, one shape each.
  c('norm', 'float32', 4096, 4),
  c('norm', 'float16', 1, 300),
  c('norm gemma', 'float32', 3, 257),
  c('norm gemma', 'float16', 4095, 5),
  c('norm high_performance', 'float32', 8, 70),
  c('norm high_performance', 'float16', 16384, 1),
  c('norm rstd', 'float32', 16384, 1),
  c('norm rstd', 'float16', 6, 33),
  c('norm int8 static', 'float32', 127, 20),
  c('norm int8 static', 'float16', 4096, 3),
  c('norm int8 dynamic', 'float32', 4095, 3, { zeroRows: [1] }),
  c('norm int8 dynamic, no beta', 'float16', 6, 33, { zeroRows: [0, 7] }),
  c('prenorm', 'float32', 768, 12),
  c('prenorm', 'float16', 3, 100),
  c('prenorm bias', 'float32', 1, 64),
  c('prenorm bias', 'float16', 2050, 3),
  c('prenorm high_performance', 'float32', 4, 129),
  c('prenorm high_performance', 'float16', 768, 6),
  c('postnorm', 'float32', 130, 9),
  c('postnorm', 'float16', 16384, 1),
  c('postnorm bias', 'float32', 4095, 2),
  c('postnorm bias', 'float16', 8, 70),
  c('prenorm int8 static', 'float32', 5, 50),
  c('prenorm int8 static', 'float16', 130, 9),
  c('postnorm int8 static', 'float32', 2050, 3),
  c('postnorm int8 static', 'float16', 127, 20),
  c('prenorm int8 dynamic', 'float32', 6, 33, { zeroRows: [2] }),
  c('prenorm int8 dynamic', 'float16', 4096, 2),
  c('postnorm int8 dynamic', 'float32', 8, 70, { zeroRows: [5] }),
  c('postnorm int8 dynamic', 'float16', 1, 300, { zeroRows: [3] }),
  // bf16 activations (packed in u32), including odd H with atomic sub-word outputs.
  c('norm', 'bfloat16', 4096, 3),
  c('norm high_performance', 'bfloat16', 8, 30),
  c('prenorm int8 dynamic', 'bfloat16', 127, 9, { zeroRows: [4] }),
  // Weights and scale in other dtypes than x.
  c('norm', 'float16', 4095, 3, { desc: { weights: 'float32' }, note: 'fp32 gamma' }),
  c('prenorm bias', 'float16', 4096, 2, { desc: { weights: 'float32' }, note: 'fp32 gamma and bias' }),
  c('norm int8 static', 'float16', 7, 40, { desc: { scale: 'float16' }, note: 'fp16 scale' }),
  // Subgroup reductions (one row per workgroup).
  c('norm', 'float32', 4096, 3, { subgroups: true }),
  c('norm int8 dynamic', 'float16', 4095, 3, { subgroups: true, zeroRows: [2] }),
  c('prenorm', 'float16', 2050, 2, { subgroups: true }),
  c('postnorm int8 dynamic', 'float32', 16384, 1, { subgroups: true }),
  // Rows too long for registers: read again in the later passes (the one-pass kernel, not the split path).
  c('norm int8 dynamic', 'float16', 32768, 1, { launcher: { splitRow: 'never' }, note: 'row re-read' }),
  c('prenorm', 'float32', 32768, 2, { launcher: { splitRow: 'never' }, note: 'row re-read' }),
  // Many rows: a real 2-D dispatch (70000 workgroups of one row each), and a forced one.
  c('norm', 'float32', 129, 70000, { subgroups: true, note: '70000 workgroups' }),
  c('norm int8 dynamic, no beta', 'float16', 8, 70000, { zeroRows: [0, 1, 69999], launcher: { maxWorkgroupsPerDimension: 100 }, note: '2-D grid' }),
  // Several dispatches when tensors exceed the binding limit (atomic outputs are cleared per dispatch).
  c('prenorm', 'float16', 130, 37, { launcher: { maxBindingBytes: 1024 }, note: '13 dispatches' }),
  c('norm int8 dynamic, no beta', 'float16', 7, 50, { zeroRows: [9], launcher: { maxBindingBytes: 64 }, note: '13 dispatches' }),
];

export const label = (k: Case, i: number): string =>
  `${k.variant.name} ${k.x} H=${k.H} rows=${k.rows}${k.subgroups ? ' subgroups' : ''}${k.note ? ` (${k.note})` : ''} #${i}`;

export interface SplitCase {
  variant: Variant;
  x: FloatDType;
  H: number;
  desc?: DescOptions;
  zeroRows?: number[];
  subgroups?: boolean;
  note?: string;
}

const sc = (name: string, x: FloatDType, H: number, more: Partial<SplitCase> = {}): SplitCase => ({ variant: findVariant(name), x, H, ...more });

/**
 * Each runs with rows = 1 and rows = 2 through its emitted kernel module with splitRow 'always'
 * ('auto' never splits on a CPU adapter such as SwiftShader): both must take the split path.
 */
export const SPLIT_CASES: SplitCase[] = [
  // The required set: each variant in fp32 and packed fp16, H = 16384 and 32768 between them.
  sc('norm', 'float32', 16384),
  sc('norm', 'float16', 32768),
  sc('prenorm', 'float32', 32768),
  sc('prenorm', 'float16', 16384),
  sc('postnorm', 'float32', 16384),
  sc('postnorm', 'float16', 32768),
  sc('norm int8 dynamic', 'float32', 32768),
  sc('norm int8 dynamic', 'float16', 16384),
  // Static int8 where H is no multiple of 4: vec2 and scalar units, q OR-ed into shared words.
  sc('norm int8 static', 'float32', 16386),
  sc('norm int8 static', 'float16', 32767),
  // The other variants and layouts.
  sc('norm gemma', 'bfloat16', 16386),
  sc('prenorm bias', 'float16', 16383, { desc: { weights: 'float32' }, note: 'scalar units: the sum is read back from shared words' }),
  sc('postnorm bias', 'float32', 8192),
  sc('prenorm int8 static', 'float16', 16384),
  sc('postnorm int8 static', 'float32', 32767, { note: 'q and y' }),
  sc('prenorm int8 dynamic', 'bfloat16', 16384),
  sc('postnorm int8 dynamic', 'float16', 16390, { zeroRows: [1] }),
  sc('norm int8 dynamic, no beta', 'float32', 16384, { subgroups: true, zeroRows: [0] }),
  sc('prenorm high_performance', 'float16', 16384, { subgroups: true }),
];

export const splitLabel = (k: SplitCase): string =>
  `${k.variant.name} ${k.x} H=${k.H}${k.subgroups ? ' subgroups' : ''}${k.desc?.weights ? ` (${k.desc.weights} weights)` : ''}${k.note ? ` (${k.note})` : ''}`;

/**
 * Runs `rows` rows of seeded data through `launcher` and returns the mismatches with the CPU
 * reference (empty when the run passes): every output within SPEC 2's tolerances
 * (compareOutputs), and for each all-zero row without beta (v = 0) the dynamic scale's 2^-23 floor
 * and q = 0.
 */
export async function checkRun(
  launcher: Launcher,
  device: GPUDevice,
  desc: FusedNodeDesc,
  H: number,
  rows: number,
  data: DataOptions,
  label: string,
): Promise<string[]> {
  const { inputs, ref } = makeData(desc, H, rows, data);
  const got = await launcher.run(device, inputs);
  const want = reference(desc, H, ref);
  const errors = compareOutputs(desc, got, want, label);
  const beta = desc.inputs.some((t) => t.role === 'beta' && t.name !== '');
  if (want.scale && !beta) {
    const scale = got[`${desc.node}.scale`] as Float32Array;
    const q = got[`${desc.node}.q`] as Int8Array;
    for (const r of data.zeroRows ?? []) {
      if (scale[r] !== 2 ** -23) errors.push(`${label}: all-zero row ${r} has scale ${scale[r]}, not the 2^-23 floor`);
      if (!q.subarray(r * H, (r + 1) * H).every((v) => v === 0)) errors.push(`${label}: all-zero row ${r} has q != 0`);
    }
  }
  return errors;
}
