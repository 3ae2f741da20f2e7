/**
 * Host tiling of rmsfuse's Ascend C RMSNorm kernels.
 *
 * This file has no imports on purpose: `emitAscend` copies it verbatim into every emitted
 * directory as `kernels/tiling-core.ts`, so the launchers there compute the tiling for the
 * actual row count with exactly this code, and the kernels' tiling header is generated from
 * TILING_FIELDS below. The vendor's kernels do the same split: the host picks the UB tiling from
 * the platform's core count and UB size, the kernel reads it from the tiling struct and never
 * hard-codes either.
 *
 * Modes (KERNELS.md, Ascend C section), chosen from the UB byte budget:
 * - MULTI_ROW: several whole rows per UB tile (small H), double buffered;
 * - SINGLE_ROW: one whole row per tile, double buffered if two fit, else single buffered;
 * - SPLIT_D: a row does not fit; each row is streamed in chunks of ubFactor columns, once for the
 *   sum of squares and again to normalize (and once more for dynamic quantization), so x and
 *   gamma are read more than once.
 * In the row modes the fp32 math runs over a resident row in chunks of ubFactor columns, so the
 * fp32 scratch stays small however long the row.
 */

/** What the tiling needs to know about a device. */
export interface Platform {
  /** Vector cores a kernel can be launched on (the block dimension's limit). */
  coreNum: number;
  /** Unified Buffer bytes per vector core. */
  ubBytes: number;
}

/**
 * Plausible presets per SoC for when the launcher is not told the real numbers. On a device the
 * host reads them from the platform (PlatformAscendC GetCoreNumAiv / GetCoreMemSize(UB)); pass
 * them to the launcher's `tiling()` or as `device.platform`.
 * 910B2: 24 AI cores with two vector cores each, 192 KB UB per vector core; 310P: 8 AI cores with
 * 256 KB UB; 910A: 32 AI cores, 256 KB UB; 310B: one AI core; 950: 64 vector cores (assumed).
 */
export const PLATFORMS: Readonly<Record<string, Platform>> = {
  ascend910a: { coreNum: 32, ubBytes: 256 * 1024 },
  ascend910b: { coreNum: 48, ubBytes: 192 * 1024 },
  ascend310p: { coreNum: 8, ubBytes: 256 * 1024 },
  ascend310b: { coreNum: 1, ubBytes: 256 * 1024 },
  ascend950: { coreNum: 64, ubBytes: 256 * 1024 },
};

export const MODE_MULTI_ROW = 0;
export const MODE_SINGLE_ROW = 1;
export const MODE_SPLIT_D = 2;
export type TilingMode = typeof MODE_MULTI_ROW | typeof MODE_SINGLE_ROW | typeof MODE_SPLIT_D;
export const MODE_NAMES: Readonly<Record<TilingMode, string>> = { 0: 'multi-row', 1: 'single-row', 2: 'split-D' };

/** The UB footprint of a kernel, derived from its spec (codegen/ascendc/tiling.ts kernelLayout). */
export interface KernelLayout {
  /** Elements per normalized row. */
  H: number;
  /** sizeof(T) of the activation dtype: UB rows of T are H rounded up to 32 bytes of T. */
  xBytes: number;
  epsilon: number;
  /** Element sizes of the tensors streamed row by row (x, residual, y, sum, q). */
  rowTensors: number[];
  /** Element sizes of the per-H tensors (gamma, beta, bias): resident in the row modes, streamed in split-D. */
  vectorTensors: number[];
  /** fp32 values per row (rstd, dynamic scale), gathered in UB and written 32 bytes or more at a time. */
  perRowOutputs: number;
}

/** The tiling struct the kernel reads; field order and types are TILING_FIELDS. */
export interface TilingData {
  numRow: number;
  numCol: number;
  numColAlign: number;
  blockFactor: number;
  rowFactor: number;
  ubFactor: number;
  mode: number;
  bufferNum: number;
  gatherFactor: number;
  epsilon: number;
  avgFactor: number;
  reserved: number;
}

