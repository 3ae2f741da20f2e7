/**
 * External data (SPEC 6): weights of large models live in side files. rmsfuse reads the
 * references, checks them, and reads bytes only for the few small tensors a pass asks for.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GraphProto, ModelProto, TensorProto } from 'onnx-buf';
import { RmsfuseError } from '../errors.js';
import { elementBits } from './dtype.js';

/** TensorProto.DataLocation.EXTERNAL */
const EXTERNAL = 1;

export interface ExternalRef {
  tensor: TensorProto;
  location: string;
  offset: number;
  /** Bytes; from the `length` key or, where absent, from dims and dtype. */
  length: number;
}

export const isExternal = (t: TensorProto): boolean => t.dataLocation === EXTERNAL;

/** Every tensor of the model (initializers, Constant attributes, subgraphs, functions, training info). */
export function allTensors(model: ModelProto): TensorProto[] {
  const out: TensorProto[] = [];
  forEachTensor(model, (t) => out.push(t));
  return out;
}

/**
 * Calls `visit` for every tensor of the model. A plain recursive walk (no generators): it runs
 * once per load and once per save over every node, so it is kept cheap also in cold code.
 */
export function forEachTensor(model: ModelProto, visit: (t: TensorProto) => void): void {
  if (model.graph) graphTensors(model.graph, visit);
  for (const ti of model.trainingInfo) {
    if (ti.initialization) graphTensors(ti.initialization, visit);
    if (ti.algorithm) graphTensors(ti.algorithm, visit);
  }
  for (const f of model.functions) for (const n of f.node) attributeTensors(n.attribute, visit);
}

function graphTensors(g: GraphProto, visit: (t: TensorProto) => void): void {
  for (const t of g.initializer) visit(t);
  for (const s of g.sparseInitializer) {
    if (s.values) visit(s.values);
    if (s.indices) visit(s.indices);
  }
  for (const n of g.node) if (n.attribute.length > 0) attributeTensors(n.attribute, visit);
}

function attributeTensors(attrs: GraphProto['node'][number]['attribute'], visit: (t: TensorProto) => void): void {
  for (const a of attrs) {
    if (a.t) visit(a.t);
    for (const t of a.tensors) visit(t);
    if (a.g) graphTensors(a.g, visit);
    for (const g of a.graphs) graphTensors(g, visit);
  }
}

export function tensorByteLength(t: TensorProto): number | undefined {
  const bits = elementBits(t.dataType);
  if (bits === undefined) return undefined;
  let n = 1;
  for (const d of t.dims) n *= Number(d);
  return Math.ceil((n * bits) / 8);
}

export function collectExternalRefs(model: ModelProto): ExternalRef[] {
  const external: TensorProto[] = [];
  forEachTensor(model, (t) => {
    if (t.dataLocation === EXTERNAL) external.push(t);
  });
  const refs: ExternalRef[] = [];
  for (const t of external) {
    const kv = new Map(t.externalData.map((e) => [e.key, e.value]));
    const location = kv.get('location');
    if (!location) throw new RmsfuseError(`tensor '${t.name}' is marked external but has no location`);
    const offset = parseIntKey(t, 'offset', kv.get('offset') ?? '0');
    const declared = kv.get('length');
    const length = declared !== undefined ? parseIntKey(t, 'length', declared) : tensorByteLength(t);
    if (length === undefined) throw new RmsfuseError(`tensor '${t.name}': external data without a length and of a type whose size is unknown`);
    refs.push({ tensor: t, location, offset, length });
  }
  return refs;
}

function parseIntKey(t: TensorProto, key: string, v: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new RmsfuseError(`tensor '${t.name}': external data ${key} '${v}' is not a non-negative integer`);
  }
  return Number(v);
}

/**
 * Refuses a location that is absolute, escapes the model's folder (also through a symlink),
 * does not exist, or whose offset+length runs past the end of the file.
 */
export function validateExternalRefs(refs: ExternalRef[], dir: string): void {
  if (refs.length === 0) return;
  const realDir = fs.realpathSync(dir);
  // Thousands of tensors share a few files: resolve and stat each location once.
  const sizes = new Map<string, number>();
  for (const r of refs) {
    let size = sizes.get(r.location);
    if (size === undefined) {
      size = fs.statSync(resolveLocation(r.tensor.name, r.location, dir, realDir)).size;
      sizes.set(r.location, size);
    }
    if (r.offset + r.length > size) {
      throw new RmsfuseError(
        `tensor '${r.tensor.name}': external data '${r.location}' offset ${r.offset} + length ${r.length} ` +
          `runs past the end of the file (${size} bytes)`,
      );
    }
  }
}

/** The real path of an external-data file, after checking it stays inside the model's folder. */
export function resolveLocation(tensorName: string, location: string, dir: string, realDir = fs.realpathSync(dir)): string {
  if (path.isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location)) {
    throw new RmsfuseError(`tensor '${tensorName}': external data location '${location}' is absolute; it must be relative to the model's folder`);
  }
  const joined = path.resolve(dir, location);
  if (!isInside(joined, path.resolve(dir))) {
    throw new RmsfuseError(`tensor '${tensorName}': external data location '${location}' escapes the model's folder`);
  }
  let real: string;
  try {
    real = fs.realpathSync(joined);
  } catch {
    throw new RmsfuseError(`tensor '${tensorName}': external data file '${location}' does not exist`);
  }
  if (!isInside(real, realDir)) {
    throw new RmsfuseError(`tensor '${tensorName}': external data location '${location}' points outside the model's folder (through a symbolic link)`);
  }
  if (!fs.statSync(real).isFile()) throw new RmsfuseError(`tensor '${tensorName}': external data location '${location}' is not a file`);
  return real;
}

const isInside = (p: string, dir: string): boolean => {
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
};

/** Reads exactly one tensor's external bytes (a small constant such as epsilon). */
export function readExternalBytes(ref: ExternalRef, dir: string): Uint8Array {
  const file = resolveLocation(ref.tensor.name, ref.location, dir);
  const buf = Buffer.alloc(ref.length);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < ref.length) {
      const n = fs.readSync(fd, buf, done, ref.length - done, ref.offset + done);
      if (n === 0) throw new RmsfuseError(`tensor '${ref.tensor.name}': external data ended early`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}
