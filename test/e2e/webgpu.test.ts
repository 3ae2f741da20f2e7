/**
 * End to end on WebGPU: optimize a shipped example with `--target webgpu --emit DIR`, import the
 * emitted `index.ts` in Node, run every fused node's launcher on SwiftShader, and compare its
 * outputs with onnxruntime-node running the optimized model (each fused node's function body)
 * on the same inputs.
 *
 * Tolerance: SPEC section 2 (ATB's golden tests): int8 |diff| <= 1; fp32/fp16 fewer than 0.1% of
 * elements over 1e-3 relative error; dynamic scale relative error <= 2^-8. Both sides implement
 * the same math in fp32 but sum in different orders, so bit-exactness is not expected.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { create, fromBinary } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { ModelProtoSchema, ValueInfoProtoSchema, type ModelProto, type TensorProto } from 'onnx-buf';
import { optimize, loadModel } from '../../compiler/api.js';
import { describeFusedNodes } from '../../compiler/emit.js';
import { dtypeCode } from '../../compiler/onnx/dtype.js';
import { tensorValues } from '../../compiler/onnx/tensor.js';
import type { FusedNodeDesc, TensorDesc } from '../../compiler/op/param.js';
import { compareWithTolerance, fromF16Bits, toF16Bits } from '../../runtime/numeric.js';
import { nodeGpu, swiftShaderUnavailable } from '../../runtime/webgpu/node.js';
import type { Launcher, TensorData } from '../../runtime/webgpu/runtime.js';
import { randomFeeds, runModel, type HostTensor } from '../helpers/ort.js';

const EXAMPLES = ['mini-llama-fp32.onnx', 'mini-llama-fp16.onnx', 'mini-gemma.onnx', 'mini-w8a8.onnx'];

function valueInfo(t: TensorDesc) {
  return create(ValueInfoProtoSchema, {
    name: t.name,
    type: {
      value: {
        case: 'tensorType',
        value: {
          elemType: dtypeCode(t.dtype),
          shape: { dim: t.shape.map((s) => ({ value: typeof s === 'number' ? { case: 'dimValue' as const, value: BigInt(s) } : { case: 'dimParam' as const, value: s } })) },
        },
      },
    },
  });
}

/** The optimized model with every fused node's activation inputs and outputs as graph outputs. */
function probeModel(bytes: Uint8Array, descs: FusedNodeDesc[]): ModelProto {
  const m = fromBinary(ModelProtoSchema, bytes);
  const g = m.graph!;
  const listed = new Set([...g.output.map((o) => o.name), ...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name)]);
  for (const d of descs) {
    for (const t of [...d.inputs, ...d.outputs]) {
      if (t.name === '' || t.initializer || listed.has(t.name)) continue;
      listed.add(t.name);
      g.output.push(valueInfo(t));
    }
  }
  return m;
}

/**
 * A model holding one fused node (with its function and initializers), its activations as graph
 * inputs. onnxruntime runs the node exactly on the values captured from the whole model; inside
 * the whole model it may keep a neighbouring fp16 op's output unrounded across the boundary
 * (its CPU provider computes fp16 MatMul in fp32 and drops Cast pairs), which is not the
 * fused node's semantics.
 */
function nodeModel(bytes: Uint8Array, d: FusedNodeDesc): ModelProto {
  const m = fromBinary(ModelProtoSchema, bytes);
  const g = m.graph!;
  const node = g.node.find((n) => n.name === d.node)!;
  const used = new Set(node.input);
  g.node = [node];
  g.initializer = g.initializer.filter((t) => used.has(t.name));
  g.input = d.inputs.filter((t) => t.name !== '' && !t.initializer).map(valueInfo);
  g.output = d.outputs.filter((t) => t.name !== '').map(valueInfo);
  g.valueInfo = [];
  return m;
}

/** Numbers -> the typed array a launcher takes for that dtype (fp16 as bits). */
function toLauncherData(dtype: string, values: ArrayLike<number>): TensorData {
  switch (dtype) {
    case 'float32': return Float32Array.from(values);
    case 'float16': return toF16Bits(values);
    case 'int8': return Int8Array.from(values);
    case 'uint8': return Uint8Array.from(values);
    default: throw new Error(`no launcher data for ${dtype}`);
  }
}

const fromLauncherData = (dtype: string, a: TensorData): ArrayLike<number> => (dtype === 'float16' ? fromF16Bits(a as Uint16Array) : (a as Float32Array));

describe('end to end: optimize --target webgpu --emit, run index.ts on SwiftShader, compare with onnxruntime', function () {
  this.timeout(180_000);
  const skip = swiftShaderUnavailable();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-e2e-webgpu-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const example of EXAMPLES) {
    it(example, async function () {
      if (skip) this.skip();
      const out = path.join(tmp, example);
      const emit = path.join(tmp, `${example}.kernels`);
      const report = await optimize(path.join('examples', example), out, { target: 'webgpu', emit });
      expect(report.fused.length, 'sites fused').to.be.greaterThan(0);

      const model = loadModel(out);
      model.inferTypes();
      const descs = describeFusedNodes(model);
      const manifest = JSON.parse(fs.readFileSync(path.join(emit, 'manifest.json'), 'utf8'));
      expect(Object.keys(manifest.nodes).sort()).to.deep.equal(descs.map((d) => d.node).sort());

      const optimized = fs.readFileSync(out);
      const probe = probeModel(optimized, descs);
      const feeds = randomFeeds(probe, { dims: { batch: 2, seq: 3, sequence: 3 }, seed: 7, spread: 1, maxAbs: 100 });
      const ortValues: Record<string, HostTensor> = { ...feeds, ...(await runModel(probe, feeds)) };
      const initializers = new Map<string, TensorProto>(model.proto.graph!.initializer.map((t) => [t.name, t]));

      const { launchers } = (await import(pathToFileURL(path.join(emit, 'index.ts')).href)) as { launchers: Record<string, Launcher> };
      const { device } = await nodeGpu('swiftshader');
      for (const d of descs) {
        const inputs: Record<string, TensorData> = {};
        for (const t of d.inputs) {
          if (t.name === '') continue;
          const init = initializers.get(t.name);
          const values = init ? tensorValues(init) : ortValues[t.name]?.data;
          if (!values) throw new Error(`${d.node}: no value for input '${t.name}'`);
          inputs[t.name] = toLauncherData(t.dtype, values as ArrayLike<number>);
        }
        const got = await launchers[d.node]!.run(device, inputs);
        const nodeFeeds = Object.fromEntries(d.inputs.filter((t) => t.name !== '' && !t.initializer).map((t) => [t.name, ortValues[t.name]!]));
        const ortNode = await runModel(nodeModel(optimized, d), nodeFeeds);
        for (const t of d.outputs) {
          const expected = ortNode[t.name];
          if (!expected) throw new Error(`${d.node}: onnxruntime produced no '${t.name}'`);
          const kind = t.role === 'scale' ? 'scale' : t.dtype === 'int8' ? 'int8' : (t.dtype as 'float32' | 'float16');
          const r = compareWithTolerance(fromLauncherData(t.dtype, got[t.name]!), expected.data as ArrayLike<number>, kind, { label: `${d.node} ${tensorLabel(t)}` });
          expect(r.ok, r.message).to.equal(true);
        }
      }
    });
  }
});

function tensorLabel(t: TensorDesc): string {
  return `${t.role} '${t.name}'`;
}
