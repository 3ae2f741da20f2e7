/**
 * Mutations of ONNX model bytes for the loader/CLI fuzzers. Each takes the bytes and a seeded
 * random source and returns new bytes; all are deterministic for a given (bytes, seed).
 *
 * Byte level: bit flips, truncation, duplicated chunks, overwritten bytes, huge varints.
 * Structure level (decode, change one thing, encode): negative / huge / very many dims, wrong
 * data types, raw_data of the wrong length, empty names, unknown ops, subgraphs nested up to 100
 * deep, attributes of the wrong type or with absurd values, absurd ir_version and opsets, removed
 * nodes, cycles, duplicated producers, external data pointing anywhere, very many nodes.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProtoSchema,
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProtoSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import { rng } from '../helpers/graph.js';

export type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

// ---------------------------------------------------------------------------------------------
// Byte level

function bitflip(b: Uint8Array, r: Rand): Uint8Array {
  const out = b.slice();
  const n = 1 + int(r, 8);
  for (let i = 0; i < n && out.length; i++) out[int(r, out.length)]! ^= 1 << int(r, 8);
  return out;
}

function truncate(b: Uint8Array, r: Rand): Uint8Array {
  return b.slice(0, int(r, b.length));
}

function splice(b: Uint8Array, r: Rand): Uint8Array {
  if (b.length < 2) return b;
  const from = int(r, b.length);
  const len = 1 + int(r, Math.min(256, b.length - from));
  const at = int(r, b.length);
  const out = new Uint8Array(b.length + len);
  out.set(b.subarray(0, at));
  out.set(b.subarray(from, from + len), at);
  out.set(b.subarray(at), at + len);
  return out;
}

function overwrite(b: Uint8Array, r: Rand): Uint8Array {
  const out = b.slice();
  const at = int(r, out.length);
  const len = 1 + int(r, 16);
  const v = pick(r, [0x00, 0xff, 0x80, -1]);
  for (let i = at; i < Math.min(out.length, at + len); i++) out[i] = v === -1 ? int(r, 256) : v;
  return out;
}

/** A 10-byte varint (about 2^63) written over the bytes at a random place: lengths and counts go huge. */
function hugeVarint(b: Uint8Array, r: Rand): Uint8Array {
  const out = b.slice();
  const at = int(r, out.length);
  const v = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
  const w = pick(r, [v, [0xff, 0xff, 0xff, 0xff, 0x0f], [0x80, 0x80, 0x80, 0x80, 0x08]]);
  for (let i = 0; i < w.length && at + i < out.length; i++) out[at + i] = w[i]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Structure level

function decode(b: Uint8Array): ModelProto | undefined {
  try {
    return fromBinary(ModelProtoSchema, b, { readUnknownFields: true, recursionLimit: 10_000 });
  } catch {
    return undefined;
  }
}
const encode = (m: ModelProto): Uint8Array => toBinary(ModelProtoSchema, m, { writeUnknownFields: true });

function* graphsOf(m: ModelProto): Generator<GraphProto> {
  const walk = function* (g: GraphProto): Generator<GraphProto> {
    yield g;
    for (const n of g.node) for (const a of n.attribute) {
      if (a.g) yield* walk(a.g);
      for (const s of a.graphs) yield* walk(s);
    }
  };
  if (m.graph) yield* walk(m.graph);
}
const nodesOf = (m: ModelProto): NodeProto[] => [...graphsOf(m)].flatMap((g) => g.node);
const attrsOf = (m: ModelProto): AttributeProto[] => [...nodesOf(m).flatMap((n) => n.attribute), ...m.functions.flatMap((f) => f.node.flatMap((n) => n.attribute))];
const tensorsOf = (m: ModelProto): TensorProto[] => [
  ...[...graphsOf(m)].flatMap((g) => g.initializer),
  ...attrsOf(m).flatMap((a) => [...(a.t ? [a.t] : []), ...a.tensors]),
];

type Structural = (m: ModelProto, r: Rand) => boolean;

const HUGE_DIMS = [-1n, -(2n ** 40n), 2n ** 62n, 2n ** 53n + 1n, 2n ** 31n, 2n ** 63n - 1n, -(2n ** 63n)];

const structural: Record<string, Structural> = {
  'dims-negative': (m, r) => {
    const t = pickOr(r, tensorsOf(m));
    if (!t) return false;
    t.dims = t.dims.length ? t.dims.map((d, i) => (i === int(r, t.dims.length) ? -1n - BigInt(int(r, 3)) : d)) : [-1n];
    return true;
  },
  'dims-huge': (m, r) => {
    const t = pickOr(r, tensorsOf(m));
    if (!t) return false;
    if (r() < 0.5) t.dims = [...t.dims, pick(r, HUGE_DIMS)];
    else t.dims = t.dims.map(() => 2n ** 20n).concat([2n ** 20n, 2n ** 20n]);
    return true;
  },
  'dims-many': (m, r) => {
    const t = pickOr(r, tensorsOf(m));
    if (!t) return false;
    t.dims = [...t.dims, ...new Array<bigint>(50_000 + int(r, 50_000)).fill(1n)];
    return true;
  },
  dtype: (m, r) => {
    const t = pickOr(r, tensorsOf(m));
    if (!t) return false;
    t.dataType = pick(r, [0, 2, 3, 7, 8, 9, 10, 14, 15, 16, 17, 21, 22, 23, 25, 26, 27, 99, 999, -1]);
    return true;
  },
  'raw-length': (m, r) => {
    const t = pickOr(r, tensorsOf(m));
    if (!t) return false;
    if (t.rawData.length > 0) t.rawData = r() < 0.5 ? t.rawData.slice(0, int(r, t.rawData.length)) : new Uint8Array(t.rawData.length + 1 + int(r, 9));
    else if (t.floatData.length > 0) t.floatData = t.floatData.slice(1);
    else if (t.int64Data.length > 0) t.int64Data = [...t.int64Data, 5n];
    else t.rawData = new Uint8Array(3);
    return true;
  },
  'typed-and-raw': (m, r) => {
    // Both raw_data and a typed field: which one wins must not matter for safety.
    const t = pickOr(r, tensorsOf(m));
    if (!t) return false;
    t.floatData = [1, 2, 3];
    t.int64Data = [1n << 40n];
    return true;
  },
  'empty-name': (m, r) => {
    const g = pickOr(r, [...graphsOf(m)]);
    if (!g) return false; // a model without a graph
    const n = pickOr(r, g.node);
    const what = int(r, 5);
    if (what === 0 && n && n.input.length) n.input[int(r, n.input.length)] = '';
    else if (what === 1 && n && n.output.length) n.output[int(r, n.output.length)] = '';
    else if (what === 2 && g.initializer.length) g.initializer[int(r, g.initializer.length)]!.name = '';
    else if (what === 3 && g.input.length) g.input[int(r, g.input.length)]!.name = '';
    else if (g.output.length) g.output[int(r, g.output.length)]!.name = '';
    else return false;
    return true;
  },
  'unknown-op': (m, r) => {
    const n = pickOr(r, nodesOf(m));
    if (!n) return false;
    if (r() < 0.5) n.opType = pick(r, ['Frobnicate', '', 'ReduceMeanX', 'RmsNorm']);
    else n.domain = pick(r, ['com.unknown', 'rmsfuse', 'com.microsoft', '']);
    return true;
  },
  nest: (m, r) => {
    // Wrap the main graph into If nodes, `depth` levels deep.
    if (!m.graph) return false;
    const depth = pick(r, [2, 20, 34, 60, 100]);
    let inner = m.graph;
    const first = m.graph.input[0]?.name ?? 'nest_cond';
    for (let i = 0; i < depth; i++) {
      const outs = inner.output.map((o) => o.name);
      // The else branch is small (sharing `inner` would double the model at every level).
      const other = create(GraphProtoSchema, {
        name: `else_${i}`,
        node: outs.map((o) => create(NodeProtoSchema, { opType: 'Identity', input: [first], output: [o] })),
        output: inner.output,
      });
      const ifNode = create(NodeProtoSchema, {
        name: `nest_${i}`, opType: 'If', input: ['nest_cond'], output: outs,
        attribute: [
          create(AttributeProtoSchema, { name: 'then_branch', type: 5, g: inner }),
          create(AttributeProtoSchema, { name: 'else_branch', type: 5, g: other }),
        ],
      });
      inner = create(GraphProtoSchema, { name: `level_${i}`, node: [ifNode], output: inner.output, input: i === depth - 1 ? m.graph.input : [] });
    }
    m.graph = inner;
    m.graph.input.push(create(ValueInfoProtoSchema, { name: 'nest_cond', type: boolType() }));
    return true;
  },
  'attr-type': (m, r) => {
    const a = pickOr(r, attrsOf(m));
    if (!a) return false;
    a.type = pick(r, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 99]) as AttributeProto["type"];
    if (r() < 0.3) {
      a.ints = [];
      a.i = 0n;
    }
    return true;
  },
  'attr-value': (m, r) => {
    const a = pickOr(r, attrsOf(m));
    if (!a) return false;
    switch (int(r, 5)) {
      case 0: a.ints = [pick(r, [99n, -99n, 2n ** 62n, -(2n ** 63n)]), ...a.ints]; break;
      case 1: a.i = pick(r, [-1n, 7n, 2n ** 62n, -(2n ** 63n)]); break;
      case 2: a.f = pick(r, [NaN, Infinity, -Infinity, -0, 1e30, -1e-30]); break;
      case 3: a.s = new Uint8Array([0xff, 0xfe, 0x00]); break;
      default: a.ints = new Array<bigint>(100_000).fill(-1n);
    }
    return true;
  },
  fields: (m, r) => {
    switch (int(r, 4)) {
      case 0: m.irVersion = pick(r, [0n, -1n, 1n, 3n, 99n, 2n ** 62n]); break;
      case 1: for (const o of m.opsetImport) o.version = pick(r, [0n, 1n, 6n, 23n, 1000n, -1n]); break;
      case 2: m.opsetImport = []; break;
      default: if (m.graph) m.graph.output = []; break;
    }
    return true;
  },
  'drop-node': (m, r) => {
    const g = pickOr(r, [...graphsOf(m)]);
    if (!g) return false; // a model without a graph
    if (!g.node.length) return false;
    g.node.splice(int(r, g.node.length), 1);
    return true;
  },
  cycle: (m, r) => {
    const g = pickOr(r, [...graphsOf(m)]);
    if (!g) return false; // a model without a graph
    if (g.node.length < 2) return false;
    const i = int(r, g.node.length - 1);
    const j = i + 1 + int(r, g.node.length - i - 1);
    const a = g.node[i]!;
    const b = g.node[j]!;
    if (!a.input.length || !b.output.length) return false;
    a.input[int(r, a.input.length)] = b.output[0]!;
    return true;
  },
  'dup-output': (m, r) => {
    const g = pickOr(r, [...graphsOf(m)]);
    if (!g) return false; // a model without a graph
    if (g.node.length < 2) return false;
    const a = g.node[int(r, g.node.length)]!;
    const b = g.node[int(r, g.node.length)]!;
    if (a === b || !a.output.length || !b.output.length) return false;
    b.output[0] = a.output[0]!;
    return true;
  },
  external: (m, r) => {
    const t = pickOr(r, tensorsOf(m));
    if (!t) return false;
    t.dataLocation = 1;
    const loc = pick(r, ['../../etc/passwd', '/etc/passwd', 'missing.bin', '', '.', 'C:\\x.bin', 'a/../../b', '%00']);
    const entries: Record<string, string> = { location: loc };
    if (r() < 0.5) entries.offset = pick(r, ['0', '-1', '99999999999999999999', 'x', '1e3']);
    if (r() < 0.5) entries.length = pick(r, ['0', '4', '-4', '18446744073709551616', '4294967296']);
    t.externalData = Object.entries(entries).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
    return true;
  },
  'value-info': (m, r) => {
    const g = pickOr(r, [...graphsOf(m)]);
    if (!g) return false; // a model without a graph
    const vi = pickOr(r, [...g.input, ...g.output, ...g.valueInfo]);
    const tt = vi?.type?.value.case === 'tensorType' ? vi.type.value.value : undefined;
    if (!tt?.shape?.dim.length) return false;
    const d = tt.shape.dim[int(r, tt.shape.dim.length)]!;
    d.value = r() < 0.7 ? { case: 'dimValue', value: pick(r, HUGE_DIMS) } : { case: undefined };
    if (r() < 0.3) tt.elemType = pick(r, [0, 8, 99]);
    return true;
  },
  'many-nodes': (m, r) => {
    // A long chain of Identity nodes in front of an output: sizes the passes' time.
    const g = m.graph;
    if (!g?.output.length) return false;
    const out = g.output[0]!.name;
    const producer = g.node.find((n) => n.output.includes(out));
    if (!producer) return false;
    const n = 5_000 + int(r, 10_000);
    let prev = `${out}__chain_start`;
    producer.output[producer.output.indexOf(out)] = prev;
    for (let i = 0; i < n; i++) {
      const next = i === n - 1 ? out : `${out}__chain_${i}`;
      g.node.push(create(NodeProtoSchema, { opType: 'Identity', input: [prev], output: [next], name: `chain_${i}` }));
      prev = next;
    }
    return true;
  },
  'many-empty-nodes': (m, r) => {
    // Millions of empty NodeProtos cost few bytes on disk and much heap: the decode budget.
    const g = m.graph;
    if (!g) return false;
    const empty = create(NodeProtoSchema, {});
    const n = 100_000 + int(r, 200_000);
    for (let i = 0; i < n; i++) g.node.push(empty);
    return true;
  },
  'constant-swap': (m, r) => {
    const n = pickOr(r, nodesOf(m).filter((x) => x.opType === 'Constant'));
    if (!n) return false;
    const t = create(TensorProtoSchema, pick(r, [
      { dataType: 7, dims: [2n], int64Data: [1n, 2n] },
      { dataType: 1, dims: [0n] },
      { dataType: 10, dims: [], int32Data: [0x7c00] },
      { dataType: 1, dims: [], floatData: [NaN] },
      { dataType: 8, dims: [1n], stringData: [new Uint8Array([65])] },
    ]));
    n.attribute = [create(AttributeProtoSchema, { name: pick(r, ['value', 'value_float', 'sparse_value', 'bogus']), type: 4, t })];
    return true;
  },
  'swap-inputs': (m, r) => {
    const n = pickOr(r, nodesOf(m).filter((x) => x.input.length >= 2));
    if (!n) return false;
    const i = int(r, n.input.length);
    const j = int(r, n.input.length);
    [n.input[i], n.input[j]] = [n.input[j]!, n.input[i]!];
    return true;
  },
};