export interface Tiling {
  data: TilingData;
  /** Cores to launch: ceil(rows / blockFactor). 0 for an empty input (launch nothing). */
  blockDim: number;
  /** UB bytes the kernel allocates with this tiling (the CPU model checks it). */
  ubBytesUsed: number;
}

/** The C struct layout: 4-byte fields in this order, no padding, 48 bytes. */
export const TILING_FIELDS: ReadonlyArray<{ name: keyof TilingData; type: 'uint32_t' | 'float'; doc: string }> = [
  { name: 'numRow', type: 'uint32_t', doc: 'rows of x (product of the dims before the normalized ones)' },
  { name: 'numCol', type: 'uint32_t', doc: 'H, elements per row' },
  { name: 'numColAlign', type: 'uint32_t', doc: 'H rounded up to 32 bytes of T: the UB row stride in T elements' },
  { name: 'blockFactor', type: 'uint32_t', doc: 'rows per core, ceil(numRow / cores)' },
  { name: 'rowFactor', type: 'uint32_t', doc: 'rows per UB tile in the row modes (1 in split-D)' },
  { name: 'ubFactor', type: 'uint32_t', doc: 'columns per chunk: of the fp32 math (row modes) or of a streamed chunk (split-D)' },
  { name: 'mode', type: 'uint32_t', doc: '0 multi-row, 1 single-row, 2 split-D' },
  { name: 'bufferNum', type: 'uint32_t', doc: 'buffers per queue: 2 double-buffers DMA against compute' },
  { name: 'gatherFactor', type: 'uint32_t', doc: 'rows of per-row outputs (rstd, scale) gathered in UB per write' },
  { name: 'epsilon', type: 'float', doc: 'added to mean(x^2)' },
  { name: 'avgFactor', type: 'float', doc: '1 / H' },
  { name: 'reserved', type: 'uint32_t', doc: 'keeps the struct a multiple of 8 bytes' },
];
export const TILING_BYTES = TILING_FIELDS.length * 4;

/** fp32 scratch chunk of the row modes: 8 KB per buffer keeps three of them small next to the rows. */
export const MAX_COMPUTE_CHUNK = 2048;
/** Chunk sizes are multiples of 64 elements: 32-byte aligned offsets for every element size (int8 too). */
export const CHUNK_ALIGN = 64;
/** DataCopyPad moves at most 4095 blocks (rows) per instruction. */
export const MAX_ROW_FACTOR = 4095;
/** Per-row outputs are flushed every 64 rows (256 bytes) when a core has that many. */
export const GATHER_ROWS = 64;
/** fp32 scratch buffers of ubFactor elements (A, B, C in the kernel). */
export const SCRATCH_BUFFERS = 3;

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const align32 = (bytes: number): number => alignUp(bytes, 32);

export interface UbConfig {
  mode: TilingMode;
  rowFactor: number;
  ubFactor: number;
  bufferNum: number;
  gatherFactor: number;
}

/** UB bytes the kernel's InitBuffer calls allocate for a configuration (each buffer 32-byte aligned). */
export function ubBytesFor(layout: KernelLayout, cfg: UbConfig): number {
  let total = 0;
  if (cfg.mode === MODE_SPLIT_D) {
    for (const e of layout.rowTensors) total += cfg.bufferNum * align32(cfg.ubFactor * e);
    for (const e of layout.vectorTensors) total += cfg.bufferNum * align32(cfg.ubFactor * e);
  } else {
    for (const e of layout.rowTensors) total += cfg.bufferNum * cfg.rowFactor * align32(layout.H * e);
    for (const e of layout.vectorTensors) total += align32(layout.H * e);
  }
  total += SCRATCH_BUFFERS * align32(cfg.ubFactor * 4);
  // Reduction buffer: 8 floats result, 8 floats of ones, then ReduceSum's work area.
  total += align32((16 + alignUp(Math.ceil(cfg.ubFactor / 64), 8)) * 4);
  total += layout.perRowOutputs * align32(cfg.gatherFactor * 4);
  return total;
}

function gatherFactorFor(layout: KernelLayout, rowFactor: number, blockFactor: number): number {
  if (layout.perRowOutputs === 0) return 0;
  return alignUp(Math.max(rowFactor, Math.min(blockFactor, GATHER_ROWS)), 8);
}

