/**
 * Resource limits where model data enters rmsfuse (loader and constant decoding).
 *
 * An ONNX file declares sizes that rmsfuse would otherwise trust: tensor dims, external-data
 * lengths, and protobuf lengths and repeat counts. A few bytes can declare terabytes, and a
 * few megabytes of tiny repeated messages decode into gigabytes of JavaScript objects. Each
 * check here runs before the allocation it protects and fails with a clear RmsfuseError:
 *
 * - `maxTensorBytes` (default 4 GiB; env RMSFUSE_MAX_BYTES; CLI --max-tensor-bytes): the most
 *   bytes rmsfuse allocates at once: the .onnx file itself (read into one buffer), one tensor's
 *   data, a constant made at fusion time. Never above what Node.js can allocate in one buffer
 *   (buffer.constants.MAX_LENGTH, 4 GiB on Node 20). External weights are never read, so a large external
 *   tensor is fine; only the ones rmsfuse would really read count.
 * - `maxDecodedBytes` (default 75% of the V8 heap still free; env RMSFUSE_MAX_DECODED_BYTES):
 *   the estimated heap the decoded message tree needs. The estimate comes from a scan of the
 *   wire format (no allocation per message) before the decoder runs.
 * - Dims: every dim of a tensor or value_info is a non-negative integer; element counts must
 *   stay at or below 2^53 (exact in a JS number), else the model is refused.
 * - Inline tensor data must match the declared dims and dtype; an external `length` key
 *   must match them too.
 *
 * Protobuf length prefixes themselves cannot make the decoder allocate: it checks each length
 * against the end of the buffer before slicing (a view, not a copy), so a huge length fails as
 * a truncated model.
 */
import { constants as bufferConstants } from 'node:buffer';
import * as v8 from 'node:v8';
import type { DescField, DescMessage } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type TensorProto,
  type TypeProto,
} from 'onnx-buf';
import { RmsfuseError } from '../errors.js';
import { dtypeName, elementBits, ONNX_DTYPE } from './dtype.js';

export const DEFAULT_MAX_TENSOR_BYTES = 4 * 2 ** 30;
/** Largest integer a JS number holds exactly. */
export const MAX_SAFE_ELEMENTS = 2 ** 53;

export interface Limits {
  /** Largest single allocation: the model file buffer, one tensor's data. */
  maxTensorBytes: number;
  /** Largest estimated heap for the decoded ModelProto tree. */
  maxDecodedBytes: number;
}

/** Reads a byte count: a plain integer, or with a K/M/G/T suffix (powers of 1024, `i`/`B` optional). */
export function parseByteSize(text: string, what = 'byte size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m) throw new RmsfuseError(`${what} '${text}' is not a byte count (e.g. 4294967296, 512M, 4G)`, 2);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const v = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(v) || v <= 0) throw new RmsfuseError(`${what} '${text}' must be a positive byte count`, 2);
  return v;
}

function envBytes(name: string): number | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : parseByteSize(v, name);
}

/** Heap the decoder may use by default: 75% of what V8 still has free. */
export function defaultDecodedBudget(): number {
  const h = v8.getHeapStatistics();
  return Math.max(0, Math.floor(0.75 * (h.heap_size_limit - h.used_heap_size)));
}

/** The largest buffer this Node.js can allocate at all (4 GiB on Node 20): a raised limit stops there. */
export const PLATFORM_MAX_BYTES = bufferConstants.MAX_LENGTH;

/** Explicit options win over the environment, which wins over the defaults. */
export function resolveLimits(partial: Partial<Limits> = {}): Limits {
  return {
    maxTensorBytes: Math.min(PLATFORM_MAX_BYTES, partial.maxTensorBytes ?? envBytes('RMSFUSE_MAX_BYTES') ?? DEFAULT_MAX_TENSOR_BYTES),
    maxDecodedBytes: partial.maxDecodedBytes ?? envBytes('RMSFUSE_MAX_DECODED_BYTES') ?? defaultDecodedBudget(),
  };
}

/** A shape for messages; a rank in the thousands is shortened to its ends. */
export function shapeText(dims: readonly (bigint | number)[]): string {
  if (dims.length <= 8) return `[${dims.join(', ')}]`;
  return `[${dims.slice(0, 4).join(', ')}, ... ${dims.length - 6} more ..., ${dims.slice(-2).join(', ')}] (rank ${dims.length})`;
}

