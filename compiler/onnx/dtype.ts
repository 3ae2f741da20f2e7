/** ONNX TensorProto.DataType codes and the names rmsfuse (and onnxruntime-node) use for them. */
import type { DType } from '../op/param.js';

export const ONNX_DTYPE = {
  FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, BFLOAT16: 16,
} as const;

const NAMES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128',
  16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2', 20: 'float8e5m2fnuz',
  21: 'uint4', 22: 'int4', 23: 'float4e2m1', 24: 'float8e8m0', 25: 'uint2', 26: 'int2',
};

/** Size in bytes of one element; undefined for strings and sub-byte types. */
const SIZES: Record<number, number> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16,
  16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 24: 1,
};

/** Bits per element for every fixed-size type (sub-byte types included). */
const BITS: Record<number, number> = { 21: 4, 22: 4, 23: 4, 25: 2, 26: 2 };

export const dtypeName = (code: number): string => NAMES[code] ?? `dtype(${code})`;
export const elementSize = (code: number): number | undefined => SIZES[code];
export const elementBits = (code: number): number | undefined => BITS[code] ?? (SIZES[code] ? SIZES[code] * 8 : undefined);

export function dtypeCode(name: DType | string): number {
  for (const [code, n] of Object.entries(NAMES)) if (n === name) return Number(code);
  throw new Error(`unknown dtype '${name}'`);
}
