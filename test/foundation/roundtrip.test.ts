/**
 * Lossless load/save: a model using every field of ONNX IR 11 that rmsfuse must keep comes back
 * byte-identical after loadModel + saveModel, and through `rmsfuse optimize` with no fusion.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  DeviceConfigurationProtoSchema,
  IntIntListEntryProtoSchema,
  type ModelProto,
  NodeDeviceConfigurationProtoSchema,
  NodeProtoSchema,
  ShardedDimProtoSchema,
  ShardingSpecProtoSchema,
  SimpleShardedDimProtoSchema,
  SparseTensorProtoSchema,
  TensorAnnotationSchema,
  TrainingInfoProtoSchema,
} from 'onnx-buf';
import { loadModel, saveModel } from '../../compiler/index.js';
import { encodeModel } from '../../compiler/onnx/model.js';
import {
  DT,
  attr,
  floatTensor,
  fn,
  graph,
  int64Tensor,
  metadata,
  model,
  modelBytes,
  node,
  rawTensor,
  valueInfo,
} from '../helpers/model-builder.js';
import { runCli, scratch } from './cli-runner.js';

const BIG = 2n ** 60n + 3n; // not representable as a double
const INT64_VALUES = [2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), -BIG];

/** Unknown fields 99 (varint 42) and 100 (bytes 'abc') of ModelProto, appended to its encoding. */
const UNKNOWN_TAIL = new Uint8Array([0x98, 0x06, 0x2a, 0xa2, 0x06, 0x03, 0x61, 0x62, 0x63]);

function withUnknownTail(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes.length + UNKNOWN_TAIL.length);
  out.set(bytes);
  out.set(UNKNOWN_TAIL, bytes.length);
  return out;
}

