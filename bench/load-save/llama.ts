/**
 * A Llama-7B-shaped ONNX graph for the load/save benchmark: the op structure an exporter
 * writes (per layer: RMSNorm spelled out as Pow/ReduceMean/Add/Sqrt/Div/Mul/Mul, q/k/v/o
 * MatMuls, rotary embedding, softmax attention, SwiGLU MLP, residual Adds; ~60 nodes), with
 * every weight as external data in one sparse file (ftruncate: nothing large is written).
 * Activations, constants and weights share one dtype (fp16 or fp32), as an exporter writes them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeProto, TensorProto } from 'onnx-buf';
import { toF16Bits } from '../../runtime/numeric.js';
import { DT, externalTensor, floatTensor, graph, int64Tensor, model, modelBytes, node, rawTensor, valueInfo } from '../../test/helpers/model-builder.js';

export interface LlamaShape {
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  vocab: number;
  maxPositions: number;
  /** Weight dtype: FLOAT16 (default) or FLOAT (doubles the weight bytes, same graph). */
  weightDtype: number;
}

export const LLAMA_7B: LlamaShape = {
  layers: 32,
  hidden: 4096,
  intermediate: 11008,
  heads: 32,
  vocab: 32000,
  maxPositions: 4096,
  weightDtype: DT.FLOAT16,
};

export interface GeneratedModel {
  file: string;
  dataFile: string;
  modelBytes: number;
  weightBytes: number;
  nodes: number;
}

