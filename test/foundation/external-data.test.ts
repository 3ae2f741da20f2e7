/**
 * External data: references are read without the weights, kept when OUT is in the model's
 * folder, copied beside OUT otherwise (or refused on a conflict); onnxruntime-node runs every
 * written model with the right values.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, RmsfuseError, saveModel, type CopyProgress } from '../../compiler/index.js';
import { DT, externalTensor, f32Bytes, graph, model, modelBytes, node, valueInfo } from '../helpers/model-builder.js';
import { runCli, scratch } from './cli-runner.js';

const X = [1, 2, 3, 4, 5, 6]; // [2, 3]
const W = [1, 0, 2, -1, 0, 1, 1, 3, 2, 2, 0, 1]; // [3, 4]
const B = [0.5, -0.5, 1, 10]; // [4]
const W_OFFSET = 0;
const B_OFFSET = 64; // after W (48 bytes), aligned

/** Y = X @ W + B, expected values computed here. */
function expected(): number[] {
  const y: number[] = [];
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 4; j++) {
      let s = B[j]!;
      for (let k = 0; k < 3; k++) s += X[i * 3 + k]! * W[k * 4 + j]!;
      y.push(s);
    }
  }
  return y;
}

/** Writes model.onnx and its data file (`location`, possibly in a subfolder) into dir. */
function writeExternalModel(dir: string, location = 'weights.bin'): string {
  const data = Buffer.alloc(B_OFFSET + 16);
  Buffer.from(f32Bytes(W)).copy(data, W_OFFSET);
  Buffer.from(f32Bytes(B)).copy(data, B_OFFSET);
  fs.mkdirSync(path.dirname(path.join(dir, location)), { recursive: true });
  fs.writeFileSync(path.join(dir, location), data);
  const m = model({
    graph: graph({
      nodes: [node('MatMul', ['X', 'W'], ['XW'], { name: 'matmul' }), node('Add', ['XW', 'B'], ['Y'], { name: 'add' })],
      inputs: [valueInfo('X', DT.FLOAT, [2, 3])],
      outputs: [valueInfo('Y', DT.FLOAT, [2, 4])],
      initializers: [externalTensor('W', DT.FLOAT, [3, 4], location, W_OFFSET, 48), externalTensor('B', DT.FLOAT, [4], location, B_OFFSET, 16)],
    }),
  });
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, modelBytes(m));
  return file;
}

async function runWithOrt(file: string): Promise<number[]> {
  const session = await ort.InferenceSession.create(file);
  try {
    const out = await session.run({ X: new ort.Tensor('float32', Float32Array.from(X), [2, 3]) });
    return Array.from(out.Y!.data as Float32Array);
  } finally {
    await session.release();
  }
}