/** A model that uses each field the issue lists (and a few more of IR 10/11). */
export function richModel(): ModelProto {
  // A node carrying an unknown field of its own (field 50, varint 7) inside the graph.
  const plain = node('Relu', ['d'], ['r'], { name: 'relu_with_unknown' });
  const nodeWithUnknown = fromBinary(NodeProtoSchema, withUnknownTail2(toBinary(NodeProtoSchema, plain)));

  const call = node('Double', ['x'], ['d'], {
    name: 'call_double',
    domain: 'com.example',
    overload: 'v2',
    metadata: { 'node.origin': 'layer0', 'node.note': 'calls an overloaded function' },
    docString: 'a call with overload',
  });
  call.deviceConfigurations = [
    create(NodeDeviceConfigurationProtoSchema, {
      configurationId: 'two_gpus',
      pipelineStage: 1,
      shardingSpec: [
        create(ShardingSpecProtoSchema, {
          tensorName: 'x',
          device: [0n, 1n],
          indexToDeviceGroupMap: [create(IntIntListEntryProtoSchema, { key: 0n, value: [0n, 1n] })],
          shardedDim: [
            create(ShardedDimProtoSchema, {
              axis: 1n,
              simpleSharding: [create(SimpleShardedDimProtoSchema, { dim: { case: 'dimParam', value: 'N' }, numShards: 2n })],
            }),
          ],
        }),
      ],
    }),
  ];

  const constants = node('Constant', [], ['big_ints'], {
    name: 'big_constant',
    attrs: { value_ints: { ints: INT64_VALUES } },
  });
  const bigAttr = node('Constant', [], ['big_int'], { name: 'big_scalar', attrs: { value_int: { i: BIG } } });
  const sparseRead = node('Identity', ['sparse_w'], ['sparse_out'], { name: 'read_sparse' });

  const g = graph({
    name: 'rich',
    nodes: [call, nodeWithUnknown, constants, bigAttr, sparseRead],
    inputs: [valueInfo('x', DT.FLOAT, [2, 'N'])],
    outputs: [valueInfo('r', DT.FLOAT, [2, 'N']), valueInfo('big_ints', DT.INT64, [4]), valueInfo('big_int', DT.INT64, []), valueInfo('sparse_out', DT.FLOAT, [8])],
    initializers: [
      rawTensor('f8', DT.FLOAT8E4M3FN, [4], new Uint8Array([0x38, 0x40, 0xb8, 0x7e])),
      rawTensor('f8e5m2', DT.FLOAT8E5M2, [2], new Uint8Array([0x3c, 0x40])),
      rawTensor('i4', DT.INT4, [5], new Uint8Array([0x21, 0xf7, 0x08])),
      rawTensor('u4', DT.UINT4, [4], new Uint8Array([0x10, 0xfe])),
      rawTensor('f4', DT.FLOAT4E2M1, [3], new Uint8Array([0x42, 0x07])),
      rawTensor('bf16', DT.BFLOAT16, [2], new Uint8Array([0x80, 0x3f, 0x00, 0x40])),
      int64Tensor('big_int64', [4], INT64_VALUES),
      floatTensor('typed_float', [3], [0.5, -1.25, 3], true),
    ],
    valueInfo: [valueInfo('d', DT.FLOAT, [2, 'N'])],
    metadata: { 'graph.key': 'graph value' },
  });
  g.sparseInitializer = [
    create(SparseTensorProtoSchema, {
      values: floatTensor('sparse_w', [2], [1.5, 2.5]),
      indices: int64Tensor('sparse_w_indices', [2], [1n, 5n]),
      dims: [8n],
    }),
  ];
  g.quantizationAnnotation = [
    create(TensorAnnotationSchema, { tensorName: 'd', quantParameterTensorNames: metadata({ SCALE_TENSOR: 'f8', ZERO_POINT_TENSOR: 'i4' }) }),
  ];
  g.docString = 'graph doc';
  g.input[0]!.type!.denotation = 'TENSOR';

  const m = model({
    graph: g,
    opset: 21,
    opsets: { 'com.example': 1 },
    irVersion: 11,
    metadata: { 'model.author': 'tests', 'model.license': 'MIT' },
    functions: [
      fn({
        domain: 'com.example',
        name: 'Double',
        overload: 'v2',
        inputs: ['a'],
        outputs: ['b'],
        nodes: [node('Add', ['a', 'a'], ['b'], { name: 'fn_add', metadata: { 'fn.node': 'inside' } })],
        opset: 21,
        attributes: ['unused_attr'],
        metadata: { 'function.key': 'function value' },
      }),
      fn({
        domain: 'com.example',
        name: 'Double',
        overload: 'v1',
        inputs: ['a'],
        outputs: ['b'],
        nodes: [node('Mul', ['a', 'two'], ['b'], { name: 'fn_mul' })],
        opset: 21,
      }),
    ],
  });
  m.functions[0]!.attributeProto = [attr('alpha', { f: 0.5 })];
  m.functions[0]!.valueInfo = [valueInfo('b', DT.FLOAT, [2, 'N'])];
  m.functions[0]!.docString = 'overloaded function';
  m.trainingInfo = [
    create(TrainingInfoProtoSchema, {
      initialization: graph({
        name: 'init',
        nodes: [node('Constant', [], ['w0'], { attrs: { value: { t: floatTensor('w0_value', [1], [0]) } } })],
        outputs: [valueInfo('w0', DT.FLOAT, [1])],
      }),
      algorithm: graph({
        name: 'algo',
        nodes: [node('Add', ['typed_float', 'typed_float'], ['typed_float_next'])],
        outputs: [valueInfo('typed_float_next', DT.FLOAT, [3])],
      }),
      initializationBinding: metadata({ typed_float: 'w0' }),
      updateBinding: metadata({ typed_float: 'typed_float_next' }),
    }),
  ];
  m.configuration = [create(DeviceConfigurationProtoSchema, { name: 'two_gpus', numDevices: 2, device: ['cuda:0', 'cuda:1'] })];
  m.producerVersion = '1.2.3';
  m.domain = 'org.example';
  m.modelVersion = BIG;
  m.docString = 'a model using every field';
  return m;
}

/** NodeProto unknown field 50 (varint 7). */
function withUnknownTail2(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 3);
  out.set(bytes);
  out.set([0x90, 0x03, 0x07], bytes.length);
  return out;
}

