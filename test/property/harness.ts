/**
 * What the property and fuzz tests do with a model: optimize it in memory through the public
 * API, check the result is a valid model, count fused nodes, compare outputs in onnxruntime.
 */
import type { ModelProto } from 'onnx-buf';
import { loadModel, optimizeModel, type OutputFormat } from '../../compiler/api.js';
import { RmsfuseError } from '../../compiler/errors.js';
import { Model, type Graph } from '../../compiler/ir/graph.js';
import { decodeModel, encodeModel, loadModelBytes } from '../../compiler/onnx/model.js';
import type { Report } from '../../compiler/pass-manager.js';
import * as ort from 'onnxruntime-node';
import { compareWithTolerance, fromF16Bits, REL_FLOOR, REL_TOL, toF16Bits } from '../../runtime/numeric.js';
import { renderModel } from '../helpers/graph.js';
import { type HostTensor, modelBytes } from '../helpers/ort.js';
import type { Kind } from './rmsnorm-gen.js';

export const RMSFUSE_DOMAIN = 'rmsfuse';

export interface Optimized {
  bytes: Uint8Array;
  proto: ModelProto;
  report: Report;
}

/** loadModel(bytes) -> optimizeModel -> encode: the API path without files. */
export function optimizeBytes(input: Uint8Array | ModelProto, options: { format?: OutputFormat } = {}): Optimized {
  const model = loadModel(modelBytes(input));
  const report = optimizeModel(model, { log: () => {}, ...options });
  const bytes = encodeModel(model.proto);
  return { bytes, proto: model.proto, report };
}

/**
 * The output must be a model rmsfuse itself accepts: it decodes, passes every load check, and
 * validates (no dangling inputs, no cycles, unique producers). Throws with the reason.
 */
export function assertValidModel(bytes: Uint8Array, what = 'optimized model'): Model {
  let model: Model;
  try {
    decodeModel(bytes, what);
    model = new Model(loadModelBytes(bytes, process.cwd()));
    model.graph.validate();
  } catch (e) {
    throw new Error(`${what} is not valid: ${(e as Error).message}`);
  }
  return model;
}

/** What a fused site is written as: rmsfuse nodes, or the standard ops of --format ort / onnx23. */
const FUSED_OPS: Record<string, string[]> = {
  [RMSFUSE_DOMAIN]: ['RmsNorm', 'PreNorm', 'PostNorm'],
  '': ['SimplifiedLayerNormalization', 'RMSNormalization'],
  'ai.onnx': ['SimplifiedLayerNormalization', 'RMSNormalization'],
  'com.microsoft': ['SkipSimplifiedLayerNormalization'],
};

/** Fused nodes (one per fused site, in any output format) in the main graph and every subgraph. */
export function fusedNodes(model: Model): { graph: Graph; opType: string; name: string }[] {
  const out: { graph: Graph; opType: string; name: string }[] = [];
  for (const g of model.graph.allGraphs()) {
    for (const n of g.nodes) if (FUSED_OPS[n.domain]?.includes(n.opType)) out.push({ graph: g, opType: n.opType, name: n.name });
  }
  return out;
}

/** True for errors rmsfuse is allowed to throw at a user (exit 1/2), false for bugs. */
export const isUserError = (e: unknown): e is RmsfuseError => e instanceof RmsfuseError;

/**
 * Elements over the per-element tolerance that were not enough to fail their own case: SPEC's
 * float rule is a rate ("fewer than 0.1% of elements over 1e-3"), and on the tiny tensors of a
 * property case one fp16 rounding flip (an intermediate landing on the other side of a rounding
 * boundary, e.g. in high_performance's fp16(x*rstd)) is already more than 0.1%. So a case fails
 * at once only for a gross error; near misses are counted over the whole run, and the run must
 * keep them under 0.1% of all float elements compared.
 */
export class NearMisses {
  bad = 0;
  elements = 0;
  examples: string[] = [];
  add(bad: number, n: number, example?: string): void {
    this.bad += bad;
    this.elements += n;
    if (example && this.examples.length < 5) this.examples.push(example);
  }
  get rate(): number {
    return this.elements === 0 ? 0 : this.bad / this.elements;
  }
  summary(): string {
    return `${this.bad} of ${this.elements} float elements over 1e-3 relative error (${(this.rate * 100).toFixed(4)}%)` +
      (this.examples.length ? `; e.g. ${this.examples.join('; ')}` : '');
  }
}

