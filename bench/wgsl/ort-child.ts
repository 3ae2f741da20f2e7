/**
 * Child process of bench.ts: times onnxruntime-node's WebGPU execution provider on
 * SimplifiedLayerNormalization (Norm) and com.microsoft.SkipSimplifiedLayerNormalization (PreNorm,
 * outputs y and the sum). It must not share a process with dawn.node (onnxruntime aborts).
 *
 * argv[2]: JSON { cases: OrtCase[], runs: number }. Prints one JSON line per case:
 * { key, ms } (median wall time of session.run with CPU inputs and outputs) or { key, na }.
 */
import * as ort from 'onnxruntime-node';
import { DT, graph, input, model, modelBytes, node, output, rawTensor } from '../../test/helpers/model-builder.js';

export interface OrtCase {
  key: string;
  kind: 'norm' | 'prenorm';
  H: number;
  rows: number;
  dtype: 'float32' | 'float16';
}

function buildModel(c: OrtCase): Uint8Array {
  const et = c.dtype === 'float32' ? DT.FLOAT : DT.FLOAT16;
  const gammaBytes = c.dtype === 'float32' ? new Uint8Array(new Float32Array(c.H).fill(1).buffer) : new Uint8Array(new Uint16Array(c.H).fill(0x3c00).buffer);
  const gamma = rawTensor('gamma', et, [c.H], gammaBytes);
  const dims = ['N', c.H];
  if (c.kind === 'norm') {
    return modelBytes(
      model({
        opset: 17,
        graph: graph({
          nodes: [node('SimplifiedLayerNormalization', ['x', 'gamma'], ['y'], { attrs: { axis: { i: -1 }, epsilon: { f: 1e-5 } } })],
          inputs: [input('x', et, dims)],
          outputs: [output('y', et, dims)],
          initializers: [gamma],
        }),
      }),
    );
  }
  return modelBytes(
    model({
      opset: 17,
      opsets: { 'com.microsoft': 1 },
      graph: graph({
        nodes: [node('SkipSimplifiedLayerNormalization', ['x', 'residual', 'gamma'], ['y', '', '', 'sum'], { domain: 'com.microsoft', attrs: { epsilon: { f: 1e-5 } } })],
        inputs: [input('x', et, dims), input('residual', et, dims)],
        outputs: [output('y', et, dims), output('sum', et, dims)],
        initializers: [gamma],
      }),
    }),
  );
}

function tensor(c: OrtCase, seed: number): ort.Tensor {
  const n = c.rows * c.H;
  if (c.dtype === 'float32') {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + seed);
    return new ort.Tensor('float32', a, [c.rows, c.H]);
  }
  // fp16 bits of values in [-1, 1) that are exact in fp16: sign, exponent 14 or 13, mantissa bits.
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i & 1) << 15) | ((13 + ((i >> 1) & 1)) << 10) | ((i * 37 + seed) & 0x3ff);
  return new ort.Tensor('float16', a, [c.rows, c.H]);
}

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

async function time(c: OrtCase, runs: number): Promise<number> {
  const session = await ort.InferenceSession.create(buildModel(c), { executionProviders: ['webgpu'] });
  const feeds: Record<string, ort.Tensor> = { x: tensor(c, 1) };
  if (c.kind === 'prenorm') feeds.residual = tensor(c, 2);
  await session.run(feeds); // warm-up: shader compilation, buffer creation
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    ms.push(performance.now() - t0);
  }
  await session.release();
  return median(ms);
}

const { cases, runs } = JSON.parse(process.argv[2] ?? '{}') as { cases: OrtCase[]; runs: number };
for (const c of cases) {
  try {
    console.log(JSON.stringify({ key: c.key, ms: await time(c, runs) }));
  } catch (e) {
    console.log(JSON.stringify({ key: c.key, na: (e as Error).message.split('\n')[0] }));
  }
}
