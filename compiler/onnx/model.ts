/**
 * Loading and saving ONNX models without losing anything.
 *
 * The wire library is `onnx-buf` (the current ONNX schema compiled for @bufbuild/protobuf):
 * it keeps every field of IR 11 and unknown fields, so a model decoded and re-encoded with no
 * change comes back byte-identical. rmsfuse edits the decoded messages in place; nothing is
 * converted into a lossy intermediate form and back.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto } from 'onnx-buf';
import { RmsfuseError } from '../errors.js';
import { collectExternalRefs, validateExternalRefs, type ExternalRef } from './external.js';
import { checkDecodeBudget, checkFileSize, checkModelLimits, resolveLimits, type Limits } from './limits.js';

/** Nesting limit of the decoder; a graph nested ~33 If/Loop levels deep already reaches 100. */
export const DEFAULT_RECURSION_LIMIT = 100;

export interface LoadOptions {
  /** Message nesting depth the decoder accepts (default 100). */
  recursionLimit?: number;
  /** Memory limits (limits.ts); default from RMSFUSE_MAX_BYTES / RMSFUSE_MAX_DECODED_BYTES. */
  limits?: Partial<Limits>;
}

export interface LoadedModel {
  proto: ModelProto;
  /** Absolute path of the .onnx file, or undefined for a model decoded from bytes. */
  path?: string;
  /** Folder that external data locations are relative to. */
  dir: string;
  /** Every external-data reference of the model, validated (inside dir, within its file). */
  external: ExternalRef[];
}

export function decodeModel(bytes: Uint8Array, what = 'model', options: LoadOptions = {}): ModelProto {
  if (bytes.length === 0) throw new RmsfuseError(`${what} is empty (0 bytes): not an ONNX model`);
  const limits = resolveLimits(options.limits);
  checkDecodeBudget(bytes, what, limits, options.recursionLimit ?? DEFAULT_RECURSION_LIMIT);
  let proto: ModelProto;
  try {
    proto = fromBinary(ModelProtoSchema, bytes, {
      readUnknownFields: true,
      recursionLimit: options.recursionLimit ?? DEFAULT_RECURSION_LIMIT,
    });
  } catch (e) {
    const reason = (e as Error).message;
    if (/recursion depth/.test(reason)) {
      throw new RmsfuseError(
        `${what} is nested too deeply (more than ${options.recursionLimit ?? DEFAULT_RECURSION_LIMIT} message levels, ` +
          `e.g. subgraphs inside subgraphs); refusing to decode it`,
      );
    }
    throw new RmsfuseError(`${what} is not a valid ONNX model (truncated or not protobuf): ${reason}`);
  }
  if (!proto.graph) throw new RmsfuseError(`${what} is not an ONNX model: it has no graph`);
  if (proto.irVersion <= 0n) throw new RmsfuseError(`${what} is not an ONNX model: ir_version is ${proto.irVersion}`);
  if (proto.opsetImport.length === 0 && proto.irVersion >= 3n) {
    // Required since IR 3; missing in practice when the file was cut off after the graph.
    throw new RmsfuseError(`${what} is not a complete ONNX model: it has no opset_import (truncated?)`);
  }
  checkModelLimits(proto);
  return proto;
}

export function encodeModel(proto: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, proto, { writeUnknownFields: true });
}

/** Reads and decodes IN; validates every external-data reference without reading the weights. */
export function loadModelFile(file: string, options: LoadOptions = {}): LoadedModel {
  const abs = path.resolve(file);
  let bytes: Uint8Array;
  try {
    const st = fs.statSync(abs);
    if (st.isDirectory()) throw new RmsfuseError(`${file} is a directory, not an ONNX model`);
    checkFileSize(st.size, file, resolveLimits(options.limits));
    bytes = fs.readFileSync(abs);
  } catch (e) {
    if (e instanceof RmsfuseError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new RmsfuseError(code === 'ENOENT' ? `${file}: no such file` : `cannot read ${file}: ${(e as Error).message}`);
  }
  const proto = decodeModel(bytes, file, options);
  const dir = path.dirname(abs);
  const external = collectExternalRefs(proto);
  validateExternalRefs(external, dir);
  return { proto, path: abs, dir, external };
}

export function loadModelBytes(bytes: Uint8Array, dir = process.cwd(), options: LoadOptions = {}): LoadedModel {
  const proto = decodeModel(bytes, 'model', options);
  const external = collectExternalRefs(proto);
  validateExternalRefs(external, dir);
  return { proto, dir, external };
}

/**
 * Writes bytes to `file` atomically: a temp file in the same folder, then rename. A reader
 * (or a crash) never sees a half-written model, and IN == OUT never destroys IN before the
 * new model is complete.
 */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const abs = path.resolve(file);
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.${process.pid}.${Date.now()}.tmp`);
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, abs);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new RmsfuseError(`cannot write ${file}: ${(e as Error).message}`);
  }
}
