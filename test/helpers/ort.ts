/**
 * Test helper: run an ONNX model in onnxruntime-node (CPU) and compare outputs with SPEC
 * tolerances. Tensors cross this boundary as plain numbers: fp16 and bf16 values are held in a
 * Float32Array (already representable in their dtype) and converted to/from their bit patterns
 * here, because onnxruntime-node takes fp16 as Uint16Array bits (Node 20 has no Float16Array).
 */
import { toBinary } from '@bufbuild/protobuf';
import * as ort from 'onnxruntime-node';
import { type ModelProto, ModelProtoSchema, type ValueInfoProto } from 'onnx-buf';
import {
  type CompareKind,
  compareWithTolerance,
  fromF16Bits,
  roundArrayTo,
  toF16Bits,
} from '../../runtime/numeric.js';
import { rng, type ElemType } from './graph.js';

export interface HostTensor {
  dtype: ElemType;
  dims: number[];
  /** Numbers for float types (fp16/bf16 as their exact values), the integer array otherwise. */
  data: Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;
}

const CODE_TO_TYPE: Record<number, ElemType> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 16: 'bfloat16' };

function toOrt(t: HostTensor): ort.Tensor {
  switch (t.dtype) {
    case 'float16': return new ort.Tensor('float16', toF16Bits(t.data as Float32Array), t.dims);
    // onnxruntime's CPU provider lacks bf16 for most ops: check bf16 against runtime/reference.ts.
    case 'bfloat16': throw new Error('bfloat16 is not run on onnxruntime CPU');
    case 'bool': return new ort.Tensor('bool', t.data as Uint8Array, t.dims);
    default: return new ort.Tensor(t.dtype, t.data as Float32Array, t.dims);
  }
}

function fromOrt(t: ort.Tensor): HostTensor {
  const dims = [...t.dims];
  switch (t.type) {
    case 'float16': return { dtype: 'float16', dims, data: fromF16Bits(t.data as Uint16Array) };
    case 'float32': return { dtype: 'float32', dims, data: t.data as Float32Array };
    case 'int8': return { dtype: 'int8', dims, data: t.data as Int8Array };
    case 'uint8': return { dtype: 'uint8', dims, data: t.data as Uint8Array };
    case 'int32': return { dtype: 'int32', dims, data: t.data as Int32Array };
    case 'int64': return { dtype: 'int64', dims, data: t.data as BigInt64Array };
    case 'bool': return { dtype: 'bool', dims, data: t.data as Uint8Array };
    default: throw new Error(`unsupported output type ${t.type}`);
  }
}

export function modelBytes(m: ModelProto | Uint8Array): Uint8Array {
  return m instanceof Uint8Array ? m : toBinary(ModelProtoSchema, m, { writeUnknownFields: true });
}

/**
 * Runs the model once. onnxruntime's own graph optimizations are disabled so that the graph
 * that runs is the one under test (ORT would otherwise fuse some RMSNorm spellings itself).
 */
export async function runModel(model: ModelProto | Uint8Array, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const session = await ort.InferenceSession.create(modelBytes(model), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  try {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = toOrt(v);
    const res = await session.run(f);
    const out: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(res)) out[k] = fromOrt(v);
    return out;
  } finally {
    await session.release();
  }
}

export interface FeedOptions {
  /** Values of symbolic dims (e.g. { batch: 2, seq: 5 }); unknown ones default to 3. */
  dims?: Record<string, number>;
  seed?: number;
  /**
   * Row magnitudes: every row (last axis) of a float input is scaled by 10^u with u uniform in
   * [-spread, spread], so large and small rows both occur. Default 2; values are signed.
   */
  spread?: number;
  /** Upper bound of |values| (fp16 graphs that square in fp16 need < 256). Default 1e4. */
  maxAbs?: number;
  /**
   * Values on a grid where sums of squares are exact in fp32: each row is 2^e * j/64 with integer
   * j in [-64, 64] (e integer). Then every summation order gives the same mean, so a comparison
   * sees the graph's structure rather than onnxruntime's reduction order (which differs between
   * a graph and an inlined function by an ulp, and fp16 double rounding can amplify that).
   */
  exactSums?: boolean;
}

