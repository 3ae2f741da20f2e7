/** The programmatic API: optimize() runs load -> validate -> passes -> save -> report, errors are RmsfuseErrors. */
import { create } from '@bufbuild/protobuf';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OperatorSetIdProtoSchema } from 'onnx-buf';
import { loadModel, optimize, optimizeModel, RmsfuseError, selectPasses, type Pass } from '../../compiler/index.js';
import { newNode } from '../../compiler/ir/graph.js';
import { defaultParam, toAttributes } from '../../compiler/op/param.js';
import { DT, graph, model, modelBytes, node, tinyModel, valueInfo } from '../helpers/model-builder.js';
import { scratch } from './cli-runner.js';

/** A stand-in fusion: every Relu becomes test::Fused; every Neg gets a remark. */
const fakeFusion: Pass = {
  name: 'fake-fusion',
  run(g, ctx) {
    let hits = 0;
    for (const n of [...g.nodes]) {
      if (n.is('Relu')) {
        const name = `${n.name}_fused`;
        g.replace([n], [newNode({ name, opType: 'Fused', domain: 'test', input: n.inputs.slice(), output: n.outputs.slice() })]);
        ctx.report.fused.push({ node: name, op_type: 'Fused', attributes: toAttributes(defaultParam()), replaced: [n.name], graph: '' });
        hits++;
      } else if (n.is('Neg')) {
        ctx.report.remarks.push({ node: n.name, reason: 'a Neg is not a norm', graph: '' });
      }
    }
    return { relu: hits };
  },
  finish(ctx) {
    ctx.model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: 'test', version: 1n }));
  },
};

function reluModel(): Uint8Array<ArrayBuffer> {
  const body = graph({ name: 'then', nodes: [node('Relu', ['x'], ['t'], { name: 'inner_relu' })], outputs: [valueInfo('t', DT.FLOAT, [2])] });
  const els = graph({ name: 'else', nodes: [node('Neg', ['x'], ['e'], { name: 'inner_neg' })], outputs: [valueInfo('e', DT.FLOAT, [2])] });
  return modelBytes(
    model({
      graph: graph({
        nodes: [node('Relu', ['x'], ['r'], { name: 'outer_relu' }), node('If', ['c'], ['y'], { name: 'branch', attrs: { then_branch: { g: body }, else_branch: { g: els } } })],
        inputs: [valueInfo('x', DT.FLOAT, [2]), valueInfo('c', DT.BOOL, [])],
        outputs: [valueInfo('r', DT.FLOAT, [2]), valueInfo('y', DT.FLOAT, [2])],
      }),
    }),
  );
}

