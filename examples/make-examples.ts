/**
 * Generates the example models shipped in examples/ (run: `npx tsx examples/make-examples.ts`).
 *
 *   mini-llama-fp32.onnx  2-layer Llama decoder, RMSNorm spelled as Hugging Face exports it
 *   mini-llama-fp16.onnx  the same in fp16: Casts to fp32 around the statistics, gamma multiply in fp16
 *   mini-gemma.onnx       Gemma: (1 + gamma), embeddings scaled by sqrt(H), erf GELU,
 *                         rsqrt spelled Mul(x, x) / Sqrt / Reciprocal
 *   mini-w8a8.onnx        W8A8: layer 0 static QuantizeLinear/DequantizeLinear after the norms,
 *                         layer 1 dynamic per-token int8 (ReduceMax(Abs)/127, Div, Round, Clip, Cast)
 *
 * and examples/expected.json: the fused nodes rmsfuse should produce for each (by op type and
 * variant), derived from how the graphs are built here. Weights come from a seeded generator,
 * so the files are reproducible byte for byte; hidden 64 keeps them small. Every model is run once
 * in onnxruntime-node as a self-check before it is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeModel } from '../compiler/onnx/model.js';
import { GraphBuilder, randomValues, type ElemType } from '../test/helpers/graph.js';
import { randomFeeds, runModel } from '../test/helpers/ort.js';

/** Sizes of a generated decoder. The examples use the full sizes; bench/fusion uses low-rank projections. */
export interface Dims {
  hidden: number;
  ffn: number;
  /** Width of q/k/v (one head); equal to hidden in the examples. */
  head: number;
  layers: number;
}
const EXAMPLE_DIMS: Dims = { hidden: 64, ffn: 128, head: 64, layers: 2 };
const LAYERS = EXAMPLE_DIMS.layers;
const EPS = 1e-6;
const HERE = path.dirname(fileURLToPath(import.meta.url));

type Act = 'float32' | 'float16';
const TO = { float32: 1, float16: 10, int8: 3 } as const;

interface Expected {
  layers: number;
  dtype: Act;
  /** Fused node counts by key: op type, plus `+int8` (static) or `+dyn` (dynamic quant). */
  fused: Record<string, number>;
  model_type: 'llama' | 'gemma';
  precision_mode: 'high_precision' | 'high_performance';
}

/** A model under construction: builder, activation dtype, a seed counter for weights. */
class Net {
  readonly g: GraphBuilder;
  private seed = 1;
  constructor(readonly dtype: Act, name: string, readonly dims: Dims) {
    this.g = new GraphBuilder({ opset: 17, name, irVersion: 8 });
  }
  weight(name: string, dims: number[], lo: number, hi: number, dtype: ElemType = this.dtype): string {
    const n = dims.reduce((a, b) => a * b, 1);
    return this.g.init(name, dtype, dims, randomValues(n, this.seed++, lo, hi));
  }
  /** x @ W with W [in, out] scaled like a trained projection (keeps activations O(1)). */
  linear(scope: string, x: string, nIn: number, nOut: number): string {
    const w = this.weight(`${scope.replaceAll('/', '.')}.weight`, [nIn, nOut], -Math.sqrt(3 / nIn), Math.sqrt(3 / nIn));
    return this.g.scope(`/${scope}`).op('MatMul', [x, w]);
  }
  scalar(v: number, dtype: ElemType = 'float32'): string {
    return this.g.constant(v, dtype);
  }
}

/** Builds one RMSNorm site reading x; `out` names its result (the graph output for the last norm). */
type Norm = (net: Net, scope: string, x: string, weightName: string, out?: string) => string;

/** Hugging Face LlamaRMSNorm as torch.onnx.export writes it (fp32 and fp16 alike). */
const llamaNorm: Norm = (net, scope, x, weightName, out) => {
  const g = net.g.scope(scope);
  const w = net.weight(weightName, [net.dims.hidden], 0.8, 1.2);
  const x32 = g.op('Cast', [x], { to: TO.float32 });
  const sq = g.op('Pow', [x32, net.scalar(2)]);
  const ms = g.op('ReduceMean', [sq], { axes: [-1], keepdims: 1 });
  const inv = g.op('Div', [net.scalar(1), g.op('Sqrt', [g.op('Add', [ms, net.scalar(EPS)])])]);
  const n = g.op('Cast', [g.op('Mul', [x32, inv])], { to: TO[net.dtype] });
  return g.op('Mul', [w, n], {}, out ? { outputs: [out] } : {});
};

