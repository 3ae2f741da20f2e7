/**
 * Seed models for the fuzzers: the example models (examples/*.onnx) where they exist, plus
 * small generated ones that cover what the examples may not (every quantization form, fp16,
 * residuals, a site inside an If branch, a model-local function, typed-field tensors).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType, TensorProtoSchema } from 'onnx-buf';
import { fn, node } from '../helpers/model-builder.js';
import { decodeModel } from '../../compiler/onnx/model.js';
import { GraphBuilder } from '../helpers/graph.js';
import { modelBytes } from '../helpers/ort.js';
import { buildCase, normalizeSite, type CaseSpec, type SiteSpec } from '../property/rmsnorm-gen.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Seed {
  name: string;
  bytes: Uint8Array;
}

const SITE: SiteSpec = {
  act: 'float32', fp16: 'cast', square: 'pow', exp: 'constant', reduce: 'mean', axis: 'neg', keep: 'keep', eps: 1e-5,
  epsKind: 'constant', epsLeft: false, rsqrt: 'sqrt-div1', swap: false, noopCast: 'none', gamma: 'H', gammaAfterCast: false,
  gemma: 'none', residual: false, bias: 'none', sumUse: 'none', rstdUse: 'none', quant: 'none', beta: false, block: 'none',
  interior: 'square', interiorUse: 'output',
};

function generated(name: string, opset: number, sites: Partial<SiteSpec>[]): Seed {
  const c: CaseSpec = { opset, rank: 3, H: 8, rows: 2, seed: 7, sites: [] };
  c.sites = sites.map((s) => normalizeSite({ ...SITE, ...s }, c));
  return { name, bytes: modelBytes(buildCase(c).model) };
}

/** An If whose then-branch holds an RMSNorm site (subgraphs are fuzzed too). */
function ifModel(): Seed {
  const body = new GraphBuilder({ opset: 17, name: 'then' });
  const x2 = body.op('Pow', ['x', body.constant(2)]);
  const m = body.op('ReduceMean', [x2], { axes: [-1], keepdims: 1 });
  const r = body.op('Reciprocal', [body.op('Sqrt', [body.op('Add', [m, body.constant(1e-6)])])]);
  const y = body.op('Mul', [body.op('Mul', ['x', r]), 'w']);
  body.output(y, 'float32', [2, 8]);
  const other = new GraphBuilder({ opset: 17, name: 'else' });
  other.output(other.op('Identity', ['x']), 'float32', [2, 8]);
  const g = new GraphBuilder({ opset: 17, name: 'main' });
  g.input('x', 'float32', [2, 8]);
  g.input('cond', 'bool', []);
  g.initializers.push(create(TensorProtoSchema, { name: 'w', dataType: 1, dims: [8n], floatData: [1, 2, 3, 4, 5, 6, 7, 8] }));
  const out = g.op('If', ['cond'], { then_branch: body.graph(), else_branch: other.graph() });
  g.output(out, 'float32', [2, 8]);
  return { name: 'if-site', bytes: g.bytes() };
}

/** A model-local function and a Constant with an INTS attribute. */
function functionModel(): Seed {
  const g = new GraphBuilder({ opset: 18, name: 'main' });
  g.input('x', 'float32', ['batch', 4]);
  const c = g.op('Constant', [], {});
  g.nodes[g.nodes.length - 1]!.attribute.push(
    create(AttributeProtoSchema, { name: 'value_ints', type: AttributeProto_AttributeType.INTS, ints: [1n, 2n, 3n, 4n] }),
  );
  const y = g.op('Twice', [g.op('Add', ['x', g.op('Cast', [c], { to: 1 })])], {}, { domain: 'local' });
  g.output(y, 'float32', ['batch', 4]);
  const twice = fn({ domain: 'local', name: 'Twice', inputs: ['a'], outputs: ['b'], nodes: [node('Add', ['a', 'a'], ['b'])], opset: 18 });
  return { name: 'function', bytes: modelBytes(g.model({ opsets: { local: 1 }, functions: [twice] })) };
}

/** The example models (when present) and the generated seeds. */
export function seedModels(): Seed[] {
  const seeds: Seed[] = [];
  const dir = path.join(REPO, 'examples');
  if (fs.existsSync(dir)) {
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith('.onnx')) continue;
      const bytes = fs.readFileSync(path.join(dir, f));
      // Examples with external data need their folder; the fuzzers work on bytes alone.
      if (bytes.length > 4 << 20) continue;
      try {
        const m = decodeModel(bytes, f);
        if (m.graph!.initializer.some((t) => t.dataLocation === 1)) continue;
      } catch {
        continue;
      }
      seeds.push({ name: `examples/${f}`, bytes });
    }
  }
  seeds.push(
    generated('llama-fp32', 17, [{}, { residual: true, sumUse: 'output' }]),
    generated('fp16-hf', 18, [{ act: 'float16', gammaAfterCast: true, rsqrt: 'sqrt-recip' }]),
    generated('quant', 21, [{ quant: 'dynamic', beta: true }, { quant: 'qdq', residual: true, reduce: 'sum-div', keep: 'unsqueeze' }]),
    generated('gemma-rstd', 13, [{ gemma: 'g+1', rsqrt: 'pow', epsKind: 'init' }, { rstdUse: 'output', gamma: 'none' }]),
    ifModel(),
    functionModel(),
  );
  return seeds;
}
