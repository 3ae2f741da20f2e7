/**
 * Resource limits (compiler/onnx/limits.ts): what a model declares is checked before rmsfuse
 * allocates for it, and refused with a clear error; what rmsfuse never reads (external weights)
 * may be as large as it likes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { TensorProtoSchema } from 'onnx-buf';
import { loadModel, optimize } from '../../compiler/api.js';
import { RmsfuseError } from '../../compiler/errors.js';
import {
  DEFAULT_MAX_TENSOR_BYTES,
  PLATFORM_MAX_BYTES,
  checkedElementCount,
  estimateDecodedSize,
  parseByteSize,
  resolveLimits,
} from '../../compiler/onnx/limits.js';
import { DT, externalTensor, floatTensor, graph, model, modelBytes, node, tinyModel, valueInfo } from '../helpers/model-builder.js';

function refuse(fn: () => unknown, fragment: RegExp | string): RmsfuseError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof RmsfuseError)) throw e;
    if (typeof fragment === 'string') expect(e.message).to.include(fragment);
    else expect(e.message).to.match(fragment);
    return e;
  }
  throw new Error('expected an RmsfuseError');
}

/** tinyModel with its initializer replaced by `t`. */
function withInitializer(t: ReturnType<typeof floatTensor>) {
  const m = tinyModel();
  m.graph!.initializer = [t];
  return modelBytes(m);
}