/** Gemma: statistics and (1 + gamma) in fp32, spelled with Mul(x, x) and Reciprocal. */
const gemmaNorm: Norm = (net, scope, x, weightName, out) => {
  const g = net.g.scope(scope);
  const w = net.weight(weightName, [net.dims.hidden], -0.2, 0.2, 'float32');
  const ms = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, net.scalar(EPS)])])]);
  return g.op('Mul', [g.op('Mul', [x, rstd]), g.op('Add', [net.scalar(1), w])], {}, out ? { outputs: [out] } : {});
};

interface Quant {
  /** Quantization right after a norm; returns the dequantized activation the MatMuls read. */
  after(net: Net, scope: string, y: string): string;
}

/** Static per-tensor int8 QDQ (the DequantizeLinear stays in the graph). */
const staticQdq: Quant = {
  after(net, scope, y) {
    const g = net.g.scope(scope);
    const scale = net.g.init(`${scope}.act_scale`, 'float32', [], [0.03]);
    const zp = net.g.init(`${scope}.act_zero_point`, 'int8', [], [0]);
    const q = g.op('QuantizeLinear', [y, scale, zp]);
    return g.op('DequantizeLinear', [q, scale, zp]);
  },
};

/** Dynamic symmetric per-token int8 as SmoothQuant/vLLM-style exports spell it. */
const dynamicPerToken: Quant = {
  after(net, scope, y) {
    const g = net.g.scope(scope);
    const absmax = g.op('ReduceMax', [g.op('Abs', [y])], { axes: [-1], keepdims: 1 });
    const scale = g.op('Div', [absmax, net.scalar(127)]);
    const r = g.op('Round', [g.op('Div', [y, scale])]);
    const q = g.op('Cast', [g.op('Clip', [r, net.scalar(-128), net.scalar(127)])], { to: TO.int8 });
    // Dequantize for the fp32 MatMuls that follow (a real W8A8 graph would use MatMulInteger).
    return g.op('Mul', [g.op('Cast', [q], { to: TO.float32 }), scale]);
  },
};

export interface Spec {
  name: string;
  dtype: Act;
  norm: Norm;
  act: 'silu' | 'gelu';
  embedScale?: boolean;
  /** Quantization after the norms of each layer (undefined: none). */
  quant?: (layer: number) => Quant | undefined;
  expected: Expected;
}

function attention(net: Net, scope: string, x: string): string {
  const { hidden: H, head } = net.dims;
  const q = net.linear(`${scope}/q_proj`, x, H, head);
  const k = net.linear(`${scope}/k_proj`, x, H, head);
  const v = net.linear(`${scope}/v_proj`, x, H, head);
  const g = net.g.scope(`/${scope}`); // after the projections, which set their own scopes
  // Scores and softmax in fp32 (as HF does for fp16 too), mixing back in the activation dtype.
  const f32 = (t: string) => (net.dtype === 'float32' ? t : g.op('Cast', [t], { to: TO.float32 }));
  const scores = g.op('Div', [g.op('MatMul', [f32(q), g.op('Transpose', [f32(k)], { perm: [0, 2, 1] })]), net.scalar(Math.sqrt(head))]);
  let probs = g.op('Softmax', [scores], { axis: -1 });
  if (net.dtype !== 'float32') probs = g.op('Cast', [probs], { to: TO[net.dtype] });
  const mixed = g.op('MatMul', [probs, v]);
  return net.linear(`${scope}/o_proj`, mixed, head, H);
}

function mlp(net: Net, scope: string, x: string, act: Spec['act']): string {
  const { hidden: H, ffn: FFN } = net.dims;
  const gate = net.linear(`${scope}/gate_proj`, x, H, FFN);
  const up = net.linear(`${scope}/up_proj`, x, H, FFN);
  const g = net.g.scope(`/${scope}`); // after the projections, which set their own scopes
  const a =
    act === 'silu'
      ? g.op('Mul', [gate, g.op('Sigmoid', [gate])])
      : g.op('Mul', [g.op('Mul', [gate, net.scalar(0.5)]), g.op('Add', [net.scalar(1), g.op('Erf', [g.op('Div', [gate, net.scalar(Math.SQRT2)])])])]);
  const gated = g.op('Mul', [a, up]);
  return net.linear(`${scope}/down_proj`, gated, FFN, H);
}