function pickOr<T>(r: Rand, xs: readonly T[]): T | undefined {
  return xs.length ? xs[int(r, xs.length)] : undefined;
}

function boolType() {
  return create(TypeProtoSchema, { value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType: 9 }) } });
}

export const BYTE_MUTATORS = { bitflip, truncate, splice, overwrite, 'huge-varint': hugeVarint } as const;
export const MUTATOR_NAMES = [...Object.keys(BYTE_MUTATORS), ...Object.keys(structural)] as const;
/** Mutators whose inputs are big on purpose (slow to build and load): fewer of them in CI. */
export const HEAVY = new Set(['many-nodes', 'many-empty-nodes', 'dims-many']);

/** Applies one named mutation with its own seed. Structural ones fall back to a bit flip if they cannot apply. */
export function mutate(bytes: Uint8Array, name: string, seed: number): Uint8Array {
  const r = rng(seed);
  const byte = (BYTE_MUTATORS as Record<string, (b: Uint8Array, r: Rand) => Uint8Array>)[name];
  if (byte) return byte(bytes, r);
  const s = structural[name];
  if (!s) throw new Error(`unknown mutator ${name}`);
  const m = decode(bytes);
  if (!m || !s(m, r)) return bitflip(bytes, r);
  return encode(m);
}
