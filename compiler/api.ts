/**
 * The programmatic API (SPEC section 6): the same steps the CLI runs, as functions.
 *
 *   optimize(IN, OUT) = loadModel -> optimizeModel -> saveModel -> (emit) -> (report)
 *
 * Every user error (bad model, bad option, refused output) is thrown as an RmsfuseError whose
 * `exitCode` is 1 (model/environment) or 2 (usage); anything else is a bug in rmsfuse.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { clone } from '@bufbuild/protobuf';
import { ModelProtoSchema, type TensorProto } from 'onnx-buf';
import { defaultPasses, type OutputFormat } from '../passes/index.js';
import type { Manifest } from '../codegen/manifest.js';
import { RmsfuseError } from './errors.js';
import { Model } from './ir/graph.js';
import type { Dim } from './ir/types.js';
import { typeFromValueInfo } from './ir/types.js';
import { dtypeName } from './onnx/dtype.js';
import { allTensors, isExternal, tensorByteLength } from './onnx/external.js';
import { loadModelBytes, loadModelFile, type LoadOptions } from './onnx/model.js';
import { saveModelFile, type SaveOptions, type SaveResult } from './onnx/save.js';
import { isTarget, TARGETS, type Target } from './op/target.js';
import { runPasses, type FusedSite, type Pass, type PassContext, type Remark, type Report } from './pass-manager.js';
import { reportKind, writeReport } from './report.js';

export type { OutputFormat } from '../passes/index.js';
export const FORMATS: readonly OutputFormat[] = ['rmsfuse', 'ort', 'onnx23'];

// ---------------------------------------------------------------------------------------------
// Load and save

export interface LoadModelOptions extends LoadOptions {
  /** Bytes only: the folder that external-data locations are relative to (default: cwd). */
  dir?: string;
  /** Check the graph on load: producers, cycles, dangling inputs (default true). */
  validate?: boolean;
}

/**
 * Loads a model from a path or from bytes. External-data references are checked (inside the
 * model's folder, within their file) but no weights are read.
 */
export function loadModel(source: string | Uint8Array, options: LoadModelOptions = {}): Model {
  const loaded = typeof source === 'string' ? loadModelFile(source, options) : loadModelBytes(source, options.dir, options);
  const model = new Model(loaded);
  if (options.validate !== false) model.graph.validate();
  return model;
}

/**
 * Writes the model to `out` atomically. External data: kept when `out` is in the model's
 * folder, else copied beside `out` (or refused with `externalData: 'refuse'`).
 */
export function saveModel(model: Model, out: string, options: SaveOptions = {}): SaveResult {
  return saveModelFile(model.proto, model.loaded.dir, out, options);
}

// ---------------------------------------------------------------------------------------------
// Optimize

export interface OptimizeModelOptions {
  /** Generate for this target (only sites it supports are fused); default: none, every valid site. */
  target?: string;
  /** Output format of fused nodes (default 'rmsfuse'). */
  format?: OutputFormat;
  /**
   * Passes to run; default `defaultPasses({ format })`, filtered by the environment variable
   * RMSFUSE_PASSES ('none' = no pass, or a comma-separated list of pass names).
   */
  passes?: Pass[];
  /** Per-rule match statistics and best partial matches (as RMSFUSE_DEBUG). */
  debug?: boolean;
  /** Node names whose best partial match is explained. */
  explain?: string[];
  /** Where debug lines go (default: stderr). */
  log?: (line: string) => void;
}

/** Runs the fusion passes over the model in place and returns what they did. */
export function optimizeModel(model: Model, options: OptimizeModelOptions = {}): Report {
  const target = checkTarget(options.target);
  const format = checkFormat(options.format);
  checkFormatFits(model, format);
  const report: Report = { target: target ?? 'none', format, fused: [], remarks: [], passes: [] };
  const t0 = performance.now();
  const passes = options.passes ?? selectPasses(format);
  // Types are for the passes; with none to run (RMSFUSE_PASSES=none) loading and saving is all.
  if (passes.length > 0) model.inferTypes();
  const ctx: PassContext = {
    model,
    target,
    report,
    debug: options.debug ?? !!process.env.RMSFUSE_DEBUG,
    explain: new Set(options.explain ?? []),
    log: options.log ?? ((line) => void process.stderr.write(line + '\n')),
  };
  runPasses(passes, ctx);
  report.totalMs = performance.now() - t0;
  return report;
}

