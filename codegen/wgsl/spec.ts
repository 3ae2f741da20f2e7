/**
 * The WebGPU kernel spec: the target-independent spec plus the tuning the WGSL generator reads.
 *
 * Tuning depends only on H and the adapter features, never on the row count: rows are a
 * symbolic dim at codegen time, and one kernel serves prefill (many rows) and decode (one row).
 * Long-row kernels carry a second, split-row path for decode, which the launcher picks from the
 * row count at run time (`WgslSplitRow`).
 * The choices follow KERNELS.md (WGSL section); see `chooseTuning` for the numbers.
 */
import { variantName } from '../../compiler/op/param.js';
import type { FusedNodeDesc, InputRole } from '../../compiler/op/param.js';
import { baseSpec, specHash, type KernelSpecBase } from '../spec.js';

/**
 * How fp16 tensors live in storage buffers:
 * - native: `enable f16;` and `array<f16>` / `array<vecN<f16>>` (needs the shader-f16 feature);
 * - packed: two fp16 per u32, converted with unpack2x16float / pack2x16float (every adapter);
 * - none: the kernel touches no fp16 tensor.
 * bf16 tensors are always packed two per u32 (WGSL has no bf16 type).
 */
export type F16Mode = 'native' | 'packed' | 'none';

export type WgslKernelSpec = KernelSpecBase & {
  target: 'webgpu';
  /** Elements per load/store: the widest of 4, 2, 1 that divides H. */
  vecWidth: 1 | 2 | 4;
  /** Invocations per workgroup (= rowsPerWorkgroup * threads per row). */
  workgroupSize: number;
  /** Rows one workgroup normalizes side by side (> 1 only for small H). */
  rowsPerWorkgroup: number;
  f16: F16Mode;
  /** Reduce with subgroupAdd/subgroupMax (only used with one row per workgroup). */
  subgroups: boolean;
  /** The split-row path for runs of few long rows (absent for short rows); see `chooseSplitRow`. */
  splitRow?: WgslSplitRow;
};

/**
 * Decode (one row or a few, large H; KERNELS.md 7): the one-pass kernel would keep one workgroup
 * per row, i.e. a handful of a GPU's dozens of compute units, busy. The split-row path spreads each
 * row over `workgroupsPerRow` workgroups in two dispatches (three for dynamic quantization) that
 * meet through per-chunk partials in a scratch buffer; the launcher takes it for runs of at most
 * `maxRows` rows (rows are only known at run time, so one kernel carries both paths).
 */
export interface WgslSplitRow {
  /** Workgroups sharing a row (S). */
  workgroupsPerRow: number;
  /** Units per workgroup (C): a multiple of 4, so chunks start on a word of every packed output. */
  unitsPerWorkgroup: number;
  /** The launcher splits rows only for runs of at most this many rows. */
  maxRows: number;
}

export interface WgslFeatures {
  /** The adapter has 'shader-f16'. */
  shaderF16: boolean;
  /** The adapter has 'subgroups'. */
  subgroups: boolean;
}

export interface WgslTuning {
  vecWidth: 1 | 2 | 4;
  workgroupSize: number;
  rowsPerWorkgroup: number;
  splitRow?: WgslSplitRow;
}

/**
 * Rows of at least this many vector units get a workgroup of their own; shorter rows share one
 * (KERNELS.md 1: several rows per workgroup for small H keep the machine busy).
 */
const OWN_WORKGROUP_UNITS = 128;
/** Workgroup size of the multi-row layout. 64 is a safe occupancy unit on every vendor. */
const SHARED_WORKGROUP_SIZE = 64;
/** WebGPU's default maxComputeInvocationsPerWorkgroup; every adapter supports it. */
const MAX_WORKGROUP_SIZE = 256;

/** Rows of at least this many elements get the split-row path (below, a row is too short to share). */
export const SPLIT_MIN_H = 8192;
/**
 * Units per thread in a split chunk: two loads in flight per thread and tensor, and S = H / 2048
 * at vec4 with 256 threads (4 workgroups per row at H = 8192, 16 at 32768). Not tuned on a GPU yet.
 */
