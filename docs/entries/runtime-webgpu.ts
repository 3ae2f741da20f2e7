/**
 * The WebGPU launcher runtime that `--target webgpu --emit DIR` copies next to the kernels as
 * `DIR/kernels/runtime.ts`. An emitted `DIR/index.ts` exports `launchers`, one {@link Launcher}
 * per fused node:
 *
 * ```ts
 * import { launchers } from './kernels/index.js';
 *
 * const out = await launchers['/norm/PostNorm'].run(device, { x, residual, 'norm.weight': gamma });
 * ```
 *
 * Tensors are typed arrays keyed by ONNX tensor name: `Float32Array` (fp32), `Uint16Array` of
 * bits (fp16, bf16), `Int8Array` (int8).
 *
 * @module rmsfuse/runtime/webgpu
 */
export * from '../../runtime/webgpu/runtime.js';
