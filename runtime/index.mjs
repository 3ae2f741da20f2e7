// `rmsfuse/runtime` for plain Node: the TypeScript entry loaded through tsx's scoped loader.
// Keep the names in step with runtime/index.ts (test/package checks them).
import { tsImport } from 'tsx/esm/api';

const runtime = await tsImport('./index.ts', import.meta.url);

export const {
  rmsNormReference, rowRstd, DYNAMIC_SCALE_FLOOR, compareWithTolerance, REL_TOL, REL_FLOOR, FLOAT_BAD_FRACTION,
  toF16Bits, fromF16Bits, toBf16Bits, fromBf16Bits, f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32, roundTo,
  roundArrayTo, roundHalfEven, satInt8, fromAttributes, toAttributes, signature, defaultParam, variantName,
} = runtime;