const SPLIT_UNITS_PER_THREAD = 2;
/**
 * The split path re-reads each row (x, the sum, or x and residual) in its later dispatches; with
 * few rows those re-reads come from L2. Runs are split while rows * H fp32 values fit this budget
 * (a mid-range GPU's L2) and rows <= SPLIT_MAX_ROWS: from about 32 rows on, the one-pass kernel's
 * workgroup per row occupies a good share of a GPU's compute units (8-32 on integrated GPUs,
 * 60-140 on discrete ones) and reads every byte once.
 */
const SPLIT_REREAD_BYTES = 4 << 20;
const SPLIT_MAX_ROWS = 32;

const pow2Floor = (n: number): number => 2 ** Math.floor(Math.log2(Math.max(1, n)));
const pow2Ceil = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/**
 * Vector width, workgroup size and rows per workgroup for a row length H.
 * - Long rows (>= 128 units): one workgroup per row with about 4 units per thread, between 64 and
 *   256 threads; 256 threads for H >= 4096 at vec4, the large-workgroup decode path (KERNELS.md 7).
 * - Short rows: 64 threads split into rows of T threads, T the power of two near units/2, so
 *   each thread holds one or two units and a whole tiny row (H <= 4) is one thread.
 * - H >= SPLIT_MIN_H also gets a split-row path for runs of few rows (`chooseSplitRow`).
 */
export function chooseTuning(H: number): WgslTuning {
  if (!Number.isInteger(H) || H < 1) throw new Error(`H must be a positive integer, got ${H}`);
  const vecWidth: 1 | 2 | 4 = H % 4 === 0 ? 4 : H % 2 === 0 ? 2 : 1;
  const units = H / vecWidth;
  if (units >= OWN_WORKGROUP_UNITS) {
    const threads = Math.min(MAX_WORKGROUP_SIZE, Math.max(64, pow2Floor(units / 4)));
    const splitRow = chooseSplitRow(H, units, threads);
    return { vecWidth, workgroupSize: threads, rowsPerWorkgroup: 1, ...(splitRow && { splitRow }) };
  }
  const threadsPerRow = Math.min(SHARED_WORKGROUP_SIZE, pow2Ceil(Math.ceil(units / 2)));
  return { vecWidth, workgroupSize: SHARED_WORKGROUP_SIZE, rowsPerWorkgroup: SHARED_WORKGROUP_SIZE / threadsPerRow };
}

/**
 * The split-row geometry of a one-row-per-workgroup layout: undefined below SPLIT_MIN_H. Chunks
 * are `threads * SPLIT_UNITS_PER_THREAD` units (threads is a power of two >= 64, so a multiple of 4).
 */
export function chooseSplitRow(H: number, units: number, threads: number): WgslSplitRow | undefined {
  if (H < SPLIT_MIN_H) return undefined;
  const unitsPerWorkgroup = threads * SPLIT_UNITS_PER_THREAD;
  const workgroupsPerRow = Math.ceil(units / unitsPerWorkgroup);
  if (workgroupsPerRow < 2) return undefined;
  const maxRows = Math.max(1, Math.min(SPLIT_MAX_ROWS, Math.floor(SPLIT_REREAD_BYTES / (4 * H))));
  return { workgroupsPerRow, unitsPerWorkgroup, maxRows };
}

const FP16_ROLES: InputRole[] = ['gamma', 'beta', 'bias', 'residual'];

/** The WebGPU spec of a fused node on an adapter with the given features. */
export function wgslSpecFromDesc(desc: FusedNodeDesc, features: WgslFeatures): WgslKernelSpec {
  const base = baseSpec(desc);
  const tuning = chooseTuning(base.H);
  const usesF16 = base.xDType === 'float16' || FP16_ROLES.some((r) => base.inputDTypes[r] === 'float16');
  return {
    ...base,
    target: 'webgpu',
    ...tuning,
    f16: usesF16 ? (features.shaderF16 ? 'native' : 'packed') : 'none',
    // Subgroup reductions are used only when the whole workgroup is one row: which invocations
    // share a subgroup is up to the implementation, so a subgroup could straddle two rows.
    subgroups: features.subgroups && tuning.rowsPerWorkgroup === 1,
  };
}

/** `<variant>_<first 8 hex digits of the spec hash>`: file names and manifest keys. */
export function kernelId(spec: WgslKernelSpec): string {
  return `${variantName(spec.param, spec.xDType)}_${specHash(spec).slice(0, 8)}`;
}