/** A float element this far over tolerance fails its case at once (4x the SPEC tolerance: a few fp16 ulps). */
export const GROSS_FACTOR = 4;

/**
 * Compares outputs under SPEC tolerances (section 2): int8 |diff| <= 1; dynamic scale 2^-8
 * relative, everywhere; fp32/fp16: relative error over 1e-3 counts as bad; a DequantizeLinear
 * output in steps of its scale (|diff| <= 1 step, i.e. the int8 rule before dequantization).
 * `absFloor` raises the denominator of the relative error (see compareWithTolerance);
 * `grossFactor` times the tolerance fails a case at once (default GROSS_FACTOR).
 * Returns a message when the case fails; float near misses go to `near` (see NearMisses).
 */
export function compareHost(
  actual: HostTensor,
  expected: HostTensor,
  kind: Kind,
  label: string,
  near?: NearMisses,
  absFloor?: number,
  grossFactor = GROSS_FACTOR,
): string | undefined {
  if (actual.dtype !== expected.dtype || actual.dims.join(',') !== expected.dims.join(',')) {
    return `${label}: ${actual.dtype}[${actual.dims}] vs expected ${expected.dtype}[${expected.dims}]`;
  }
  const num = (t: HostTensor): ArrayLike<number> => (t.data instanceof BigInt64Array ? Array.from(t.data, Number) : t.data);
  let a = num(actual);
  let e = num(expected);
  let k: 'int8' | 'scale' | 'float32' | 'float16' = typeof kind === 'object' ? 'int8' : kind;
  if (typeof kind === 'object') {
    // Back to steps of the scale (q - zero point): dq = T((q - zp) * scale) is within a fraction
    // of a step of an integer (fp16 holds 11 bits), so rounding recovers q - zp exactly.
    a = Array.from(a, (v) => Math.round(v / kind.dq));
    e = Array.from(e, (v) => Math.round(v / kind.dq));
    k = 'int8';
  }
  // A raised floor never goes below the dtype's own (fp16: its smallest normal, 2^-14).
  const floor = absFloor !== undefined && (k === 'float32' || k === 'float16') ? Math.max(absFloor, REL_FLOOR[k]) : undefined;
  const r = compareWithTolerance(a, e, k, { label, ...(floor !== undefined && { absFloor: floor }) });
  const float = k === 'float32' || k === 'float16';
  if (float) {
    const gross = !Number.isFinite(r.worst.error) || r.worst.error > grossFactor * REL_TOL[k as 'float32' | 'float16'];
    if (gross || !near) return r.ok && !gross ? undefined : r.message;
    near.add(r.badCount, e.length, r.badCount ? r.message : undefined);
    return undefined;
  }
  return r.ok ? undefined : r.message;
}

/**
 * Runs a model in onnxruntime like test/helpers/ort.ts's runModel (its own optimizations off),
 * with its log limited to fatal errors: the fuzzers feed it models it refuses at run time.
 */
export async function runModelQuiet(model: ModelProto | Uint8Array, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const session = await ort.InferenceSession.create(modelBytes(model), { graphOptimizationLevel: 'disabled', logSeverityLevel: 4 });
  try {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      f[k] = v.dtype === 'float16' ? new ort.Tensor('float16', toF16Bits(v.data as Float32Array), v.dims) : new ort.Tensor(v.dtype as 'float32', v.data as Float32Array, v.dims);
    }
    const res = await session.run(f, { logSeverityLevel: 4 });
    const out: Record<string, HostTensor> = {};
    for (const [k, t] of Object.entries(res)) {
      const data = t.type === 'float16' ? fromF16Bits(t.data as Uint16Array) : (t.data as HostTensor['data']);
      out[k] = { dtype: t.type as HostTensor['dtype'], dims: [...t.dims], data };
    }
    return out;
  } finally {
    await session.release();
  }
}

export function renderForFailure(title: string, m: ModelProto | Uint8Array): string {
  try {
    const proto = m instanceof Uint8Array ? decodeModel(m) : m;
    return `--- ${title} ---\n${renderModel(proto)}`;
  } catch (e) {
    return `--- ${title} --- (cannot render: ${(e as Error).message})`;
  }
}