describe('foundation: external data', () => {
  const tmp = scratch();
  after(() => tmp.cleanup());

  it('loads references without reading the weights, and reads a tensor only on request', () => {
    const dir = tmp.dir();
    const file = writeExternalModel(dir);
    const m = loadModel(file);
    expect(m.loaded.external.map((r) => [r.tensor.name, r.location, r.offset, r.length])).to.deep.equal([
      ['W', 'weights.bin', 0, 48],
      ['B', 'weights.bin', 64, 16],
    ]);
    expect(m.graph.constantValues('B')).to.deep.equal(B);
  });

  it('OUT in the same folder keeps the references; onnxruntime runs it', async () => {
    const dir = tmp.dir();
    const file = writeExternalModel(dir);
    const out = path.join(dir, 'out.onnx');
    const saved = saveModel(loadModel(file), out);
    expect(saved.externalFiles).to.deep.equal([{ location: 'weights.bin', bytes: 80, action: 'kept' }]);
    expect(fs.readFileSync(out).equals(fs.readFileSync(file))).to.equal(true);
    expect(await runWithOrt(out)).to.deep.equal(expected());
  });

  it('OUT in another folder copies the data file beside it; onnxruntime runs it', async () => {
    const src = tmp.dir();
    const dest = tmp.dir();
    const file = writeExternalModel(src, 'data/weights.bin');
    const out = path.join(dest, 'out.onnx');
    const progress: CopyProgress[] = [];
    const saved = saveModel(loadModel(file), out, { onProgress: (p) => progress.push(p) });
    expect(saved.externalFiles).to.deep.equal([{ location: 'data/weights.bin', bytes: 80, action: 'copied' }]);
    expect(fs.readFileSync(path.join(dest, 'data/weights.bin')).equals(fs.readFileSync(path.join(src, 'data/weights.bin')))).to.equal(true);
    expect(progress.at(-1)).to.deep.include({ location: 'data/weights.bin', copiedBytes: 80, done: true });
    expect(await runWithOrt(out)).to.deep.equal(expected());
    // Saving there again finds the identical file and leaves it.
    expect(saveModel(loadModel(file), out).externalFiles[0]!.action).to.equal('identical');
  });

  it('refuses a different data file of the same name at the destination, and writes nothing', () => {
    const src = tmp.dir();
    const dest = tmp.dir();
    const file = writeExternalModel(src);
    fs.writeFileSync(path.join(dest, 'weights.bin'), Buffer.alloc(80, 1));
    const out = path.join(dest, 'out.onnx');
    expect(() => saveModel(loadModel(file), out)).to.throw(RmsfuseError, /'weights.bin' already exists in .* with different content/);
    expect(fs.existsSync(out)).to.equal(false);
    expect(fs.readFileSync(path.join(dest, 'weights.bin'))[0]).to.equal(1);
  });

  it("externalData: 'refuse' refuses another folder instead of copying", () => {
    const file = writeExternalModel(tmp.dir());
    const out = path.join(tmp.dir(), 'out.onnx');
    expect(() => saveModel(loadModel(file), out, { externalData: 'refuse' })).to.throw(RmsfuseError, /not in the input model's folder/);
    expect(fs.existsSync(out)).to.equal(false);
  });

  it('refuses to write OUT over the data file itself', () => {
    const dir = tmp.dir();
    const file = writeExternalModel(dir);
    const before = fs.readFileSync(path.join(dir, 'weights.bin'));
    expect(() => saveModel(loadModel(file), path.join(dir, 'weights.bin'))).to.throw(RmsfuseError, /external data file 'weights.bin'/);
    expect(fs.readFileSync(path.join(dir, 'weights.bin')).equals(before)).to.equal(true);
  });

  it('a sparse data file keeps its holes when copied', () => {
    const src = tmp.dir();
    const dest = tmp.dir();
    const size = 64 << 20;
    const fd = fs.openSync(path.join(src, 'big.bin'), 'w');
    fs.ftruncateSync(fd, size);
    fs.writeSync(fd, Buffer.from(f32Bytes([7])), 0, 4, size - 4);
    fs.closeSync(fd);
    const m = model({
      graph: graph({
        nodes: [node('Identity', ['big'], ['y'])],
        outputs: [valueInfo('y', DT.FLOAT, [size / 4])],
        initializers: [externalTensor('big', DT.FLOAT, [size / 4], 'big.bin', 0, size)],
      }),
    });
    fs.writeFileSync(path.join(src, 'm.onnx'), modelBytes(m));
    saveModel(loadModel(path.join(src, 'm.onnx')), path.join(dest, 'm.onnx'));
    const copied = path.join(dest, 'big.bin');
    expect(fs.statSync(copied).size).to.equal(size);
    // Only the 8 MiB chunk holding the one non-zero value is written.
    expect(fs.statSync(copied).blocks * 512).to.be.at.most(9 << 20);
    const tail = Buffer.alloc(4);
    const cfd = fs.openSync(copied, 'r');
    fs.readSync(cfd, tail, 0, 4, size - 4);
    fs.closeSync(cfd);
    expect(tail.readFloatLE(0)).to.equal(7);
  });

  it('a model with 3 GiB of external weights loads and saves without reading them', () => {
    const dir = tmp.dir();
    const size = 3 * 2 ** 30;
    const fd = fs.openSync(path.join(dir, 'huge.bin'), 'w');
    fs.ftruncateSync(fd, size);
    fs.closeSync(fd);
    const rows = size / 4 / 4096;
    const m = model({
      graph: graph({
        nodes: [node('MatMul', ['X', 'W'], ['Y'])],
        inputs: [valueInfo('X', DT.FLOAT, [1, rows])],
        outputs: [valueInfo('Y', DT.FLOAT, [1, 4096])],
        initializers: [externalTensor('W', DT.FLOAT, [rows, 4096], 'huge.bin', 0, size)],
      }),
    });
    fs.writeFileSync(path.join(dir, 'm.onnx'), modelBytes(m));
    const rss0 = process.memoryUsage().rss;
    const loaded = loadModel(path.join(dir, 'm.onnx'));
    expect(loaded.loaded.external[0]!.length).to.equal(size);
    saveModel(loaded, path.join(dir, 'out.onnx'));
    expect(process.memoryUsage().rss - rss0).to.be.below(256 * 2 ** 20);
    expect(loaded.graph.constantValues('W')).to.equal(undefined); // too big to decode: never read
  });

  it('`rmsfuse optimize IN -o IN` leaves IN and its data intact (byte-equal), and onnxruntime still runs it', async () => {
    const dir = tmp.dir();
    const file = writeExternalModel(dir);
    const model0 = fs.readFileSync(file);
    const data0 = fs.readFileSync(path.join(dir, 'weights.bin'));
    const r = await runCli(['optimize', file, '-o', file]);
    expect(r.code, r.stderr).to.equal(0);
    expect(fs.readFileSync(file).equals(model0)).to.equal(true);
    expect(fs.readFileSync(path.join(dir, 'weights.bin')).equals(data0)).to.equal(true);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['model.onnx', 'weights.bin']);
    expect(await runWithOrt(file)).to.deep.equal(expected());
  });

  it('`rmsfuse optimize` into another folder copies the data and says so', async () => {
    const src = tmp.dir();
    const dest = tmp.dir();
    const file = writeExternalModel(src);
    const out = path.join(dest, 'out.onnx');
    const r = await runCli(['optimize', file, '-o', out]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/external data copied beside the output: weights.bin \(80 B\)/);
    expect(await runWithOrt(out)).to.deep.equal(expected());
  });
});
