/**
 * Test helper: small ONNX ModelProtos built directly with onnx-buf messages (no rmsfuse code
 * involved), so a test states exactly what is on the wire.
 *
 *   const m = model({ graph: graph({ nodes: [node('Relu', ['x'], ['y'])], inputs: [input('x', FLOAT, [2])], outputs: [output('y', FLOAT, [2])] }) });
 *   fs.writeFileSync(file, modelBytes(m));
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  type AttributeProto,
  type FunctionProto,
  FunctionProtoSchema,
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from 'onnx-buf';

export const DT = TensorProto_DataType;
export const AT = AttributeProto_AttributeType;

export type Shape = (number | string)[];

export function tensorType(elemType: number, shape?: Shape) {
  const dim = shape?.map((d) =>
    create(TensorShapeProto_DimensionSchema, {
      value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
    }),
  );
  return create(TypeProtoSchema, {
    value: {
      case: 'tensorType',
      value: create(TypeProto_TensorSchema, { elemType, ...(dim ? { shape: create(TensorShapeProtoSchema, { dim }) } : {}) }),
    },
  });
}

export function valueInfo(name: string, elemType: number, shape?: Shape): ValueInfoProto {
  return create(ValueInfoProtoSchema, { name, type: tensorType(elemType, shape) });
}
export const input = valueInfo;
export const output = valueInfo;

export type AttrValue =
  | { f: number }
  | { i: number | bigint }
  | { s: string }
  | { t: TensorProto }
  | { g: GraphProto }
  | { floats: number[] }
  | { ints: (number | bigint)[] }
  | { strings: string[] }
  | { graphs: GraphProto[] };

export function attr(name: string, v: AttrValue): AttributeProto {
  if ('f' in v) return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.f });
  if ('i' in v) return create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v.i) });
  if ('s' in v) return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v.s) });
  if ('t' in v) return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: v.t });
  if ('g' in v) return create(AttributeProtoSchema, { name, type: AT.GRAPH, g: v.g });
  if ('floats' in v) return create(AttributeProtoSchema, { name, type: AT.FLOATS, floats: v.floats });
  if ('ints' in v) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.ints.map(BigInt) });
  if ('strings' in v) return create(AttributeProtoSchema, { name, type: AT.STRINGS, strings: v.strings.map((s) => new TextEncoder().encode(s)) });
  return create(AttributeProtoSchema, { name, type: AT.GRAPHS, graphs: v.graphs });
}

export interface NodeOptions {
  name?: string;
  domain?: string;
  overload?: string;
  attrs?: Record<string, AttrValue>;
  metadata?: Record<string, string>;
  docString?: string;
}

export function node(opType: string, inputs: string[], outputs: string[], o: NodeOptions = {}): NodeProto {
  return create(NodeProtoSchema, {
    opType,
    input: inputs,
    output: outputs,
    name: o.name ?? `${opType}_${outputs[0] ?? ''}`,
    domain: o.domain ?? '',
    overload: o.overload ?? '',
    docString: o.docString ?? '',
    attribute: Object.entries(o.attrs ?? {}).map(([k, v]) => attr(k, v)),
    metadataProps: metadata(o.metadata),
  });
}

export const metadata = (m: Record<string, string> = {}) =>
  Object.entries(m).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));

/** A float32 tensor; stored in raw_data unless `typed` (then float_data). */
export function floatTensor(name: string, dims: number[], values: number[], typed = false): TensorProto {
  return typed
    ? create(TensorProtoSchema, { name, dataType: DT.FLOAT, dims: dims.map(BigInt), floatData: values })
    : create(TensorProtoSchema, { name, dataType: DT.FLOAT, dims: dims.map(BigInt), rawData: f32Bytes(values) });
}

export function int64Tensor(name: string, dims: number[], values: bigint[]): TensorProto {
  return create(TensorProtoSchema, { name, dataType: DT.INT64, dims: dims.map(BigInt), int64Data: values });
}

/** Any dtype with the given raw bytes (FLOAT8, INT4, ... packed as ONNX specifies). */
export function rawTensor(name: string, dataType: number, dims: number[], rawData: Uint8Array<ArrayBuffer>): TensorProto {
  return create(TensorProtoSchema, { name, dataType, dims: dims.map(BigInt), rawData });
}

/** A tensor whose bytes live in `location` (relative to the model's folder) at offset/length. */
export function externalTensor(name: string, dataType: number, dims: number[], location: string, offset: number, length: number): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dataType,
    dims: dims.map(BigInt),
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: metadata({ location, offset: String(offset), length: String(length) }),
  });
}

export function f32Bytes(values: number[]): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new Float32Array(values).buffer);
}

export interface GraphInit {
  name?: string;
  nodes: NodeProto[];
  inputs?: ValueInfoProto[];
  outputs?: ValueInfoProto[];
  initializers?: TensorProto[];
  valueInfo?: ValueInfoProto[];
  metadata?: Record<string, string>;
}

export function graph(g: GraphInit): GraphProto {
  return create(GraphProtoSchema, {
    name: g.name ?? 'main',
    node: g.nodes,
    input: g.inputs ?? [],
    output: g.outputs ?? [],
    initializer: g.initializers ?? [],
    valueInfo: g.valueInfo ?? [],
    metadataProps: metadata(g.metadata),
  });
}

export interface ModelInit {
  graph: GraphProto;
  /** Default-domain opset (default 17). */
  opset?: number;
  /** Further opset imports, e.g. { 'com.example': 1 }. */
  opsets?: Record<string, number>;
  irVersion?: number;
  functions?: FunctionProto[];
  metadata?: Record<string, string>;
}

export function model(m: ModelInit): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: BigInt(m.irVersion ?? 8),
    producerName: 'rmsfuse-tests',
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(m.opset ?? 17) }),
      ...Object.entries(m.opsets ?? {}).map(([domain, v]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(v) })),
    ],
    graph: m.graph,
    functions: m.functions ?? [],
    metadataProps: metadata(m.metadata),
  });
}

export function fn(f: {
  domain: string;
  name: string;
  overload?: string;
  inputs: string[];
  outputs: string[];
  nodes: NodeProto[];
  opset?: number;
  attributes?: string[];
  metadata?: Record<string, string>;
}): FunctionProto {
  return create(FunctionProtoSchema, {
    domain: f.domain,
    name: f.name,
    overload: f.overload ?? '',
    input: f.inputs,
    output: f.outputs,
    node: f.nodes,
    attribute: f.attributes ?? [],
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(f.opset ?? 17) })],
    metadataProps: metadata(f.metadata),
  });
}

export function modelBytes(m: ModelProto): Uint8Array<ArrayBuffer> {
  return toBinary(ModelProtoSchema, m) as Uint8Array<ArrayBuffer>;
}

/** y = x + 1 with float32 [2, 3]: the smallest useful model. */
export function tinyModel(): ModelProto {
  return model({
    graph: graph({
      nodes: [node('Add', ['x', 'one'], ['y'], { name: 'add' })],
      inputs: [valueInfo('x', DT.FLOAT, [2, 3])],
      outputs: [valueInfo('y', DT.FLOAT, [2, 3])],
      initializers: [floatTensor('one', [], [1])],
    }),
  });
}