function dimsOf(v: ValueInfoProto, named: Record<string, number>): { dtype: ElemType; dims: number[] } {
  if (v.type?.value.case !== 'tensorType') throw new Error(`input ${v.name} is not a tensor`);
  const t = v.type.value.value;
  const dtype = CODE_TO_TYPE[t.elemType];
  if (!dtype) throw new Error(`input ${v.name}: unsupported dtype ${t.elemType}`);
  const dims = (t.shape?.dim ?? []).map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : named[d.value.value ?? ''] ?? 3));
  return { dtype, dims };
}

/** Random feeds for every graph input: signed floats with large and small rows; small ints. */
export function randomFeeds(model: ModelProto, opts: FeedOptions = {}): Record<string, HostTensor> {
  const r = rng(opts.seed ?? 1);
  const spread = opts.spread ?? 2;
  const maxAbs = opts.maxAbs ?? 1e4;
  const feeds: Record<string, HostTensor> = {};
  const inits = new Set(model.graph!.initializer.map((t) => t.name));
  for (const inp of model.graph!.input) {
    if (inits.has(inp.name)) continue;
    const { dtype, dims } = dimsOf(inp, opts.dims ?? {});
    const n = dims.reduce((a, b) => a * b, 1);
    const row = dims.length ? dims[dims.length - 1]! : 1;
    if (dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16') {
      const a = new Float32Array(n);
      let mag = 1;
      for (let i = 0; i < n; i++) {
        if (i % Math.max(row, 1) === 0) {
          mag = opts.exactSums ? 2 ** Math.round((2 * r() - 1) * spread * Math.log2(10)) : 10 ** ((2 * r() - 1) * spread);
        }
        const u = opts.exactSums ? Math.round((2 * r() - 1) * 64) / 64 : 2 * r() - 1;
        a[i] = Math.max(-maxAbs, Math.min(maxAbs, u * mag));
      }
      feeds[inp.name] = { dtype, dims, data: dtype === 'float32' ? a : roundArrayTo(dtype, a) };
    } else if (dtype === 'int8') {
      feeds[inp.name] = { dtype, dims, data: Int8Array.from({ length: n }, () => Math.floor(r() * 256) - 128) };
    } else if (dtype === 'bool') {
      feeds[inp.name] = { dtype, dims, data: Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)) };
    } else {
      throw new Error(`randomFeeds: no generator for ${dtype} input ${inp.name}`);
    }
  }
  return feeds;
}

/** The SPEC tolerance kind of an output: int8 |diff| <= 1; floats relative 1e-3 (bf16 2^-7). */
export function kindOf(t: HostTensor): CompareKind {
  if (t.dtype === 'int8' || t.dtype === 'uint8') return 'int8';
  if (t.dtype === 'float32' || t.dtype === 'float16' || t.dtype === 'bfloat16') return t.dtype;
  throw new Error(`no tolerance for ${t.dtype}`);
}

export interface CompareReport {
  ok: boolean;
  messages: string[];
}

/**
 * Compares every output of `expected` with `actual` under SPEC tolerances (section 2):
 * int8 within 1; fp32/fp16: fewer than 0.1% of elements over 1e-3 relative error; bf16 2^-7.
 * `kinds` overrides the kind per output (e.g. 'scale' for a dynamic-quant scale: 2^-8 each).
 */
export function compareOutputs(
  actual: Record<string, HostTensor>,
  expected: Record<string, HostTensor>,
  kinds: Record<string, CompareKind> = {},
): CompareReport {
  const messages: string[] = [];
  let ok = true;
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    if (!a) {
      ok = false;
      messages.push(`${name}: missing`);
      continue;
    }
    if (a.dtype !== e.dtype || a.dims.join(',') !== e.dims.join(',')) {
      ok = false;
      messages.push(`${name}: ${a.dtype}[${a.dims}] vs expected ${e.dtype}[${e.dims}]`);
      continue;
    }
    const num = (t: HostTensor): ArrayLike<number> => (t.data instanceof BigInt64Array ? Array.from(t.data, Number) : t.data);
    const r = compareWithTolerance(num(a), num(e), kinds[name] ?? kindOf(e), { label: name });
    ok &&= r.ok;
    messages.push(r.message);
  }
  return { ok, messages };
}
