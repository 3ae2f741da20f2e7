/**
 * The Ascend C kernel spec: the target-independent spec plus the SoC it is generated for, and
 * the kernel's GM arguments derived from it.
 *
 * Only H (the normalized size) is static: the row count is a symbolic dim at codegen time, so
 * the tiling mode (several rows per UB tile, one row, or split-D) is chosen at run time by the
 * host tiling from the actual rows and the platform's core count and UB size (tiling-core.ts).
 */
import { signature, variantName, type DType, type FusedNodeDesc, type InputRole, type OutputRole } from '../../compiler/op/param.js';
import type { AscendTarget } from '../../compiler/op/target.js';
import { baseSpec, specHash, type KernelSpecBase } from '../spec.js';

export type AscendKernelSpec = KernelSpecBase & { target: AscendTarget };

export function ascendSpec(desc: FusedNodeDesc, target: AscendTarget): AscendKernelSpec {
  return { ...baseSpec(desc), target };
}

/** `<variant>_<first 8 hex digits of the spec hash>`: also the kernel's C symbol and file stem. */
export function kernelId(spec: AscendKernelSpec): string {
  return `${variantName(spec.param, spec.xDType)}_${specHash(spec).slice(0, 8)}`;
}

/** How many elements a GM argument has: rows * H, H, one per row, or one. */
export type Extent = 'rows' | 'vector' | 'perRow' | 'scalar';

export interface KernelParam {
  /** C++ parameter name of the kernel entry (and key of the launcher's device buffers). */
  name: string;
  role: InputRole | OutputRole;
  direction: 'in' | 'out';
  dtype: DType;
  extent: Extent;
}

const INPUT_EXTENT: Record<InputRole, Extent> = {
  x: 'rows',
  residual: 'rows',
  bias: 'vector',
  gamma: 'vector',
  beta: 'vector',
  scale: 'scalar',
  offset: 'scalar',
};

/**
 * The kernel's GM arguments in entry order: the variant's inputs (absent optional ones are not
 * arguments: the kernel is specialised on which are present), then its outputs. The dynamic
 * quantization scale output is named `scaleOut` so it never collides with the static scale input.
 */
export function kernelParams(spec: AscendKernelSpec): KernelParam[] {
  const sig = signature(spec.param);
  const params: KernelParam[] = [];
  for (const role of sig.inputs) {
    if (sig.optional.includes(role) && !spec.present.includes(role)) continue;
    const dtype = role === 'x' ? spec.xDType : (spec.inputDTypes[role] ?? spec.xDType);
    params.push({ name: role, role, direction: 'in', dtype, extent: INPUT_EXTENT[role] });
  }
  for (const role of sig.outputs) {
    const out: Record<OutputRole, Omit<KernelParam, 'role' | 'direction'>> = {
      y: { name: 'y', dtype: spec.xDType, extent: 'rows' },
      sum: { name: 'sum', dtype: spec.xDType, extent: 'rows' },
      q: { name: 'q', dtype: 'int8', extent: 'rows' },
      rstd: { name: 'rstd', dtype: 'float32', extent: 'perRow' },
      scale: { name: 'scaleOut', dtype: 'float32', extent: 'perRow' },
    };
    params.push({ ...out[role], role, direction: 'out' });
  }
  return params;
}

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int8: 1,
  uint8: 1,
  int32: 4,
  int64: 8,
};

/** Elements of a GM argument for a launch over `rows` rows of H. */
export function paramElements(p: KernelParam, rows: number, H: number): number {
  switch (p.extent) {
    case 'rows':
      return rows * H;
    case 'vector':
      return H;
    case 'perRow':
      return rows;
    case 'scalar':
      return 1;
  }
}