/**
 * The tiling for `rows` rows on a platform. Throws when even the smallest split-D chunk does not
 * fit (a UB far smaller than any real core's).
 */
export function computeTilingForLayout(layout: KernelLayout, rows: number, platform: Platform): Tiling {
  const { H } = layout;
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`tiling: rows must be a non-negative integer, got ${rows}`);
  if (!Number.isInteger(H) || H <= 0) throw new Error(`tiling: H must be a positive integer, got ${H}`);
  if (!(platform.coreNum >= 1) || !(platform.ubBytes > 0)) throw new Error('tiling: platform needs coreNum >= 1 and ubBytes > 0');
  const blockFactor = rows === 0 ? 0 : Math.ceil(rows / platform.coreNum);
  const blockDim = rows === 0 ? 0 : Math.ceil(rows / blockFactor);
  const base = {
    numRow: rows,
    numCol: H,
    numColAlign: alignUp(H, 32 / layout.xBytes),
    blockFactor,
    epsilon: Math.fround(layout.epsilon),
    avgFactor: Math.fround(1 / H),
    reserved: 0,
  };
  const finish = (cfg: UbConfig): Tiling => ({
    data: { ...base, rowFactor: cfg.rowFactor, ubFactor: cfg.ubFactor, mode: cfg.mode, bufferNum: cfg.bufferNum, gatherFactor: cfg.gatherFactor },
    blockDim,
    ubBytesUsed: ubBytesFor(layout, cfg),
  });

  const chunk = Math.min(alignUp(H, CHUNK_ALIGN), MAX_COMPUTE_CHUNK);
  const rowsCfg = (rowFactor: number, bufferNum: number): UbConfig => ({
    mode: rowFactor > 1 ? MODE_MULTI_ROW : MODE_SINGLE_ROW,
    rowFactor,
    ubFactor: chunk,
    bufferNum,
    gatherFactor: gatherFactorFor(layout, rowFactor, blockFactor),
  });
  const fits = (cfg: UbConfig): boolean => ubBytesFor(layout, cfg) <= platform.ubBytes;

  // Largest double-buffered tile (binary search: the footprint grows with the rows).
  let lo = 0;
  let hi = MAX_ROW_FACTOR;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(rowsCfg(mid, 2))) lo = mid;
    else hi = mid - 1;
  }
  const capacity = lo;
  if (capacity >= 2) {
    const rowFactor = Math.max(1, Math.min(capacity, blockFactor));
    return finish({ ...rowsCfg(rowFactor, 2), mode: MODE_MULTI_ROW });
  }
  if (capacity === 1) return finish(rowsCfg(1, 2));
  if (fits(rowsCfg(1, 1))) return finish(rowsCfg(1, 1));

  // Split-D: the largest chunk that fits double buffered.
  const splitCfg = (ubFactor: number): UbConfig => ({
    mode: MODE_SPLIT_D,
    rowFactor: 1,
    ubFactor,
    bufferNum: 2,
    gatherFactor: gatherFactorFor(layout, 1, blockFactor),
  });
  let best = 0;
  for (let c = CHUNK_ALIGN; c < alignUp(H, CHUNK_ALIGN); c += CHUNK_ALIGN) {
    if (fits(splitCfg(c))) best = c;
    else break;
  }
  if (best === 0) throw new Error(`tiling: not even a ${CHUNK_ALIGN}-column chunk of H = ${H} fits in ${platform.ubBytes} bytes of UB`);
  return finish(splitCfg(best));
}

/** The tiling struct's bytes, little-endian, laid out as TILING_FIELDS (the C struct). */
export function serializeTiling(t: TilingData): Uint8Array {
  const bytes = new Uint8Array(TILING_BYTES);
  const view = new DataView(bytes.buffer);
  TILING_FIELDS.forEach((f, i) => {
    const v = t[f.name];
    if (f.type === 'float') view.setFloat32(i * 4, v, true);
    else {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`tiling: ${f.name} = ${v} is not a uint32`);
      view.setUint32(i * 4, v, true);
    }
  });
  return bytes;
}