export const richModelBytes = (): Uint8Array<ArrayBuffer> => withUnknownTail(modelBytes(richModel()));

describe('foundation: lossless load and save', () => {
  const tmp = scratch();
  after(() => tmp.cleanup());

  it('the rich model really uses the fields under test', () => {
    const m = loadModel(richModelBytes()).proto;
    expect(m.irVersion).to.equal(11n);
    expect(m.functions.map((f) => f.overload)).to.deep.equal(['v2', 'v1']);
    expect(m.graph!.node[0]!.overload).to.equal('v2');
    expect(m.graph!.node[0]!.metadataProps.map((p) => p.key)).to.deep.equal(['node.origin', 'node.note']);
    expect(m.graph!.metadataProps[0]!.value).to.equal('graph value');
    expect(m.metadataProps.map((p) => p.key)).to.deep.equal(['model.author', 'model.license']);
    expect(m.graph!.initializer.map((t) => t.dataType)).to.include.members([DT.FLOAT8E4M3FN, DT.INT4, DT.UINT4, DT.FLOAT4E2M1]);
    expect(m.graph!.initializer.find((t) => t.name === 'big_int64')!.int64Data).to.deep.equal(INT64_VALUES);
    expect(m.graph!.node[2]!.attribute[0]!.ints).to.deep.equal(INT64_VALUES);
    expect(m.graph!.node[3]!.attribute[0]!.i).to.equal(BIG);
    expect(m.modelVersion).to.equal(BIG);
    expect(m.trainingInfo[0]!.algorithm!.node).to.have.length(1);
    expect(m.graph!.sparseInitializer[0]!.values!.name).to.equal('sparse_w');
    expect(m.configuration[0]!.device).to.deep.equal(['cuda:0', 'cuda:1']);
    expect(m.graph!.node[0]!.deviceConfigurations[0]!.shardingSpec[0]!.shardedDim[0]!.axis).to.equal(1n);
    // Unknown fields are kept, on the model and on a node.
    expect(m.$unknown?.map((u) => u.no)).to.deep.equal([99, 100]);
    expect(m.graph!.node[1]!.$unknown?.map((u) => u.no)).to.deep.equal([50]);
  });

  it('loadModel(bytes) + encode gives the same bytes', () => {
    const bytes = richModelBytes();
    expect(Buffer.from(encodeModel(loadModel(bytes).proto)).equals(Buffer.from(bytes))).to.equal(true);
  });

  it('loadModel(file) + saveModel(file) is byte-identical', () => {
    const dir = tmp.dir();
    const input = path.join(dir, 'rich.onnx');
    const out = path.join(dir, 'rich.out.onnx');
    const bytes = richModelBytes();
    fs.writeFileSync(input, bytes);
    const result = saveModel(loadModel(input), out);
    expect(result.bytes).to.equal(bytes.length);
    expect(Buffer.from(fs.readFileSync(out)).equals(Buffer.from(bytes))).to.equal(true);
    // Field by field as well (what byte identity means for a reader).
    const again = loadModel(out).proto;
    expect(again.graph!.initializer.find((t) => t.name === 'big_int64')!.int64Data).to.deep.equal(INT64_VALUES);
  });

  it('loadModel after validation and type inference still saves byte-identically', () => {
    const dir = tmp.dir();
    const input = path.join(dir, 'rich.onnx');
    fs.writeFileSync(input, richModelBytes());
    const m = loadModel(input);
    m.inferTypes();
    const out = path.join(dir, 'again.onnx');
    saveModel(m, out);
    expect(Buffer.from(fs.readFileSync(out)).equals(fs.readFileSync(input))).to.equal(true);
  });

  it('`rmsfuse optimize` with nothing to fuse writes the model back byte-identically', async () => {
    const dir = tmp.dir();
    const input = path.join(dir, 'rich.onnx');
    const out = path.join(dir, 'rich.optimized.onnx');
    fs.writeFileSync(input, richModelBytes());
    const r = await runCli(['optimize', input, '-o', out]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/fused: nothing/);
    expect(Buffer.from(fs.readFileSync(out)).equals(fs.readFileSync(input))).to.equal(true);
  });
});
