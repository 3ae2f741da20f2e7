/**
 * Host tiling of a kernel spec: the spec's UB footprint (which tensors stream row by row,
 * which per-H tensors stay resident, how many per-row outputs) fed to the self-contained
 * tiling core that the emitted launchers carry along.
 */
import { DTYPE_BYTES, kernelParams, type AscendKernelSpec } from './spec.js';
import { PLATFORMS, computeTilingForLayout, type KernelLayout, type Platform, type Tiling } from './tiling-core.js';

export * from './tiling-core.js';

export function kernelLayout(spec: AscendKernelSpec): KernelLayout {
  const params = kernelParams(spec);
  return {
    H: spec.H,
    xBytes: DTYPE_BYTES[spec.xDType],
    epsilon: spec.param.epsilon,
    rowTensors: params.filter((p) => p.extent === 'rows').map((p) => DTYPE_BYTES[p.dtype]),
    vectorTensors: params.filter((p) => p.extent === 'vector').map((p) => DTYPE_BYTES[p.dtype]),
    perRowOutputs: params.filter((p) => p.extent === 'perRow').length,
  };
}

export function platformOf(target: string): Platform {
  const p = PLATFORMS[target];
  if (!p) throw new Error(`no platform preset for Ascend target '${target}'`);
  return p;
}

/** The tiling of `spec` for `rows` rows; the platform defaults to the spec target's preset. */
export function computeTiling(spec: AscendKernelSpec, rows: number, platform: Platform = platformOf(spec.target)): Tiling {
  return computeTilingForLayout(kernelLayout(spec), rows, platform);
}
