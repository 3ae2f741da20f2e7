/**
 * Saving a model next to its external data (SPEC 6, issue "foundation" item 3).
 *
 * - OUT in the model's own folder: the references stay as they are (also when OUT == IN, since
 *   rmsfuse never rewrites data files).
 * - OUT in another folder: each referenced data file is copied beside OUT under the same
 *   relative location (streamed in chunks, holes of sparse files kept, progress reported through
 *   a callback), unless a different file of that name is already there: then nothing is written.
 * - Never: a model written whose weights point nowhere, or OUT overwriting one of the data files.
 *
 * Every check runs before the first byte is written; data files are copied (temp + rename)
 * before the model, and the model is written last (temp + rename).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelProto } from 'onnx-buf';
import { RmsfuseError } from '../errors.js';
import { collectExternalRefs, resolveLocation } from './external.js';
import { encodeModel, writeFileAtomic } from './model.js';

export interface CopyProgress {
  /** The data file being copied, as the model names it. */
  location: string;
  copiedBytes: number;
  totalBytes: number;
  /** True once for each file when it is complete. */
  done: boolean;
}

export interface SaveOptions {
  /**
   * What to do with external data when OUT is not in the model's folder: 'copy' the data files
   * beside OUT (default) or 'refuse' with an error.
   */
  externalData?: 'copy' | 'refuse';
  /** Called while data files are copied (at most every 64 MiB and when a file completes). */
  onProgress?: (p: CopyProgress) => void;
}

export type ExternalFileAction =
  /** OUT is in the model's folder: the reference is kept as it is. */
  | 'kept'
  /** Copied beside OUT. */
  | 'copied'
  /** A file with the same content (or the very same file) was already beside OUT. */
  | 'identical';

export interface SaveResult {
  /** Absolute path of the written model. */
  path: string;
  /** Size of the written .onnx file. */
  bytes: number;
  externalFiles: { location: string; bytes: number; action: ExternalFileAction }[];
}

const CHUNK = 8 << 20;
const PROGRESS_STEP = 64 << 20;

/**
 * Writes `proto` to `out`. `sourceDir` is the folder its external-data locations are relative
 * to now (the input model's folder).
 */
export function saveModelFile(proto: ModelProto, sourceDir: string, out: string, options: SaveOptions = {}): SaveResult {
  const outAbs = path.resolve(out);
  const outDir = path.dirname(outAbs);
  checkOutputPath(out, outAbs, outDir);

  const refs = collectExternalRefs(proto);
  const locations = [...new Set(refs.map((r) => r.location))];
  const realSourceDir = realDir(sourceDir, 'model folder');
  const realOutDir = realDir(outDir, 'output folder');
  const realOut = path.join(realOutDir, path.basename(outAbs));

  const sources = new Map<string, { file: string; size: number }>();
  for (const location of locations) {
    const tensor = refs.find((r) => r.location === location)!.tensor.name;
    const file = resolveLocation(tensor, location, sourceDir, realSourceDir);
    sources.set(location, { file, size: fs.statSync(file).size });
  }

  const plan: { location: string; src: string; dest: string; size: number; action: ExternalFileAction }[] = [];
  if (locations.length > 0 && realSourceDir === realOutDir) {
    for (const [location, s] of sources) {
      if (s.file === realOut) {
        throw new RmsfuseError(`refusing to write ${out}: it is the external data file '${location}' that the model's weights live in`);
      }
      plan.push({ location, src: s.file, dest: s.file, size: s.size, action: 'kept' });
    }
  } else if (locations.length > 0) {
    if (options.externalData === 'refuse') {
      throw new RmsfuseError(
        `${out} is not in the input model's folder (${sourceDir}) and the model has external data ` +
          `(${locations.map((l) => `'${l}'`).join(', ')}); write OUT into that folder or allow copying the data files`,
      );
    }
    for (const [location, s] of sources) {
      const dest = path.resolve(realOutDir, location);
      if (dest === realOut) {
        throw new RmsfuseError(`refusing to write ${out}: the model's external data file '${location}' must be copied to that very path`);
      }
      plan.push({ location, src: s.file, dest, size: s.size, action: destinationAction(location, s.file, s.size, dest, realOutDir, outDir) });
    }
  }

  const created: string[] = [];
  try {
    for (const p of plan) {
      if (p.action !== 'copied') continue;
      fs.mkdirSync(path.dirname(p.dest), { recursive: true });
      copyFileAtomic(p.src, p.dest, p.size, (copiedBytes, done) =>
        options.onProgress?.({ location: p.location, copiedBytes, totalBytes: p.size, done }),
      );
      created.push(p.dest);
    }
    const bytes = encodeModel(proto);
    writeFileAtomic(outAbs, bytes);
    return {
      path: outAbs,
      bytes: bytes.length,
      externalFiles: plan.map((p) => ({ location: p.location, bytes: p.size, action: p.action })),
    };
  } catch (e) {
    // The model was not written: remove the data files this call created, leave no orphans.
    for (const f of created) fs.rmSync(f, { force: true });
    if (e instanceof RmsfuseError) throw e;
    throw new RmsfuseError(`cannot write ${out}: ${(e as Error).message}`);
  }
}