/** The default passes, narrowed by RMSFUSE_PASSES ('none', or names separated by commas). */
export function selectPasses(format: OutputFormat, selection = process.env.RMSFUSE_PASSES): Pass[] {
  const all = defaultPasses({ format });
  if (selection === undefined || selection.trim() === '' || selection.trim() === 'all') return all;
  if (selection.trim() === 'none') return [];
  const names = selection.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!all.some((p) => p.name === n)) {
      throw new RmsfuseError(
        `RMSFUSE_PASSES names an unknown pass '${n}' (passes: ${all.map((p) => p.name).join(', ') || 'none'}; or 'none', 'all')`,
        2,
      );
    }
  }
  return all.filter((p) => names.includes(p.name));
}

export interface OptimizeOptions extends OptimizeModelOptions, SaveOptions, LoadOptions {
  /** Write the report here: `.json` (machine-readable) or `.md` (for people). */
  report?: string;
  /** Emit kernels and launchers for the fused nodes into this folder (needs `target`). */
  emit?: string;
  /** Called as each step starts (the CLI's progress display); `nodes` for 'passes': nodes in all graphs. */
  onPhase?: (phase: OptimizePhase, detail: { nodes?: number }) => void;
}

export type OptimizePhase = 'load' | 'validate' | 'passes' | 'save' | 'emit';

export interface PhaseTimings {
  /** Read, decode, external-data checks. */
  loadMs: number;
  /** Graph IR and validation. */
  validateMs: number;
  /** Type inference and passes. */
  optimizeMs: number;
  /** Encode and write (and copy data files). */
  saveMs: number;
  emitMs?: number;
  totalMs: number;
  /** CPU time (user + system, all threads) the whole call used; robust to a busy machine. */
  cpuMs: number;
}

export interface OptimizeReport extends Report {
  timings: PhaseTimings;
  /** Data files of the output model and what was done with each. */
  externalData: SaveResult['externalFiles'];
}

/**
 * optimize(IN, OUT): load, validate, fuse, save atomically, emit kernels if asked, write the
 * report if asked. IN is never modified (also when OUT == IN); on any error OUT is not created.
 */
export async function optimize(input: string, output: string, options: OptimizeOptions = {}): Promise<OptimizeReport> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  // Usage problems first, before anything is read or written.
  const target = checkTarget(options.target);
  const format = checkFormat(options.format);
  if (options.emit !== undefined && target === undefined) {
    throw new RmsfuseError(`--emit needs --target (one of: ${TARGETS.join(', ')})`, 2);
  }
  if (options.report !== undefined) {
    reportKind(options.report);
    const folder = path.dirname(path.resolve(options.report));
    if (!fs.existsSync(folder)) throw new RmsfuseError(`cannot write the report ${options.report}: folder ${folder} does not exist`);
  }

  const phase = options.onPhase ?? (() => {});
  phase('load', {});
  const loaded = loadModelFile(input, options);
  const t1 = performance.now();
  phase('validate', {});
  const model = new Model(loaded);
  model.graph.validate();
  const t2 = performance.now();
  if (options.onPhase) phase('passes', { nodes: countNodes(model) });
  const base = optimizeModel(model, { ...options, target, format });
  const t3 = performance.now();
  phase('save', {});
  const saved = saveModel(model, output, options);
  const t4 = performance.now();

  let manifest: Manifest | undefined;
  if (options.emit !== undefined) {
    phase('emit', {});
    model.inferTypes(); // no-op where the passes already did it; the emitter reads shapes
    // Loaded only when asked for: code generators are heavy (ts-morph).
    const { emitKernels } = await import('./emit.js');
    manifest = await emitKernels(model, options.emit, target);
  }
  const t5 = performance.now();

  const report: OptimizeReport = {
    ...base,
    input: path.resolve(input),
    output: saved.path,
    timings: {
      loadMs: t1 - t0,
      validateMs: t2 - t1,
      optimizeMs: t3 - t2,
      saveMs: t4 - t3,
      ...(manifest ? { emitMs: t5 - t4 } : {}),
      totalMs: t5 - t0,
      cpuMs: cpuMs(process.cpuUsage(cpu0)),
    },
    externalData: saved.externalFiles,
  };
  report.totalMs = report.timings.totalMs;
  if (manifest) {
    report.emitted = {
      dir: path.resolve(options.emit!),
      kernels: Object.keys(manifest.kernels).length,
      nodes: Object.fromEntries(Object.entries(manifest.nodes).map(([node, n]) => [node, n.kernel])),
    };
  }
  if (options.report !== undefined) writeReport(report, options.report);
  return report;
}

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