const mib = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`);

/** Refuses an allocation of `bytes` for `what` over maxTensorBytes (call before allocating). */
export function assertAllocation(bytes: number, what: string, limits: Limits = resolveLimits()): void {
  if (!Number.isFinite(bytes) || bytes < 0 || bytes > limits.maxTensorBytes) {
    throw new RmsfuseError(
      `${what} would need ${Number.isFinite(bytes) ? mib(bytes) : 'an unbounded amount of memory'}, over the limit of ` +
        `${mib(limits.maxTensorBytes)} for one allocation (raise it with --max-tensor-bytes or RMSFUSE_MAX_BYTES)`,
    );
  }
}

/**
 * The element count of `dims`, refusing negative dims and counts over 2^53 (where a JS number
 * stops being exact, and any allocation would be absurd anyway).
 */
export function checkedElementCount(dims: readonly (bigint | number)[], what: string): number {
  const shape = shapeText(dims);
  for (const d of dims) {
    if (typeof d === 'number' && !Number.isInteger(d)) throw new RmsfuseError(`${what} has a dimension that is not an integer (${d}) in shape ${shape}`);
    const b = BigInt(d);
    if (b < 0n) throw new RmsfuseError(`${what} has a negative dimension (${b}) in shape ${shape}`);
    if (b > BigInt(MAX_SAFE_ELEMENTS)) throw new RmsfuseError(`${what} has a dimension over 2^53 (${b}) in shape ${shape}; refusing it`);
  }
  if (dims.some((d) => BigInt(d) === 0n)) return 0;
  let n = 1;
  for (const d of dims) {
    n *= Number(d);
    if (n > MAX_SAFE_ELEMENTS) throw new RmsfuseError(`${what} declares more than 2^53 elements (shape ${shape}); refusing it`);
  }
  return n;
}

/** Bytes of a tensor's data as declared by dims and dtype; undefined for strings and unknown types. */
export function declaredByteLength(t: TensorProto, what: string): number | undefined {
  const n = checkedElementCount(t.dims, what);
  const bits = elementBits(t.dataType);
  return bits === undefined ? undefined : Math.ceil((n * bits) / 8);
}

// ---------------------------------------------------------------------------------------------
// Before decoding: the file size and the decoded-tree estimate.

/** Refuses reading a file of `size` bytes into one buffer over the limit. */
export function checkFileSize(size: number, file: string, limits: Limits = resolveLimits()): void {
  if (size > limits.maxTensorBytes) {
    throw new RmsfuseError(
      `${file} is ${mib(size)}, over the limit of ${mib(limits.maxTensorBytes)} for one allocation; the .onnx file is read ` +
        `into memory whole (weights in external data are not): raise the limit with --max-tensor-bytes or RMSFUSE_MAX_BYTES`,
    );
  }
}

/**
 * Rough heap costs of decoded values, measured on Node 20 with protobuf-es 2 (an empty NodeProto
 * takes about 280 bytes, a TensorProto about 540: the cost grows with the message's field count).
 */
const COST = { messageBase: 150, perField: 25, number: 28, bigint: 48, string: 80, bytes: 120, unknown: 160 } as const;
const messageCost = (desc: DescMessage): number => COST.messageBase + COST.perField * desc.fields.length;

export interface DecodeEstimate {
  messages: number;
  values: number;
  bytes: number;
}

const fieldTables = new WeakMap<DescMessage, Map<number, DescField>>();
function fieldTable(desc: DescMessage): Map<number, DescField> {
  let t = fieldTables.get(desc);
  if (!t) {
    t = new Map(desc.fields.map((f) => [f.number, f]));
    fieldTables.set(desc, t);
  }
  return t;
}

const is64 = (scalar: number): boolean => scalar === 3 || scalar === 4 || scalar === 6 || scalar === 16 || scalar === 18;
// ScalarType: DOUBLE 1, FLOAT 2, INT64 3, UINT64 4, INT32 5, FIXED64 6, FIXED32 7, BOOL 8, STRING 9,
// BYTES 12, UINT32 13, SFIXED32 15, SFIXED64 16, SINT32 17, SINT64 18.

/**
 * Estimates the heap the decoded message tree of `buf` needs by walking the wire format with
 * the ModelProto schema. Stops quietly at malformed data or past `depthLimit` (the decoder
 * then reports it); never allocates per field.
 */
export function estimateDecodedSize(buf: Uint8Array, depthLimit = 100): DecodeEstimate {
  const est = { messages: 1, values: 0, bytes: messageCost(ModelProtoSchema) };
  let pos = 0;
  const varint = (end: number): number | undefined => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) return undefined;
      const b = buf[pos++]!;
      v += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return v;
    }
    return undefined;
  };
  const add = (values: number, bytes: number) => {
    est.values += values;
    est.bytes += bytes;
  };
  /** Returns false on malformed input. */
  const walk = (desc: DescMessage | undefined, end: number, depth: number): boolean => {
    if (depth > depthLimit) return false;
    const fields = desc ? fieldTable(desc) : undefined;
    while (pos < end) {
      const tag = varint(end);
      if (tag === undefined) return false;
      const no = Math.floor(tag / 8);
      const wt = tag & 7;
      const f = fields?.get(no);
      if (wt === 2) {
        const len = varint(end);
        if (len === undefined || pos + len > end) return false;
        const stop = pos + len;
        const sub = f && (f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')) ? f.message : undefined;
        if (sub) {
          est.messages++;
          est.bytes += messageCost(sub);
          if (!walk(sub, stop, depth + 1)) return false;
        } else if (f?.fieldKind === 'list' && (f.listKind === 'scalar' || f.listKind === 'enum') && f.scalar !== 9 && f.scalar !== 12) {
          // Packed repeated numbers: one value per varint (or per fixed-size slot).
          const s = f.scalar ?? 5;
          const fixed = s === 1 || s === 6 || s === 16 ? 8 : s === 2 || s === 7 || s === 15 ? 4 : 0;
          let count = 0;
          if (fixed) count = Math.floor(len / fixed);
          else for (let i = pos; i < stop; i++) if ((buf[i]! & 0x80) === 0) count++;
          add(count, count * (is64(s) ? COST.bigint : COST.number));
        } else if (f?.scalar === 12) {
          add(1, COST.bytes);
        } else if (f) {
          add(1, COST.string + 2 * len);
        } else {
          add(1, COST.unknown);
        }
        pos = stop;
      } else if (wt === 0) {
        if (varint(end) === undefined) return false;
        add(1, f ? (f.scalar !== undefined && is64(f.scalar) ? COST.bigint : COST.number) : COST.unknown);
      } else if (wt === 1 || wt === 5) {
        pos += wt === 1 ? 8 : 4;
        if (pos > end) return false;
        add(1, f ? (wt === 1 ? COST.bigint : COST.number) : COST.unknown);
      } else if (wt === 3) {
        // A group (unknown field): walk it to its end tag.
        add(1, COST.unknown);
        if (!walk(undefined, end, depth + 1)) return false;
      } else if (wt === 4) {
        return desc === undefined;
      } else {
        return false;
      }
    }
    return true;
  };
  walk(ModelProtoSchema, buf.length, 0);
  return est;
}

/** Refuses a model whose decoded tree would not fit the heap budget, before decoding it. */
export function checkDecodeBudget(buf: Uint8Array, what: string, limits: Limits = resolveLimits(), depthLimit = 100): void {
  const est = estimateDecodedSize(buf, depthLimit);
  if (est.bytes > limits.maxDecodedBytes) {
    throw new RmsfuseError(
      `${what} would need about ${mib(est.bytes)} of memory to decode (${est.messages} messages, ${est.values} values ` +
        `in ${buf.length} bytes), over the limit of ${mib(limits.maxDecodedBytes)} ` +
        `(raise Node's heap with NODE_OPTIONS=--max-old-space-size=MiB, or set RMSFUSE_MAX_DECODED_BYTES)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// After decoding: every tensor and every declared shape.

/** Which typed field holds a tensor's values when raw_data is empty, and how many per element. */
function typedCount(t: TensorProto): number | undefined {
  const D = ONNX_DTYPE;
  switch (t.dataType) {
    case D.FLOAT: return t.floatData.length;
    case D.DOUBLE: return t.doubleData.length;
    case D.INT64: return t.int64Data.length;
    case D.UINT32: case D.UINT64: return t.uint64Data.length;
    case D.INT8: case D.UINT8: case D.INT16: case D.UINT16: case D.INT32: case D.BOOL:
    case D.FLOAT16: case D.BFLOAT16: return t.int32Data.length;
    case D.STRING: return t.stringData.length;
    default: return undefined; // complex, float8, sub-byte: packing rules vary; not checked
  }
}

const EXTERNAL = 1;

function checkTensor(t: TensorProto, where: string): void {
  const what = `${where}tensor '${t.name}'`;
  const declared = declaredByteLength(t, what);
  if (t.dataLocation === EXTERNAL) {
    const len = t.externalData.find((e) => e.key === 'length')?.value;
    if (len !== undefined && declared !== undefined && /^\d+$/.test(len) && Number(len) !== declared) {
      throw new RmsfuseError(
        `${what}: external data length ${len} does not match its ${dtypeName(t.dataType)} shape ${shapeText(t.dims)} (${declared} bytes)`,
      );
    }
    return;
  }
  const n = checkedElementCount(t.dims, what);
  if (t.rawData.length > 0) {
    if (declared !== undefined && t.rawData.length !== declared) {
      throw new RmsfuseError(
        `${what} has ${t.rawData.length} bytes of raw_data but its ${dtypeName(t.dataType)} shape ${shapeText(t.dims)} needs ${declared}`,
      );
    }
    return;
  }
  const count = typedCount(t);
  if (count !== undefined && count !== n) {
    throw new RmsfuseError(`${what} holds ${count} values but its ${dtypeName(t.dataType)} shape ${shapeText(t.dims)} has ${n} elements`);
  }
}

function checkType(type: TypeProto | undefined, what: string): void {
  const v = type?.value;
  if (!v) return;
  switch (v.case) {
    case 'tensorType':
    case 'sparseTensorType': {
      const dims = v.value.shape?.dim ?? [];
      for (const d of dims) {
        if (d.value.case === 'dimValue') {
          const x = d.value.value;
          if (x < 0n) throw new RmsfuseError(`${what} has a negative dimension (${x})`);
          if (x > BigInt(MAX_SAFE_ELEMENTS)) throw new RmsfuseError(`${what} has a dimension over 2^53 (${x})`);
        }
      }
      return;
    }
    case 'sequenceType': return checkType(v.value.elemType, what);
    case 'optionalType': return checkType(v.value.elemType, what);
    case 'mapType': return checkType(v.value.valueType, what);
    default: return;
  }
}

function checkAttributes(attrs: AttributeProto[], where: string, depth = 0): void {
  for (const a of attrs) {
    const at = `${where}attribute '${a.name}': `;
    if (a.t) checkTensor(a.t, at);
    for (const t of a.tensors) checkTensor(t, at);
    for (const s of [...(a.sparseTensor ? [a.sparseTensor] : []), ...a.sparseTensors]) {
      checkedElementCount(s.dims, `${at}sparse tensor`);
      if (s.values) checkTensor(s.values, at);
      if (s.indices) checkTensor(s.indices, at);
    }
    if (a.tp) checkType(a.tp, `${at}type`);
    for (const tp of a.typeProtos) checkType(tp, `${at}type`);
    if (a.g) checkGraph(a.g, at, depth + 1);
    for (const g of a.graphs) checkGraph(g, at, depth + 1);
  }
}

function checkGraph(g: GraphProto, outer: string, depth = 0): void {
  // The full path for the main graph and its direct subgraphs; deeper, only the depth (a path
  // through 30 If levels would make a message of kilobytes).
  const where = depth <= 1 ? `${outer}graph '${g.name}': ` : `graph '${g.name}' (a subgraph ${depth} levels deep): `;
  for (const t of g.initializer) checkTensor(t, where);
  for (const s of g.sparseInitializer) {
    checkedElementCount(s.dims, `${where}sparse initializer`);
    if (s.values) checkTensor(s.values, where);
    if (s.indices) checkTensor(s.indices, where);
  }
  for (const vi of [...g.input, ...g.output, ...g.valueInfo]) checkType(vi.type, `${where}value '${vi.name}'`);
  for (const n of g.node) checkAttributes(n.attribute, `${where}node '${n.name || n.opType}' `, depth);
}

/**
 * Checks every tensor (initializers, Constant values, subgraphs, functions, training info)
 * and every declared shape of a decoded model. Throws RmsfuseError on the first problem.
 */
export function checkModelLimits(model: ModelProto): void {
  if (model.graph) checkGraph(model.graph, '');
  for (const ti of model.trainingInfo) {
    if (ti.initialization) checkGraph(ti.initialization, 'training ');
    if (ti.algorithm) checkGraph(ti.algorithm, 'training ');
  }
  for (const f of model.functions) {
    for (const vi of f.valueInfo) checkType(vi.type, `function '${f.name}' value '${vi.name}'`);
    for (const n of f.node) checkAttributes(n.attribute, `function '${f.name}' node '${n.name || n.opType}' `);
  }
}
