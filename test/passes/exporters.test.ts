/**
 * Real exporter output (examples/exporters: torch.onnx.export of HF-style Llama, Gemma, T5 and an
 * fp16 Llama) and the shipped examples (examples/*.onnx from examples/make-examples.ts): each
 * loads and runs in onnxruntime-node; optimize fuses exactly the sites its structure has
 * (expected.json, written by the generators: N layers give 1 Norm, 2N - 1 PreNorm where the
 * residual sum is reused, 1 PostNorm), with the variant attributes the spelling implies; and the
 * optimized model (all three formats where the model allows) gives the original's outputs.
 *
 * Tolerance. fp32 models: SPEC section 2 on the model's output against the original's (fewer
 * than 0.1% of elements over 1e-3 relative error): the fused sites compute what the original
 * graphs compute, so the differences are fp32 rounding-order noise (an int8 site may move a
 * quantized value by one step). fp16 models: against the same graph widened to fp32, largest
 * error <= 2^-8 and RMS error <= 2^-10 of the output's scale (see expectSameOutputs for why the
 * fp16 original is no reference on onnxruntime's CPU provider).
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { type ModelProto, type NodeProto, type TensorProto, TensorProtoSchema } from 'onnx-buf';
import { loadModel, optimizeModel } from '../../compiler/api.js';
import type { Model } from '../../compiler/ir/graph.js';
import { decodeModel, encodeModel } from '../../compiler/onnx/model.js';
import { tensorValues } from '../../compiler/onnx/tensor.js';
import { RMSFUSE_DOMAIN } from '../../compiler/op/param.js';
import type { OutputFormat } from '../../passes/index.js';
import { compareOutputs, randomFeeds, runModel, type HostTensor } from '../helpers/ort.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Expected {
  layers: number;
  dtype: 'float32' | 'float16';
  fused: Record<string, number>;
  model_type: 'llama' | 'gemma';
  precision_mode: 'high_precision' | 'high_performance';
}

function readExpected(dir: string): Record<string, Expected> {
  return JSON.parse(fs.readFileSync(path.join(ROOT, dir, 'expected.json'), 'utf8')) as Record<string, Expected>;
}

/** Fused nodes in every graph, keyed like expected.json: op type, `+int8` static, `+dyn` dynamic. */
function fusedCounts(m: ModelProto): { counts: Record<string, number>; attrs: Record<string, string>[] } {
  const counts: Record<string, number> = {};
  const attrs: Record<string, string>[] = [];
  const walk = (nodes: NodeProto[]): void => {
    for (const n of nodes) {
      for (const a of n.attribute) for (const g of [...(a.g ? [a.g] : []), ...a.graphs]) walk(g.node);
      if (n.domain !== RMSFUSE_DOMAIN) continue;
      const s = (name: string) => new TextDecoder().decode(n.attribute.find((a) => a.name === name)?.s ?? new Uint8Array());
      const key = n.opType + (s('quant_type') === 'int8' ? (s('dynamic_quant') === 'symmetric' ? '+dyn' : '+int8') : '');
      counts[key] = (counts[key] ?? 0) + 1;
      attrs.push({ model_type: s('model_type'), precision_mode: s('precision_mode') });
    }
  };
  walk(m.graph!.node);
  return { counts, attrs };
}

function opCounts(m: ModelProto): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of m.graph!.node) {
    const k = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    c[k] = (c[k] ?? 0) + 1;
  }
  return c;
}

function optimized(file: string, format: OutputFormat): { model: Model; fusedReport: number } {
  const model = loadModel(file);
  const report = optimizeModel(model, { format });
  return { model, fusedReport: report.fused.length };
}

/** The model with every fp16 tensor, Cast and type made fp32: a high-precision stand-in for its math. */
function widenToFp32(m: ModelProto): ModelProto {
  const c = decodeModel(encodeModel(m));
  const to32 = (t: TensorProto): TensorProto =>
    t.dataType !== FP16 ? t : create(TensorProtoSchema, { name: t.name, dims: t.dims, dataType: FP32, rawData: new Uint8Array(Float32Array.from(tensorValues(t)!).buffer) });
  const g = c.graph!;
  g.initializer = g.initializer.map(to32);
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (n.opType === 'Cast' && a.name === 'to' && Number(a.i) === FP16) a.i = BigInt(FP32);
      if (a.t) a.t = to32(a.t);
    }
  }
  for (const v of [...g.input, ...g.output, ...g.valueInfo]) {
    if (v.type?.value.case === 'tensorType' && v.type.value.value.elemType === FP16) v.type.value.value.elemType = FP32;
  }
  return c;
}
const FP32 = 1, FP16 = 10;

/** Largest and RMS error against `truth`, relative to truth's largest magnitude. */
function errorVs(a: HostTensor, truth: HostTensor): { max: number; rms: number } {
  const x = a.data as Float32Array, t = truth.data as Float32Array;
  let max = 0, sq = 0, scale = 0;
  for (let i = 0; i < t.length; i++) {
    const d = Math.abs(x[i]! - t[i]!);
    max = Math.max(max, d);
    sq += d * d;
    scale = Math.max(scale, Math.abs(t[i]!));
  }
  return { max: max / scale, rms: Math.sqrt(sq / t.length) / scale };
}

