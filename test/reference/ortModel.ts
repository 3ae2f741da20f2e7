/**
 * Test helper: a one-node ONNX model whose node calls the rmsfuse function for a variant, run
 * with onnxruntime-node. Inputs are fed as graph inputs (not initializers) so one model serves
 * many random cases.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import * as ort from 'onnxruntime-node';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  type AttributeProto,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProto_DataType,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import { type DecomposeIO, buildFunction, functionName } from '../../compiler/op/decompose.js';
import {
  type FloatDType,
  type InputRole,
  OP_TYPE,
  RMSFUSE_DOMAIN,
  RMSFUSE_OPSET_VERSION,
  type RmsNormParam,
  signature,
  toAttributes,
} from '../../compiler/op/param.js';
import { fromF16Bits, toF16Bits } from '../../runtime/numeric.js';

const ELEM: Record<FloatDType | 'int8', TensorProto_DataType> = {
  float32: TensorProto_DataType.FLOAT,
  float16: TensorProto_DataType.FLOAT16,
  bfloat16: TensorProto_DataType.BFLOAT16,
  int8: TensorProto_DataType.INT8,
};

function valueInfo(name: string, dtype: FloatDType | 'int8', shape: number[]) {
  const dim = shape.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: BigInt(d) } }));
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType: ELEM[dtype], shape: create(TensorShapeProtoSchema, { dim }) }) },
    }),
  });
}

function nodeAttributes(p: RmsNormParam): AttributeProto[] {
  const a = toAttributes(p);
  return Object.entries(a).map(([name, v]) =>
    typeof v === 'number' && name === 'epsilon'
      ? create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: v })
      : typeof v === 'number'
        ? create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) })
        : create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(v) }),
  );
}

export interface CaseShape {
  /** Full x shape; the last k dims are normalized. */
  xShape: number[];
  k: number;
}

export interface OrtCase {
  param: RmsNormParam;
  io: DecomposeIO;
  shape: CaseShape;
}

/** Node input list: interior absent optional inputs as '', trailing ones left off. */
export function nodeInputs(p: RmsNormParam, present: Set<InputRole>): string[] {
  const sig = signature(p);
  const names = sig.inputs.map((r) => (sig.optional.includes(r) && !present.has(r) ? '' : r));
  while (names.length && names[names.length - 1] === '') names.pop();
  return names;
}

function roleDType(role: InputRole, io: DecomposeIO): FloatDType | 'int8' {
  switch (role) {
    case 'x':
    case 'residual':
      return io.xDType;
    case 'gamma':
      return io.gammaDType;
    case 'beta':
      return io.betaDType ?? io.xDType;
    case 'bias':
      return io.biasDType ?? io.xDType;
    case 'scale':
      return io.scaleDType ?? 'float32';
    case 'offset':
      return 'int8';
  }
}

function roleShape(role: InputRole, s: CaseShape): number[] {
  const wShape = s.xShape.slice(s.xShape.length - s.k);
  switch (role) {
    case 'x':
    case 'residual':
      return s.xShape;
    case 'gamma':
    case 'beta':
    case 'bias':
      return wShape;
    case 'scale':
    case 'offset':
      return [];
  }
}

export function buildModel(c: OrtCase): Uint8Array {
  const { param, io, shape } = c;
  const sig = signature(param);
  const inputs = nodeInputs(param, io.present);
  const rowShape = shape.xShape.map((d, i) => (i >= shape.xShape.length - shape.k ? 1 : d));
  const outType: Record<string, [FloatDType | 'int8', number[]]> = {
    y: [io.xDType, shape.xShape],
    sum: [io.xDType, shape.xShape],
    q: ['int8', shape.xShape],
    rstd: ['float32', rowShape],
    scale: ['float32', rowShape],
  };
  const fn = buildFunction(param, io);
  const node = create(NodeProtoSchema, {
    name: 'fused0',
    opType: OP_TYPE[param.layerType],
    domain: RMSFUSE_DOMAIN,
    overload: functionName(param, io),
    input: inputs,
    output: sig.outputs,
    attribute: nodeAttributes(param),
  });
  const graph = create(GraphProtoSchema, {
    name: 'g',
    node: [node],
    input: inputs.filter((n) => n !== '').map((n) => valueInfo(n, roleDType(n as InputRole, io), roleShape(n as InputRole, shape))),
    output: sig.outputs.map((o) => valueInfo(o, outType[o]![0], outType[o]![1])),
  });
  const model = create(ModelProtoSchema, {
    irVersion: 10n,
    producerName: 'rmsfuse-test',
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(io.opset) }),
      create(OperatorSetIdProtoSchema, { domain: RMSFUSE_DOMAIN, version: BigInt(RMSFUSE_OPSET_VERSION) }),
    ],
    graph,
    functions: [fn],
  });
  return toBinary(ModelProtoSchema, model);
}

/** Feeds as fp32 numbers (already representable in their dtypes). */
export type Feeds = Partial<Record<InputRole, Float32Array | number>>;
export type OrtOutputs = Partial<Record<'y' | 'q' | 'rstd' | 'scale' | 'sum', Float32Array | Int8Array>>;

function toTensor(role: InputRole, v: Float32Array | number, io: DecomposeIO, s: CaseShape): ort.Tensor {
  const dt = roleDType(role, io);
  const dims = roleShape(role, s);
  if (dt === 'int8') return new ort.Tensor('int8', Int8Array.from([v as number]), dims);
  const arr = typeof v === 'number' ? Float32Array.of(v) : v;
  if (dt === 'float16') return new ort.Tensor('float16', toF16Bits(arr), dims);
  if (dt === 'float32') return new ort.Tensor('float32', arr, dims);
  throw new Error('bfloat16 feeds are not run on onnxruntime CPU');
}

export async function runOrt(
  session: ort.InferenceSession,
  c: OrtCase,
  feeds: Feeds,
): Promise<{ out: OrtOutputs; dims: Record<string, readonly number[]> }> {
  const inputs = nodeInputs(c.param, c.io.present).filter((n) => n !== '') as InputRole[];
  const f: Record<string, ort.Tensor> = {};
  for (const r of inputs) {
    const v = feeds[r];
    if (v === undefined) throw new Error(`no feed for ${r}`);
    f[r] = toTensor(r, v, c.io, c.shape);
  }
  const res = await session.run(f);
  const out: OrtOutputs = {};
  const dims: Record<string, readonly number[]> = {};
  for (const [name, t] of Object.entries(res)) {
    const o = name as keyof OrtOutputs;
    if (t.type === 'float16') out[o] = fromF16Bits(t.data as Uint16Array);
    else if (t.type === 'float32') out[o] = t.data as Float32Array;
    else if (t.type === 'int8') out[o] = t.data as Int8Array;
    else throw new Error(`unexpected output type ${t.type}`);
    dims[name] = t.dims;
  }
  return { out, dims };
}