function countNodes(model: Model): number {
  let n = 0;
  for (const g of model.graph.allGraphs()) n += g.nodes.length;
  return n;
}

function checkTarget(target: string | undefined): Target {
  if (target === undefined || target === '' || target === 'none') return undefined;
  if (!isTarget(target)) throw new RmsfuseError(`unknown target '${target}' (expected one of: ${TARGETS.join(', ')})`, 2);
  return target;
}

function checkFormat(format: string | undefined): OutputFormat {
  if (format === undefined) return 'rmsfuse';
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new RmsfuseError(`unknown format '${format}' (expected one of: ${FORMATS.join(', ')})`, 2);
  }
  return format as OutputFormat;
}

function checkFormatFits(model: Model, format: OutputFormat): void {
  if (format !== 'onnx23') return;
  const opset = model.opset('');
  if (opset === undefined || opset < 23) {
    throw new RmsfuseError(
      `--format onnx23 writes ONNX RMSNormalization, which needs opset 23, but this model imports ` +
        `${opset === undefined ? 'no default ONNX opset' : `opset ${opset}`}; use --format rmsfuse or ort, or convert the model to opset 23 first`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Report (rendering lives in report.ts)

export { writeReport, renderMarkdownReport, renderJsonReport } from './report.js';

// ---------------------------------------------------------------------------------------------
// Inspect

export interface TensorInfo {
  name: string;
  /** dtype name (float32, float16, ...) or the kind of a non-tensor type (sequence, map, ...). */
  dtype: string;
  /** null where a dim (or the whole shape) is unknown; strings are symbolic dims. */
  shape: (number | string | null)[] | null;
}

export interface InspectResult {
  path?: string;
  irVersion: number;
  producer: { name: string; version: string };
  opsets: { domain: string; version: number }[];
  graph: { name: string; nodes: number; nodesWithSubgraphs: number; subgraphs: number };
  /** Node count per op type (domain-qualified outside the default domain), subgraphs included. */
  ops: Record<string, number>;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  initializers: { count: number; inlineBytes: number; externalCount: number; externalBytes: number };
  externalData: { files: { location: string; tensors: number; bytes: number }[]; tensors: number; bytes: number };
  functions: { domain: string; name: string; overload: string }[];
  metadata: Record<string, string>;
  /** With `fusion`: what the passes would fuse and why other candidates would not. */
  fusion?: InspectFusion;
}

export interface InspectFusion {
  target: string;
  format: string;
  /** The sites that would be fused (names are those the fused nodes would get). */
  fused: FusedSite[];
  /** Near misses: candidates that would not be fused, and why. */
  remarks: Remark[];
  /** Time the passes took. */
  ms: number;
  /** Set where the passes stopped with a user error (e.g. a limit); the rest of the summary stands. */
  error?: string;
}

export interface InspectOptions {
  /** Also run the fusion passes (with these options) and report what they would fuse; nothing is written. */
  fusion?: boolean | Pick<OptimizeModelOptions, 'target' | 'format' | 'passes' | 'debug' | 'explain' | 'log'>;
  /**
   * Run the passes on `model` itself, which they change (for callers done with it), instead of
   * on a copy. The copy duplicates inline weights in memory.
   */
  consume?: boolean;
}

/**
 * A summary of a model: op histogram, opsets, IR version, inputs/outputs, external data; with
 * `fusion`, also the sites the passes would fuse and the near misses (on a copy unless `consume`).
 */
export function inspectModel(model: Model, options: InspectOptions = {}): InspectResult {
  const info = summarize(model);
  if (!options.fusion) return info;
  const fusion = options.fusion === true ? {} : options.fusion;
  const work = options.consume ? model : copyModel(model);
  try {
    const report = optimizeModel(work, fusion);
    return { ...info, fusion: { target: report.target, format: report.format, fused: report.fused, remarks: report.remarks, ms: report.totalMs ?? 0 } };
  } catch (e) {
    if (!(e instanceof RmsfuseError) || e.exitCode === 2) throw e; // bugs and usage errors are not the model's
    return { ...info, fusion: { target: fusion.target ?? 'none', format: fusion.format ?? 'rmsfuse', fused: [], remarks: [], ms: 0, error: e.message } };
  }
}

/** A deep copy whose external-data references point at the copy's tensors. */
function copyModel(model: Model): Model {
  const proto = clone(ModelProtoSchema, model.proto);
  const twin = new Map<TensorProto, TensorProto>();
  const copies = allTensors(proto);
  allTensors(model.proto).forEach((t, i) => twin.set(t, copies[i]!));
  const external = model.loaded.external.map((r) => ({ ...r, tensor: twin.get(r.tensor) ?? r.tensor }));
  return new Model({ ...model.loaded, proto, external });
}

function summarize(model: Model): InspectResult {
  const p = model.proto;
  const g = model.graph;
  const ops: Record<string, number> = {};
  let total = 0;
  let subgraphs = -1;
  for (const sub of g.allGraphs()) {
    subgraphs++;
    for (const n of sub.nodes) {
      total++;
      const key = n.domain === '' || n.domain === 'ai.onnx' ? n.opType : `${n.domain}::${n.opType}`;
      ops[key] = (ops[key] ?? 0) + 1;
    }
  }
  const sortedOps = Object.fromEntries(Object.entries(ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));

  const initNames = new Set(g.proto.initializer.map((t) => t.name));
  const info = (vi: (typeof g.proto.input)[number]): TensorInfo => {
    const t = typeFromValueInfo(vi);
    if (t) return { name: vi.name, dtype: dtypeName(t.dtype), shape: t.shape ? t.shape.map(dimJson) : null };
    return { name: vi.name, dtype: vi.type?.value.case ?? 'unknown', shape: null };
  };

  const init = { count: 0, inlineBytes: 0, externalCount: 0, externalBytes: 0 };
  for (const t of g.proto.initializer) {
    init.count++;
    if (isExternal(t)) init.externalCount++;
    else init.inlineBytes += t.rawData.length || (tensorByteLength(t) ?? 0);
  }
  const files = new Map<string, { location: string; tensors: number; bytes: number }>();
  for (const r of model.loaded.external) {
    const f = files.get(r.location) ?? { location: r.location, tensors: 0, bytes: 0 };
    f.tensors++;
    f.bytes += r.length;
    files.set(r.location, f);
    if (initNames.has(r.tensor.name) && g.proto.initializer.includes(r.tensor)) init.externalBytes += r.length;
  }
  const externalTensors = allTensors(p).filter(isExternal).length;

  return {
    ...(model.loaded.path ? { path: model.loaded.path } : {}),
    irVersion: Number(p.irVersion),
    producer: { name: p.producerName, version: p.producerVersion },
    opsets: p.opsetImport.map((o) => ({ domain: o.domain || 'ai.onnx', version: Number(o.version) })),
    graph: { name: g.proto.name, nodes: g.nodes.length, nodesWithSubgraphs: total, subgraphs },
    ops: sortedOps,
    inputs: g.proto.input.filter((i) => !initNames.has(i.name)).map(info),
    outputs: g.proto.output.map(info),
    initializers: init,
    externalData: {
      files: [...files.values()],
      tensors: externalTensors,
      bytes: [...files.values()].reduce((s, f) => s + f.bytes, 0),
    },
    functions: p.functions.map((f) => ({ domain: f.domain, name: f.name, overload: f.overload })),
    metadata: Object.fromEntries(p.metadataProps.map((m) => [m.key, m.value])),
  };
}

const dimJson = (d: Dim): number | string | null => (d === undefined ? null : d);
