/**
 * `rmsfuse/runtime`: what code that runs emitted kernels needs beside them — the CPU reference
 * of every variant, fp16/bf16 numerics, SPEC's tolerance check, and the operation's types.
 * Free of Node built-ins, so it bundles for the browser.
 * @packageDocumentation
 */
export { rmsNormReference, rowRstd, DYNAMIC_SCALE_FLOOR, type RefInputs, type RefOutputs } from './reference.js';
export {
  compareWithTolerance, REL_TOL, REL_FLOOR, FLOAT_BAD_FRACTION, toF16Bits, fromF16Bits, toBf16Bits, fromBf16Bits,
  f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32, roundTo, roundArrayTo, roundHalfEven, satInt8,
  type CompareKind, type CompareResult, type CompareOptions,
} from './numeric.js';
export {
  fromAttributes, toAttributes, signature, defaultParam, variantName, type RmsNormParam, type FusedAttributes,
  type LayerType, type QuantType, type DynamicQuantType, type PrecisionMode, type ModelType, type InputRole, type OutputRole,
  type DType, type FloatDType, type TensorDesc, type Signature,
} from '../compiler/op/param.js';
export type { Manifest, ManifestNode, ManifestKernel } from '../codegen/manifest.js';
