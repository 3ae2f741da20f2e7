/**
 * The fused operation outside the compiler, for checking kernels against it in Node or a browser
 * bundle (no Node built-ins, no WebGPU): the CPU reference of every RMSNorm variant, the
 * attributes-to-parameter mapping of fused nodes and manifests, SPEC section 2's tolerances, and
 * fp16/bf16 bit conversions (launchers take fp16 tensors as `Uint16Array` bits).
 *
 * ```ts
 * import { rmsNormReference, fromAttributes, compareWithTolerance } from 'rmsfuse/runtime';
 *
 * const param = fromAttributes(node.opType, node.attributes); // a manifest.json node
 * const want = rmsNormReference(param, 'float32', H, { x, gamma });
 * const { ok, message } = compareWithTolerance(got, want.y!, 'float32');
 * ```
 *
 * @module rmsfuse/runtime
 */
export * from '../../runtime/index.js';