/** The decoder of `spec` at the given sizes, as ONNX bytes. */
export function build(spec: Spec, dims: Dims = EXAMPLE_DIMS): Uint8Array {
  const net = new Net(spec.dtype, spec.name, dims);
  const g = net.g;
  const H = dims.hidden;
  let h = g.input('inputs_embeds', spec.dtype, ['batch', 'seq', H]);
  if (spec.embedScale) h = g.scope('/embed_scale').op('Mul', [h, net.scalar(Math.sqrt(H), spec.dtype)]);
  for (let l = 0; l < dims.layers; l++) {
    const quant = spec.quant?.(l);
    const s = `/layers.${l}`;
    let n = spec.norm(net, `${s}/input_layernorm`, h, `layers.${l}.input_layernorm.weight`);
    if (quant) n = quant.after(net, `${s}/input_layernorm/quant`, n);
    // The builder's scope is state: build the branch first, then name the residual Add.
    const attn = attention(net, `layers.${l}/self_attn`, n);
    h = g.scope(s).op('Add', [h, attn]);
    n = spec.norm(net, `${s}/post_attention_layernorm`, h, `layers.${l}.post_attention_layernorm.weight`);
    if (quant) n = quant.after(net, `${s}/post_attention_layernorm/quant`, n);
    const ff = mlp(net, `layers.${l}/mlp`, n, spec.act);
    h = g.scope(s).op('Add', [h, ff]);
  }
  spec.norm(net, '/norm', h, 'norm.weight', 'last_hidden_state');
  g.output('last_hidden_state', spec.dtype, ['batch', 'seq', H]);
  return g.bytes();
}

/** Norm for layer 0's input, PreNorm for every later norm (the sum is reused), PostNorm last. */
const plainCounts = { RmsNorm: 1, PreNorm: 2 * LAYERS - 1, PostNorm: 1 };

export const SPECS: Spec[] = [
  {
    name: 'mini-llama-fp32',
    dtype: 'float32',
    norm: llamaNorm,
    act: 'silu',
    expected: { layers: LAYERS, dtype: 'float32', fused: plainCounts, model_type: 'llama', precision_mode: 'high_precision' },
  },
  {
    name: 'mini-llama-fp16',
    dtype: 'float16',
    norm: llamaNorm,
    act: 'silu',
    expected: { layers: LAYERS, dtype: 'float16', fused: plainCounts, model_type: 'llama', precision_mode: 'high_performance' },
  },
  {
    name: 'mini-gemma',
    dtype: 'float32',
    norm: gemmaNorm,
    act: 'gelu',
    embedScale: true,
    expected: { layers: LAYERS, dtype: 'float32', fused: plainCounts, model_type: 'gemma', precision_mode: 'high_precision' },
  },
  {
    name: 'mini-w8a8',
    dtype: 'float32',
    norm: llamaNorm,
    act: 'silu',
    quant: (l) => (l === 0 ? staticQdq : dynamicPerToken),
    // Layer 0: input norm (Norm) and post-attention norm (PreNorm) feed static QDQ; layer 1's
    // two PreNorms feed dynamic quantization; the final norm is a plain PostNorm.
    expected: {
      layers: LAYERS,
      dtype: 'float32',
      fused: { 'RmsNorm+int8': 1, 'PreNorm+int8': 1, 'PreNorm+dyn': 2, PostNorm: 1 },
      model_type: 'llama',
      precision_mode: 'high_precision',
    },
  },
];

async function main(): Promise<void> {
  const expected: Record<string, Expected> = {};
  for (const spec of SPECS) {
    const bytes = build(spec);
    // Self-check: the model must load and run in onnxruntime-node, with finite outputs.
    const model = decodeModel(bytes, spec.name);
    const out = await runModel(model, randomFeeds(model, { dims: { batch: 2, seq: 5 }, seed: 1, spread: 1, maxAbs: 100 }));
    const y = out.last_hidden_state!.data as Float32Array;
    if (!y.every(Number.isFinite)) throw new Error(`${spec.name}: onnxruntime produced non-finite outputs`);
    const file = path.join(HERE, `${spec.name}.onnx`);
    fs.writeFileSync(file, bytes);
    expected[spec.name] = spec.expected;
    console.log(`wrote ${path.relative(process.cwd(), file)} (${bytes.length} bytes; ${model.graph!.node.length} nodes; runs in onnxruntime)`);
  }
  fs.writeFileSync(path.join(HERE, 'expected.json'), JSON.stringify(expected, null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