describe('foundation: API', () => {
  const tmp = scratch();
  after(() => tmp.cleanup());

  it('optimize runs the passes over graph and subgraphs, saves the edits, writes the reports', async () => {
    const dir = tmp.dir();
    const input = path.join(dir, 'in.onnx');
    fs.writeFileSync(input, reluModel());
    const out = path.join(dir, 'out.onnx');
    const report = await optimize(input, out, { passes: [fakeFusion], report: path.join(dir, 'r.json') });
    expect(report.fused.map((f) => f.node)).to.deep.equal(['outer_relu_fused', 'inner_relu_fused']);
    expect(report.remarks).to.deep.equal([{ node: 'inner_neg', reason: 'a Neg is not a norm', graph: '' }]);
    expect(report.passes).to.have.length(1);
    expect(report.passes[0]).to.include({ pass: 'fake-fusion' });
    expect(report.passes[0]!.counts).to.deep.equal({ relu: 2 });
    expect(report.timings.totalMs).to.be.greaterThan(0);

    const saved = loadModel(out);
    expect(saved.graph.nodes.map((n) => `${n.domain}:${n.opType}`)).to.deep.equal(['test:Fused', ':If']);
    expect(saved.graph.nodes[1]!.subgraphs[0]!.nodes[0]!.opType).to.equal('Fused');
    expect(saved.opset('test')).to.equal(1);
    // IN is untouched.
    expect(fs.readFileSync(input).equals(Buffer.from(reluModel()))).to.equal(true);

    const json = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8'));
    expect(json.fused[0]).to.deep.include({ node: 'outer_relu_fused', op_type: 'Fused', replaced: ['outer_relu'] });
    expect(json.fused[0].attributes).to.have.keys('epsilon', 'quant_type', 'dynamic_quant', 'precision_mode', 'model_type', 'rstd', 'has_bias');
    expect(json.remarks[0]).to.deep.include({ node: 'inner_neg', reason: 'a Neg is not a norm' });
  });

  it('the Markdown report has a table of fused sites and the remarks with reasons', async () => {
    const dir = tmp.dir();
    const input = path.join(dir, 'in.onnx');
    fs.writeFileSync(input, reluModel());
    await optimize(input, path.join(dir, 'out.onnx'), { passes: [fakeFusion], report: path.join(dir, 'r.md') });
    const md = fs.readFileSync(path.join(dir, 'r.md'), 'utf8');
    expect(md).to.include('## Fused sites (2)');
    expect(md).to.match(/\| outer_relu_fused \| Fused \| main \| 0\.00001 \| none \| none \| high_precision \| llama \| 0 \| 0 \| outer_relu \|/);
    expect(md).to.include('## Remarks (1)');
    expect(md).to.include('| inner_neg | main | a Neg is not a norm |');
  });

  it('optimizeModel works in memory', () => {
    const m = loadModel(reluModel());
    const report = optimizeModel(m, { passes: [fakeFusion] });
    expect(report.fused).to.have.length(2);
    expect(m.graph.nodes[0]!.opType).to.equal('Fused');
  });

  it('user errors are RmsfuseErrors with exit codes; OUT is not created', async () => {
    const dir = tmp.dir();
    const input = path.join(dir, 'in.onnx');
    fs.writeFileSync(input, modelBytes(tinyModel()));
    const out = path.join(dir, 'out.onnx');
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        expect(e).to.be.instanceOf(RmsfuseError);
        return [(e as RmsfuseError).exitCode, (e as Error).message] as const;
      }
      throw new Error('expected an error');
    };
    expect(await code(optimize(input, out, { target: 'tpu' }))).to.deep.equal([2, "unknown target 'tpu' (expected one of: webgpu, ascend910a, ascend910b, ascend310p, ascend310b, ascend950)"]);
    expect((await code(optimize(input, out, { format: 'tflite' as 'ort' })))[0]).to.equal(2);
    expect((await code(optimize(input, out, { emit: path.join(dir, 'k') })))[0]).to.equal(2);
    expect((await code(optimize(input, out, { report: path.join(dir, 'r.html') })))[0]).to.equal(2);
    expect((await code(optimize(input, out, { format: 'onnx23' })))[0]).to.equal(1);
    expect((await code(optimize(path.join(dir, 'nope.onnx'), out)))[0]).to.equal(1);
    expect(fs.readdirSync(dir)).to.deep.equal(['in.onnx']);
  });

  it("output folder that does not exist is a clear error", async () => {
    const dir = tmp.dir();
    const input = path.join(dir, 'in.onnx');
    fs.writeFileSync(input, modelBytes(tinyModel()));
    try {
      await optimize(input, path.join(dir, 'no', 'such', 'out.onnx'));
      expect.fail('expected an error');
    } catch (e) {
      expect((e as Error).message).to.match(/cannot write .*out.onnx: folder .*such does not exist/);
    }
  });

  it('RMSFUSE_PASSES selects passes: none, all, or names', () => {
    expect(selectPasses('rmsfuse', 'none')).to.deep.equal([]);
    expect(selectPasses('rmsfuse', 'all').map((p) => p.name)).to.deep.equal(selectPasses('rmsfuse', undefined).map((p) => p.name));
    expect(() => selectPasses('rmsfuse', 'nope')).to.throw(RmsfuseError, /unknown pass 'nope'/);
  });
});