/** Writes `dir/model.onnx` and a sparse `dir/weights.bin`. */
export function writeLlama(dir: string, shape: LlamaShape): GeneratedModel {
  const { hidden: H, intermediate: I, heads, vocab, maxPositions } = shape;
  const headDim = H / heads;
  const act = shape.weightDtype;
  const elem = shape.weightDtype === DT.FLOAT ? 4 : 2;
  /** A scalar constant in the activation dtype. */
  const scalar = (name: string, v: number): TensorProto =>
    act === DT.FLOAT ? floatTensor(name, [], [v]) : rawTensor(name, DT.FLOAT16, [], new Uint8Array(toF16Bits([v]).buffer as ArrayBuffer));
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let offset = 0;
  const weight = (name: string, dims: number[]): string => {
    const bytes = dims.reduce((a, b) => a * b, 1) * elem;
    inits.push(externalTensor(name, shape.weightDtype, dims, 'weights.bin', offset, bytes));
    offset += Math.ceil(bytes / 64) * 64; // aligned, as exporters write them
    return name;
  };
  const names = new Set<string>();
  const add = (op: string, inputs: string[], scope: string, attrs?: NonNullable<Parameters<typeof node>[3]>['attrs'], outputs = 1): string[] => {
    const name = `${scope}/${op}`;
    let unique = name;
    for (let i = 1; names.has(unique); i++) unique = `${name}_${i}`;
    names.add(unique);
    const outs = Array.from({ length: outputs }, (_, i) => `${unique}_output_${i}`);
    nodes.push(node(op, inputs, outs, { name: unique, attrs }));
    return outs;
  };
  const one = (op: string, inputs: string[], scope: string, attrs?: NonNullable<Parameters<typeof node>[3]>['attrs']) => add(op, inputs, scope, attrs)[0]!;

  // Shared constants (small, inline).
  inits.push(scalar('const_two', 2), scalar('const_one', 1), scalar('const_eps', 1e-6));
  inits.push(scalar('const_sqrt_head_dim', Math.sqrt(headDim)));
  inits.push(int64Tensor('axis_heads', [1], [1n]));
  inits.push(int64Tensor('shape_heads', [4], [0n, 0n, BigInt(heads), BigInt(headDim)]));
  inits.push(int64Tensor('shape_hidden', [3], [0n, 0n, BigInt(H)]));
  inits.push(int64Tensor('axes_last', [1], [-1n]));
  inits.push(int64Tensor('half_start', [1], [0n]), int64Tensor('half_mid', [1], [BigInt(headDim / 2)]), int64Tensor('half_end', [1], [BigInt(headDim)]));
  const cos = weight('rotary_cos', [maxPositions, headDim]);
  const sin = weight('rotary_sin', [maxPositions, headDim]);

  const rmsNorm = (x: string, scope: string): string => {
    const sq = one('Pow', [x, 'const_two'], scope);
    const mean = one('ReduceMean', [sq], scope, { axes: { ints: [-1] }, keepdims: { i: 1 } });
    const shifted = one('Add', [mean, 'const_eps'], scope);
    const root = one('Sqrt', [shifted], scope);
    const inv = one('Div', ['const_one', root], scope);
    const normed = one('Mul', [x, inv], scope);
    return one('Mul', [weight(`${scope}.weight`, [H]), normed], scope);
  };
  const rotary = (t: string, scope: string): string => {
    const first = one('Slice', [t, 'half_start', 'half_mid', 'axes_last'], scope);
    const second = one('Slice', [t, 'half_mid', 'half_end', 'axes_last'], scope);
    const neg = one('Neg', [second], scope);
    const rotated = one('Concat', [neg, first], scope, { axis: { i: -1 } });
    const a = one('Mul', [t, 'cos_sliced'], scope);
    const b = one('Mul', [rotated, 'sin_sliced'], scope);
    return one('Add', [a, b], scope);
  };

  let hiddenState = one('Gather', [weight('model.embed_tokens.weight', [vocab, H]), 'input_ids'], '/model/embed_tokens');
  // cos/sin [batch, 1, sequence, head_dim]: broadcast over the heads.
  nodes.push(node('Gather', [cos, 'position_ids'], ['cos_gathered'], { name: '/model/rotary/cos' }));
  nodes.push(node('Gather', [sin, 'position_ids'], ['sin_gathered'], { name: '/model/rotary/sin' }));
  nodes.push(node('Unsqueeze', ['cos_gathered', 'axis_heads'], ['cos_sliced'], { name: '/model/rotary/cos_unsqueeze' }));
  nodes.push(node('Unsqueeze', ['sin_gathered', 'axis_heads'], ['sin_sliced'], { name: '/model/rotary/sin_unsqueeze' }));

  for (let l = 0; l < shape.layers; l++) {
    const s = `/model/layers.${l}`;
    const normed = rmsNorm(hiddenState, `${s}/input_layernorm`);
    const a = `${s}/self_attn`;
    const proj = (p: string, rows: number, cols: number, x: string) => one('MatMul', [x, weight(`model.layers.${l}.self_attn.${p}.weight`, [rows, cols])], `${a}/${p}`);
    const heads4 = (t: string, p: string) => one('Transpose', [one('Reshape', [t, 'shape_heads'], `${a}/${p}`)], `${a}/${p}`, { perm: { ints: [0, 2, 1, 3] } });
    const q = rotary(heads4(proj('q_proj', H, H, normed), 'q'), `${a}/rotary_q`);
    const k = rotary(heads4(proj('k_proj', H, H, normed), 'k'), `${a}/rotary_k`);
    const v = heads4(proj('v_proj', H, H, normed), 'v');
    const kt = one('Transpose', [k], a, { perm: { ints: [0, 1, 3, 2] } });
    const scores = one('Div', [one('MatMul', [q, kt], a), 'const_sqrt_head_dim'], a);
    const probs = one('Softmax', [one('Add', [scores, 'attention_mask'], a)], a, { axis: { i: -1 } });
    const ctx = one('Transpose', [one('MatMul', [probs, v], a)], a, { perm: { ints: [0, 2, 1, 3] } });
    const attnOut = proj('o_proj', H, H, one('Reshape', [ctx, 'shape_hidden'], a));
    const afterAttn = one('Add', [hiddenState, attnOut], s);

    const normed2 = rmsNorm(afterAttn, `${s}/post_attention_layernorm`);
    const m = `${s}/mlp`;
    const gate = one('MatMul', [normed2, weight(`model.layers.${l}.mlp.gate_proj.weight`, [H, I])], `${m}/gate_proj`);
    const silu = one('Mul', [gate, one('Sigmoid', [gate], m)], m);
    const up = one('MatMul', [normed2, weight(`model.layers.${l}.mlp.up_proj.weight`, [H, I])], `${m}/up_proj`);
    const down = one('MatMul', [one('Mul', [silu, up], m), weight(`model.layers.${l}.mlp.down_proj.weight`, [I, H])], `${m}/down_proj`);
    hiddenState = one('Add', [afterAttn, down], s);
  }
  const final = rmsNorm(hiddenState, '/model/norm');
  nodes.push(node('MatMul', [final, weight('lm_head.weight', [H, vocab])], ['logits'], { name: '/lm_head/MatMul' }));

  const m = model({
    opset: 17,
    graph: graph({
      name: 'llama',
      nodes,
      inputs: [
        valueInfo('input_ids', DT.INT64, ['batch', 'sequence']),
        valueInfo('position_ids', DT.INT64, ['batch', 'sequence']),
        valueInfo('attention_mask', act, ['batch', 1, 'sequence', 'sequence']),
      ],
      outputs: [valueInfo('logits', act, ['batch', 'sequence', vocab])],
      initializers: inits,
    }),
  });
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'model.onnx');
  const bytes = modelBytes(m);
  fs.writeFileSync(file, bytes);
  const dataFile = path.join(dir, 'weights.bin');
  fs.rmSync(dataFile, { force: true });
  const fd = fs.openSync(dataFile, 'w');
  fs.ftruncateSync(fd, offset);
  fs.closeSync(fd);
  return { file, dataFile, modelBytes: bytes.length, weightBytes: offset, nodes: nodes.length };
}
