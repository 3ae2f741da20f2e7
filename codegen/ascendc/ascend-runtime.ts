/**
 * Launcher runtime of rmsfuse's Ascend C kernels: copied verbatim into every Ascend `--emit DIR`
 * as `kernels/ascend-runtime.ts` (next to `kernels/tiling-core.ts`, its only import), so emitted
 * launchers need nothing from rmsfuse at run time.
 *
 * A launcher takes the node's tensors as typed arrays keyed by their ONNX names, computes the
 * tiling for the actual row count and the platform, and hands GM buffers keyed by the kernel's
 * argument names to an injected device (ACL through a native binding, or rmsfuse's CPU model of
 * the Ascend C API). fp16 and bf16 travel as Uint16Array bit patterns, int8 as Int8Array.
 */
import { PLATFORMS, computeTilingForLayout, serializeTiling, type KernelLayout, type Platform, type Tiling } from './tiling-core.js';

export type TensorData = Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array;

/** What a launcher needs from a device. */
export interface AscendDevice {
  /** Vector cores and UB bytes per core; default: the kernel target's preset (tiling-core.ts). */
  platform?: Platform;
  /**
   * Runs `kernelName` on `blockDim` cores. `buffers` holds every GM argument by name, outputs
   * included (zero-filled); the device either fills the outputs in place or returns them.
   */
  launch(kernelName: string, blockDim: number, buffers: Record<string, Uint8Array>, tiling: Uint8Array): Promise<Record<string, Uint8Array> | void>;
}

export interface KernelParamInfo {
  /** The kernel's GM argument name. */
  name: string;
  role: string;
  direction: 'in' | 'out';
  dtype: string;
  /** rows * H elements, H, one per row, or one. */
  extent: 'rows' | 'vector' | 'perRow' | 'scalar';
}

export interface AscendKernelInfo {
  id: string;
  /** Canonical serialisation of the kernel spec. */
  key: string;
  target: string;
  H: number;
  layout: KernelLayout;
  /** GM arguments in the entry's order. */
  params: KernelParamInfo[];
  /** The node's input and output roles in ONNX order (SPEC section 2). */
  inputRoles: string[];
  outputRoles: string[];
}

/** A node's ONNX input and output names in order ('' for an absent optional input). */
export interface TensorNames {
  inputs: string[];
  outputs: string[];
}

export interface LauncherOptions {
  /** Overrides the device's platform and the target preset. */
  platform?: Platform;
}

export interface Launcher {
  readonly kernel: AscendKernelInfo;
  readonly names: TensorNames;
  /** The tiling a launch over `rows` rows uses. */
  tiling(rows: number, platform?: Platform): Tiling;
  /**
   * Runs the node: `inputs` by ONNX name (initializers included); returns the outputs by ONNX
   * name, only those named in `outputs` when given.
   */
  run(device: AscendDevice, inputs: Record<string, TensorData>, outputs?: string[]): Promise<Record<string, TensorData>>;
}

const DTYPES: Record<string, { bytes: number; array: string; make: (b: ArrayBuffer) => TensorData }> = {
  float32: { bytes: 4, array: 'Float32Array', make: (b) => new Float32Array(b) },
  float16: { bytes: 2, array: 'Uint16Array', make: (b) => new Uint16Array(b) },
  bfloat16: { bytes: 2, array: 'Uint16Array', make: (b) => new Uint16Array(b) },
  int8: { bytes: 1, array: 'Int8Array', make: (b) => new Int8Array(b) },
  uint8: { bytes: 1, array: 'Uint8Array', make: (b) => new Uint8Array(b) },
  int32: { bytes: 4, array: 'Int32Array', make: (b) => new Int32Array(b) },
};

function dtypeInfo(dtype: string): (typeof DTYPES)[string] {
  const d = DTYPES[dtype];
  if (!d) throw new Error(`ascend launcher: unsupported dtype ${dtype}`);
  return d;
}

function elements(p: KernelParamInfo, rows: number, H: number): number {
  return p.extent === 'rows' ? rows * H : p.extent === 'vector' ? H : p.extent === 'perRow' ? rows : 1;
}

export function createKernelLauncher(k: AscendKernelInfo, names: TensorNames, options: LauncherOptions = {}): Launcher {
  const nameOf = (roles: string[], list: string[], role: string): string | undefined => {
    const i = roles.indexOf(role);
    return i >= 0 && i < list.length && list[i] !== '' ? list[i] : undefined;
  };
  const platformFor = (device?: AscendDevice, override?: Platform): Platform => {
    const p = override ?? options.platform ?? device?.platform ?? PLATFORMS[k.target];
    if (!p) throw new Error(`ascend launcher: no platform for target ${k.target}`);
    return p;
  };
  const tiling = (rows: number, platform?: Platform): Tiling => computeTilingForLayout(k.layout, rows, platformFor(undefined, platform));

  async function run(device: AscendDevice, inputs: Record<string, TensorData>, outputs?: string[]): Promise<Record<string, TensorData>> {
    const xName = nameOf(k.inputRoles, names.inputs, 'x')!;
    const x = inputs[xName];
    if (!x) throw new Error(`ascend launcher ${k.id}: missing input '${xName}'`);
    if (x.length % k.H !== 0) throw new Error(`ascend launcher ${k.id}: '${xName}' has ${x.length} elements, not a multiple of H = ${k.H}`);
    const rows = x.length / k.H;
    const buffers: Record<string, Uint8Array> = {};
    for (const p of k.params) {
      const info = dtypeInfo(p.dtype);
      const n = elements(p, rows, k.H);
      if (p.direction === 'out') {
        buffers[p.name] = new Uint8Array(n * info.bytes);
        continue;
      }
      const onnx = nameOf(k.inputRoles, names.inputs, p.role);
      const data = onnx === undefined ? undefined : inputs[onnx];
      if (!data) throw new Error(`ascend launcher ${k.id}: missing input '${onnx ?? p.role}'`);
      if (data.constructor.name !== info.array) throw new Error(`ascend launcher ${k.id}: '${onnx}' (${p.dtype}) must be a ${info.array}`);
      if (data.length !== n) throw new Error(`ascend launcher ${k.id}: '${onnx}' has ${data.length} elements, expected ${n}`);
      buffers[p.name] = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
    const t = computeTilingForLayout(k.layout, rows, platformFor(device));
    const result = t.blockDim > 0 ? await device.launch(k.id, t.blockDim, buffers, serializeTiling(t.data)) : undefined;
    const out: Record<string, TensorData> = {};
    for (const p of k.params) {
      if (p.direction !== 'out') continue;
      const onnx = nameOf(k.outputRoles, names.outputs, p.role);
      if (onnx === undefined || (outputs && !outputs.includes(onnx))) continue;
      const bytes = (result && result[p.name]) || buffers[p.name]!;
      out[onnx] = dtypeInfo(p.dtype).make(bytes.slice().buffer);
    }
    return out;
  }

  return { kernel: k, names, tiling, run };
}