function checkOutputPath(out: string, outAbs: string, outDir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(outDir);
  } catch {
    throw new RmsfuseError(`cannot write ${out}: folder ${outDir} does not exist`);
  }
  if (!st.isDirectory()) throw new RmsfuseError(`cannot write ${out}: ${outDir} is not a folder`);
  if (fs.existsSync(outAbs) && fs.statSync(outAbs).isDirectory()) {
    throw new RmsfuseError(`cannot write ${out}: it is a folder; give a file name for the output model`);
  }
}

function realDir(dir: string, what: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    throw new RmsfuseError(`${what} ${dir} does not exist`);
  }
}

/** Decides what to do with one data file at its destination; throws if it cannot be placed there. */
function destinationAction(location: string, src: string, size: number, dest: string, realOutDir: string, outDir: string): ExternalFileAction {
  // The destination's folder must resolve inside OUT's folder, or the saved model would be
  // refused when loaded (a location reaching outside through a symbolic link).
  const existingParent = nearestExisting(path.dirname(dest));
  const realParent = fs.realpathSync(existingParent);
  if (realParent !== realOutDir && !realParent.startsWith(realOutDir + path.sep)) {
    throw new RmsfuseError(
      `cannot place external data file '${location}' beside the output: ${existingParent} leads outside ${outDir} (symbolic link)`,
    );
  }
  if (!fs.existsSync(dest)) {
    const lst = fs.lstatSync(dest, { throwIfNoEntry: false });
    if (lst?.isSymbolicLink()) throw new RmsfuseError(`cannot copy external data file '${location}' to ${outDir}: a dangling symbolic link of that name is there`);
    return 'copied';
  }
  const real = fs.realpathSync(dest);
  if (real === src) return 'identical';
  if (!real.startsWith(realOutDir + path.sep)) {
    throw new RmsfuseError(`cannot use external data file '${location}' in ${outDir}: it is a symbolic link to a file outside that folder`);
  }
  const st = fs.statSync(real);
  if (!st.isFile()) throw new RmsfuseError(`cannot copy external data file '${location}' to ${outDir}: something that is not a file has that name there`);
  if (st.size === size && sameContent(src, real, size)) return 'identical';
  throw new RmsfuseError(
    `external data file '${location}' already exists in ${outDir} with different content; refusing to overwrite it ` +
      `(remove it, or write the output into another folder)`,
  );
}

function nearestExisting(dir: string): string {
  let d = dir;
  while (!fs.existsSync(d)) d = path.dirname(d);
  return d;
}

function sameContent(a: string, b: string, size: number): boolean {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  const ba = Buffer.allocUnsafe(CHUNK);
  const bb = Buffer.allocUnsafe(CHUNK);
  try {
    for (let pos = 0; pos < size; ) {
      const n = Math.min(CHUNK, size - pos);
      readFully(fa, ba, n, pos);
      readFully(fb, bb, n, pos);
      if (ba.compare(bb, 0, n, 0, n) !== 0) return false;
      pos += n;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function readFully(fd: number, buf: Buffer, n: number, pos: number): void {
  for (let done = 0; done < n; ) {
    const got = fs.readSync(fd, buf, done, n - done, pos + done);
    if (got === 0) throw new Error('file ended early while reading');
    done += got;
  }
}

let zeros: Buffer | undefined;
const isZero = (buf: Buffer, n: number): boolean => buf.compare((zeros ??= Buffer.alloc(CHUNK)), 0, n, 0, n) === 0;

/**
 * Copies `src` to `dest` through a temp file in dest's folder, in 8 MiB chunks (memory stays
 * flat for any size). All-zero chunks are skipped, so holes of a sparse file stay holes.
 */
export function copyFileAtomic(src: string, dest: string, size: number, progress?: (copiedBytes: number, done: boolean) => void): void {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.${Date.now()}.tmp`);
  const buf = Buffer.allocUnsafe(CHUNK);
  const fin = fs.openSync(src, 'r');
  let fout: number | undefined;
  try {
    fout = fs.openSync(tmp, 'wx');
    let lastReport = 0;
    for (let pos = 0; pos < size; ) {
      const n = Math.min(CHUNK, size - pos);
      readFully(fin, buf, n, pos);
      if (!isZero(buf, n)) {
        for (let done = 0; done < n; ) done += fs.writeSync(fout, buf, done, n - done, pos + done);
      }
      pos += n;
      if (progress && pos - lastReport >= PROGRESS_STEP && pos < size) {
        progress(pos, false);
        lastReport = pos;
      }
    }
    fs.ftruncateSync(fout, size);
    fs.closeSync(fout);
    fout = undefined;
    fs.renameSync(tmp, dest);
    progress?.(size, true);
  } catch (e) {
    if (fout !== undefined) fs.closeSync(fout);
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    fs.closeSync(fin);
  }
}