async function expectSameOutputs(original: string, after: ModelProto): Promise<void> {
  const before = loadModel(original).proto;
  // Moderate magnitudes: the activations of a real model after the embedding lookup.
  const feeds = randomFeeds(before, { dims: { batch: 2, seq: 5 }, seed: 3, spread: 1, maxAbs: 50 });
  const want = await runModel(before, feeds);
  const got = await runModel(encodeModel(after), feeds);
  if (Object.values(want).every((t) => t.dtype !== 'float16')) {
    const cmp = compareOutputs(got, want);
    expect(cmp.ok, cmp.messages.join('\n')).to.equal(true);
    return;
  }
  // fp16: onnxruntime's CPU provider runs fp16 ops it has no kernel for in fp32 and drops the
  // roundings between them, so the original graph runs mostly in fp32 there, while the fused
  // nodes' functions round to fp16 where the graph says so. Element-wise comparison of the two
  // measures onnxruntime, not rmsfuse. Instead both are compared with the same math in fp32:
  // the fused model must be as close to it as a faithful fp16 run (a few fp16 steps).
  const feeds32: Record<string, HostTensor> = {};
  for (const [k, v] of Object.entries(feeds)) feeds32[k] = v.dtype === 'float16' ? { ...v, dtype: 'float32' } : v;
  const truth = await runModel(widenToFp32(before), feeds32);
  for (const [name, t] of Object.entries(truth)) {
    const e = errorVs(got[name]!, t);
    expect(e.max, `${name}: largest error vs fp32, relative to the output's scale`).to.be.at.most(2 ** -8);
    expect(e.rms, `${name}: RMS error vs fp32, relative to the output's scale`).to.be.at.most(2 ** -10);
  }
}

/** What --format ort should leave of the fused nodes, from the variant (see passes/lower-format.ts). */
function expectedOrt(e: Expected): Record<string, number> {
  const total = Object.values(e.fused).reduce((a, b) => a + b, 0);
  const quantized = Object.entries(e.fused).filter(([k]) => k.includes('+')).reduce((a, [, v]) => a + v, 0);
  // fp16 high_performance and int8 sites stay rmsfuse nodes; gemma lowers with a 1 + gamma scale.
  if (e.dtype === 'float16' && e.precision_mode === 'high_performance') return { rmsfuse: total };
  const out: Record<string, number> = {};
  if (quantized) out.rmsfuse = quantized;
  const norm = e.fused.RmsNorm ?? 0;
  const residual = (e.fused.PreNorm ?? 0) + (e.fused.PostNorm ?? 0);
  if (norm) out.SimplifiedLayerNormalization = norm;
  if (residual) {
    if (e.dtype === 'float32') out['com.microsoft.SkipSimplifiedLayerNormalization'] = residual;
    else out.SimplifiedLayerNormalization = (out.SimplifiedLayerNormalization ?? 0) + residual;
  }
  return out;
}

function loweredCounts(m: ModelProto): Record<string, number> {
  const c = opCounts(m);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c)) {
    if (k.startsWith(`${RMSFUSE_DOMAIN}.`)) out.rmsfuse = (out.rmsfuse ?? 0) + v;
    else if (/SimplifiedLayerNormalization|RMSNormalization/.test(k)) out[k] = v;
  }
  return out;
}

for (const [dir, label] of [
  ['examples/exporters', 'torch.onnx.export (torch 1.13, opset 17)'],
  ['examples', 'shipped examples (make-examples.ts)'],
] as const) {
  describe(`fusion of ${label}`, () => {
    for (const [name, e] of Object.entries(readExpected(dir))) {
      const file = path.join(ROOT, dir, `${name}.onnx`);
      describe(name, () => {
        it('loads and runs in onnxruntime-node', async () => {
          const m = loadModel(file).proto;
          const out = await runModel(m, randomFeeds(m, { dims: { batch: 1, seq: 3 }, seed: 1, spread: 1, maxAbs: 50 }));
          expect(Object.keys(out)).to.deep.equal(m.graph!.output.map((o) => o.name));
        });

        it(`fuses ${Object.entries(e.fused).map(([k, v]) => `${v} ${k}`).join(', ')} and keeps the outputs`, async () => {
          const { model, fusedReport } = optimized(file, 'rmsfuse');
          const { counts, attrs } = fusedCounts(model.proto);
          expect(counts).to.deep.equal(e.fused);
          expect(fusedReport).to.equal(Object.values(e.fused).reduce((a, b) => a + b, 0));
          for (const a of attrs) expect(a).to.deep.equal({ model_type: e.model_type, precision_mode: e.precision_mode });
          // What remains of the norms: no ReduceMean is left in the graph.
          expect(opCounts(model.proto).ReduceMean ?? 0, 'ReduceMean left over').to.equal(0);
          await expectSameOutputs(file, model.proto);
        });

        it('--format ort lowers what maps exactly and keeps the outputs', async () => {
          const { model } = optimized(file, 'ort');
          expect(loweredCounts(model.proto)).to.deep.equal(expectedOrt(e));
          await expectSameOutputs(file, model.proto);
        });

        it('--format onnx23 is refused (opset 17 model)', () => {
          expect(() => optimized(file, 'onnx23')).to.throw(/opset 23/);
        });

        it('optimizing twice changes nothing', () => {
          const once = optimized(file, 'rmsfuse').model;
          const bytes = encodeModel(once.proto);
          const twice = loadModel(bytes);
          optimizeModel(twice, { format: 'rmsfuse' });
          expect(Buffer.from(encodeModel(twice.proto)).equals(Buffer.from(bytes))).to.equal(true);
        });
      });
    }
  });
}