describe('limits: sizes declared by a model are checked before allocating', function () {
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-limits-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('parses byte counts with K/M/G/T suffixes; refuses others as usage errors', function () {
    expect(parseByteSize('4096')).to.equal(4096);
    expect(parseByteSize('512M')).to.equal(512 * 2 ** 20);
    expect(parseByteSize('4GiB')).to.equal(4 * 2 ** 30);
    expect(parseByteSize('1.5k')).to.equal(1536);
    for (const bad of ['', 'x', '-1', '0', '4Q', '1e3']) expect(refuse(() => parseByteSize(bad), 'byte count').exitCode).to.equal(2);
  });

  it('defaults: 4 GiB per allocation, RMSFUSE_MAX_BYTES overrides, options override both', function () {
    const saved = process.env.RMSFUSE_MAX_BYTES;
    try {
      delete process.env.RMSFUSE_MAX_BYTES;
      expect(resolveLimits().maxTensorBytes).to.equal(DEFAULT_MAX_TENSOR_BYTES);
      process.env.RMSFUSE_MAX_BYTES = '1M';
      expect(resolveLimits().maxTensorBytes).to.equal(2 ** 20);
      expect(resolveLimits({ maxTensorBytes: 10 }).maxTensorBytes).to.equal(10);
      // Never above what one Node.js buffer can hold.
      expect(resolveLimits({ maxTensorBytes: 2 ** 45 }).maxTensorBytes).to.equal(PLATFORM_MAX_BYTES);
    } finally {
      if (saved === undefined) delete process.env.RMSFUSE_MAX_BYTES;
      else process.env.RMSFUSE_MAX_BYTES = saved;
    }
  });

  it('element counts: negative dims, dims over 2^53 and products over 2^53 are refused', function () {
    expect(checkedElementCount([2n, 3n], 't')).to.equal(6);
    expect(checkedElementCount([0n, 2n ** 40n], 't')).to.equal(0);
    expect(checkedElementCount([], 't')).to.equal(1);
    refuse(() => checkedElementCount([2n, -1n], 't'), 'negative dimension');
    refuse(() => checkedElementCount([2n ** 62n], 't'), 'over 2^53');
    refuse(() => checkedElementCount([2n ** 30n, 2n ** 30n], 't'), 'more than 2^53 elements');
  });

  it('initializers: a negative or absurd dim, or raw_data of the wrong length, is refused at load', function () {
    const t = floatTensor('one', [1], [1]);
    t.dims = [-3n];
    refuse(() => loadModel(withInitializer(t)), "tensor 'one' has a negative dimension (-3)");
    t.dims = [2n ** 62n];
    refuse(() => loadModel(withInitializer(t)), 'over 2^53');
    t.dims = [2n ** 20n, 2n ** 20n];
    refuse(() => loadModel(withInitializer(t)), /bytes of raw_data but its float32 shape/);
    const typed = floatTensor('one', [4], [1, 2, 3], true);
    refuse(() => loadModel(withInitializer(typed)), 'holds 3 values but its float32 shape [4] has 4 elements');
  });

  it('value_info dims: negative or over 2^53 are refused', function () {
    const m = tinyModel();
    m.graph!.input = [valueInfo('x', DT.FLOAT, [2, -1])];
    refuse(() => loadModel(modelBytes(m)), "value 'x' has a negative dimension (-1)");
  });

  it('the model file is not read when it is over the limit', function () {
    const file = path.join(tmp, 'big.onnx');
    fs.writeFileSync(file, modelBytes(tinyModel()));
    const size = fs.statSync(file).size;
    refuse(() => loadModel(file, { limits: { maxTensorBytes: size - 1 } }), 'over the limit');
    expect(() => loadModel(file, { limits: { maxTensorBytes: size } })).to.not.throw();
  });

  it('a decode bomb (a million empty nodes in 2 MB) is refused before decoding', function () {
    const n = 1_000_000;
    const body = new Uint8Array(2 * n);
    for (let i = 0; i < n; i++) body[2 * i] = 0x0a; // GraphProto.node, length 0
    const len: number[] = [];
    for (let v = body.length; ; v = Math.floor(v / 128)) {
      if (v < 128) {
        len.push(v);
        break;
      }
      len.push((v & 0x7f) | 0x80);
    }
    const bytes = Uint8Array.from([0x08, 0x08, 0x3a, ...len, ...body]); // ir_version 8, graph
    const est = estimateDecodedSize(bytes);
    expect(est.messages).to.equal(n + 2);
    expect(est.bytes).to.be.above(200 * n);
    const heap0 = process.memoryUsage().heapUsed;
    refuse(() => loadModel(bytes, { limits: { maxDecodedBytes: 64 << 20 } }), /would need about .* MiB of memory to decode \(1000002 messages/);
    // Refused by the scan, not after building a million objects.
    expect(process.memoryUsage().heapUsed - heap0).to.be.below(100 << 20);
  });

  it('the decode estimate of real models is small (the budget never gets in their way)', function () {
    const bytes = fs.readFileSync(path.join(import.meta.dirname, '../../examples/mini-llama-fp32.onnx'));
    const est = estimateDecodedSize(bytes);
    expect(est.bytes).to.be.below(16 << 20);
    expect(est.messages).to.be.above(10);
  });

  it('an external tensor over the allocation limit is fine: its weights are never read', async function () {
    // 5 GiB of fp32 weights in a sparse file, over the default 4 GiB allocation limit.
    const dir = fs.mkdtempSync(path.join(tmp, 'ext-'));
    const dims = [2 ** 20, 1280];
    const bytes = dims[0]! * dims[1]! * 4;
    const fd = fs.openSync(path.join(dir, 'w.bin'), 'w');
    fs.ftruncateSync(fd, bytes);
    fs.closeSync(fd);
    const m = model({
      graph: graph({
        nodes: [node('Gather', ['w', 'i'], ['y'])],
        inputs: [valueInfo('i', DT.INT64, [1])],
        outputs: [valueInfo('y', DT.FLOAT, [1, 1280])],
        initializers: [externalTensor('w', DT.FLOAT, dims, 'w.bin', 0, bytes)],
      }),
    });
    fs.writeFileSync(path.join(dir, 'm.onnx'), modelBytes(m));
    const report = await optimize(path.join(dir, 'm.onnx'), path.join(dir, 'out.onnx'), { log: () => {} });
    expect(report.fused).to.have.length(0);
    expect(fs.existsSync(path.join(dir, 'out.onnx'))).to.equal(true);
  });

  it('an external length that disagrees with the dims is refused (it would size a read)', function () {
    const dir = fs.mkdtempSync(path.join(tmp, 'len-'));
    fs.writeFileSync(path.join(dir, 'w.bin'), new Uint8Array(64));
    const m = tinyModel();
    m.graph!.initializer = [externalTensor('one', DT.FLOAT, [], 'w.bin', 0, 64)];
    fs.writeFileSync(path.join(dir, 'm.onnx'), modelBytes(m));
    refuse(() => loadModel(path.join(dir, 'm.onnx')), 'external data length 64 does not match its float32 shape [] (4 bytes)');
  });

  it('Constant attribute tensors are checked too', function () {
    const t = create(TensorProtoSchema, { name: 'c', dataType: DT.FLOAT, dims: [-1n] });
    const m = model({
      graph: graph({
        nodes: [node('Constant', [], ['c'], { attrs: { value: { t } } }), node('Add', ['x', 'c'], ['y'])],
        inputs: [valueInfo('x', DT.FLOAT, [2])],
        outputs: [valueInfo('y', DT.FLOAT, [2])],
      }),
    });
    refuse(() => loadModel(modelBytes(m)), "attribute 'value': tensor 'c' has a negative dimension");
  });
});
