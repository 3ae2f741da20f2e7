/**
 * Values of small constant tensors (epsilon, exponents, scales, axes), decoded from whichever
 * field holds them. Weights are never decoded: passes only ask for tensors up to a size limit.
 */
import type { TensorProto } from 'onnx-buf';
import { RmsfuseError } from '../errors.js';
import { dtypeName, ONNX_DTYPE } from './dtype.js';
import { isExternal, tensorByteLength } from './external.js';

export function tensorShape(t: TensorProto): number[] {
  return t.dims.map(Number);
}

export function elementCount(t: TensorProto): number {
  return t.dims.reduce((n, d) => n * Number(d), 1);
}

/** IEEE half bits -> number (exact). */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const bf16ToNumber = (b: number): number => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!;

/**
 * Decodes a tensor's elements as numbers. `externalBytes` supplies bytes of external tensors.
 * Returns undefined for types that are not plain numbers (strings, sub-byte, complex).
 */
export function tensorValues(t: TensorProto, externalBytes?: (t: TensorProto) => Uint8Array): number[] | undefined {
  const n = elementCount(t);
  let raw: Uint8Array | undefined;
  if (isExternal(t)) {
    if (!externalBytes) return undefined;
    raw = externalBytes(t);
  } else if (t.rawData.length > 0 || (n > 0 && isEmptyTyped(t))) {
    raw = t.rawData;
  }
  if (raw) {
    const expected = tensorByteLength(t);
    if (expected !== undefined && raw.length !== expected) {
      throw new RmsfuseError(`tensor '${t.name}' has ${raw.length} bytes of data but its ${dtypeName(t.dataType)} shape [${tensorShape(t).join(', ')}] needs ${expected}`);
    }
    return decodeRaw(t.dataType, raw, n);
  }
  return decodeTyped(t, n);
}

const isEmptyTyped = (t: TensorProto): boolean =>
  t.floatData.length === 0 && t.int32Data.length === 0 && t.int64Data.length === 0 && t.doubleData.length === 0 && t.uint64Data.length === 0;

function decodeRaw(dt: number, raw: Uint8Array, n: number): number[] | undefined {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    switch (dt) {
      case ONNX_DTYPE.FLOAT: out[i] = v.getFloat32(i * 4, true); break;
      case ONNX_DTYPE.DOUBLE: out[i] = v.getFloat64(i * 8, true); break;
      case ONNX_DTYPE.FLOAT16: out[i] = halfToNumber(v.getUint16(i * 2, true)); break;
      case ONNX_DTYPE.BFLOAT16: out[i] = bf16ToNumber(v.getUint16(i * 2, true)); break;
      case ONNX_DTYPE.INT8: out[i] = v.getInt8(i); break;
      case ONNX_DTYPE.UINT8: case ONNX_DTYPE.BOOL: out[i] = v.getUint8(i); break;
      case ONNX_DTYPE.INT16: out[i] = v.getInt16(i * 2, true); break;
      case ONNX_DTYPE.UINT16: out[i] = v.getUint16(i * 2, true); break;
      case ONNX_DTYPE.INT32: out[i] = v.getInt32(i * 4, true); break;
      case ONNX_DTYPE.UINT32: out[i] = v.getUint32(i * 4, true); break;
      case ONNX_DTYPE.INT64: out[i] = Number(v.getBigInt64(i * 8, true)); break;
      case ONNX_DTYPE.UINT64: out[i] = Number(v.getBigUint64(i * 8, true)); break;
      default: return undefined;
    }
  }
  return out;
}

function decodeTyped(t: TensorProto, n: number): number[] | undefined {
  const dt = t.dataType;
  let vals: number[];
  switch (dt) {
    case ONNX_DTYPE.FLOAT: vals = t.floatData; break;
    case ONNX_DTYPE.DOUBLE: vals = t.doubleData; break;
    case ONNX_DTYPE.INT64: vals = t.int64Data.map(Number); break;
    case ONNX_DTYPE.UINT32: case ONNX_DTYPE.UINT64: vals = t.uint64Data.map(Number); break;
    // fp16/bf16 are stored as their bits in int32_data; small ints as values.
    case ONNX_DTYPE.FLOAT16: vals = t.int32Data.map(halfToNumber); break;
    case ONNX_DTYPE.BFLOAT16: vals = t.int32Data.map(bf16ToNumber); break;
    case ONNX_DTYPE.INT8: case ONNX_DTYPE.UINT8: case ONNX_DTYPE.INT16: case ONNX_DTYPE.UINT16:
    case ONNX_DTYPE.INT32: case ONNX_DTYPE.BOOL: vals = t.int32Data; break;
    default: return undefined;
  }
  if (vals.length !== n) {
    throw new RmsfuseError(`tensor '${t.name}' holds ${vals.length} values but its shape [${tensorShape(t).join(', ')}] has ${n} elements`);
  }
  return vals.slice();
}
