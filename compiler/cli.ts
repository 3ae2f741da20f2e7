/**
 * The command line (SPEC section 6):
 *
 *   rmsfuse optimize IN -o OUT [--report R.json|R.md] [--target T] [--format rmsfuse|ort|onnx23]
 *                              [--emit DIR] [--json] [--debug] [--explain NODE]...
 *   rmsfuse inspect IN [--target T] [--json]
 *
 * Exit codes: 0 ok; 1 bad model or refused output (`error: ...` on stderr, OUT not created);
 * 2 usage; 70 internal error (a bug: `internal error: ...`). Stack traces only with --debug
 * (or RMSFUSE_DEBUG=1).
 *
 * Output: results on stdout (inspect, `--json`), everything for people on stderr. Progress
 * (cli-progress) only where stderr is a terminal and without --json; colour only where the stream
 * is a terminal and NO_COLOR is unset or empty. `error:` lines are never coloured.
 */
import * as fs from 'node:fs';
import { styleText } from 'node:util';
import type { SingleBar } from 'cli-progress';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
// The API (and with it the passes and the decoder) is imported when a command runs, so
// --help, --version and usage errors answer without loading it.
import type { InspectResult, OptimizePhase, OptimizeReport, OutputFormat } from './api.js';
import { RmsfuseError } from './errors.js';
import { parseByteSize } from './onnx/limits.js';
import type { CopyProgress } from './onnx/save.js';
import { TARGETS } from './op/target.js';
import type { FusedSite, Remark } from './pass-manager.js';

export const EXIT = { OK: 0, MODEL: 1, USAGE: 2, INTERNAL: 70 } as const;

/** The output formats (api.ts FORMATS; repeated here so that parsing arguments loads nothing else). */
const FORMATS: readonly OutputFormat[] = ['rmsfuse', 'ort', 'onnx23'];

export interface CliIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean; columns?: number };
  /** Read for NO_COLOR (default: process.env). */
  env?: Record<string, string | undefined>;
}

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

interface OptimizeFlags {
  output: string;
  report?: string;
  target?: string;
  format: string;
  emit?: string;
  json?: boolean;
  debug?: boolean;
  explain?: string[];
  maxTensorBytes?: number;
}

interface InspectFlags {
  target?: string;
  json?: boolean;
  debug?: boolean;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const debug = argv.includes('--debug') || !!process.env.RMSFUSE_DEBUG;
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (e) {
    return reportError(e, io, debug);
  }
}

/** Prints an error the way the CLI does and returns its exit code. */
export function reportError(e: unknown, io: CliIO, debug: boolean): number {
  if (e instanceof CommanderError) {
    // Commander has printed its message already (`error: ...` or the help text).
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.OK;
    if (e.code === 'commander.help' && e.exitCode === 0) return EXIT.OK; // `rmsfuse help CMD`
    return EXIT.USAGE;
  }
  if (e instanceof RmsfuseError) {
    io.stderr.write(`error: ${e.message}\n`);
    if (debug && e.stack) io.stderr.write(e.stack + '\n');
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  io.stderr.write(`internal error: ${err.message}\n`);
  if (debug) io.stderr.write((err.stack ?? '') + '\n');
  else io.stderr.write('(this is a bug in rmsfuse; run again with --debug for the stack trace)\n');
  return EXIT.INTERNAL;
}

const PROGRAM_HELP = `
Examples:
  $ rmsfuse optimize model.onnx -o model.opt.onnx --report report.md
  $ rmsfuse optimize model.onnx -o model.opt.onnx --target webgpu --emit kernels
  $ rmsfuse inspect model.onnx

Run 'rmsfuse <command> --help' for the options of a command.
`;

const OPTIMIZE_HELP = `
Examples:
  $ rmsfuse optimize model.onnx -o model.opt.onnx                            fuse every valid site
  $ rmsfuse optimize model.onnx -o out.onnx --report report.md               tables and before/after diagrams
  $ rmsfuse optimize model.onnx -o out.onnx --target webgpu --emit kernels   WGSL kernels and launchers
  $ rmsfuse optimize model.onnx -o out.onnx --format ort                     onnxruntime's ops where exact
  $ rmsfuse optimize model.onnx -o out.onnx --json > report.json             the JSON report on stdout

Exit codes: 0 ok; 1 bad model (error: ..., OUT not created); 2 usage.

Environment:
  RMSFUSE_PASSES=none|all|NAME,...  run no pass / every pass (default) / only these passes
  RMSFUSE_DEBUG=1                    as --debug
  RMSFUSE_MAX_BYTES=N                as --max-tensor-bytes
  RMSFUSE_MAX_DECODED_BYTES=N        heap the decoded model may take (default 75% of the free heap)
  NO_COLOR=1                         no colour (there is none either where stderr is not a terminal)
`;

const INSPECT_HELP = `
Examples:
  $ rmsfuse inspect model.onnx                      ops, inputs, outputs, sites that would fuse, near misses
  $ rmsfuse inspect model.onnx --target ascend910b  what this target would fuse, and why not the rest
  $ rmsfuse inspect model.onnx --json               the same as JSON

Nothing is written: the passes run on the model in memory.
`;

function buildProgram(io: CliIO): Command {
  const program = new Command('rmsfuse');
  const output = {
    writeOut: (s: string) => void io.stdout.write(s),
    writeErr: (s: string) => void io.stderr.write(s),
  };
  program
    .description('Fuse RMSNorm sites in ONNX models into RmsNorm/PreNorm/PostNorm nodes and emit kernels for them')
    .version(packageVersion(), '-V, --version')
    .configureOutput(output)
    .exitOverride()
    .showHelpAfterError('(run rmsfuse --help for usage)')
    .addHelpText('after', PROGRAM_HELP);

  program
    .command('optimize')
    .description('fuse the RMSNorm sites of IN and write the optimized model to OUT')
    .argument('<in>', 'input model (.onnx)')
    .requiredOption('-o, --output <out>', 'output model (.onnx); written atomically, may equal IN')
    .option('--report <file>', 'write a report: .json for tools, .md for people')
    .addOption(new Option('--target <target>', 'fuse only what this target supports and generate for it').choices([...TARGETS]))
    .addOption(new Option('--format <format>', 'how fused nodes are written').choices([...FORMATS]).default('rmsfuse'))
    .option('--emit <dir>', 'emit kernels and launchers for the fused nodes into DIR (needs --target)')
    .option('--json', 'print the JSON report on stdout and nothing else (no summary, no progress)')
    .option('--debug', 'print per-rule match statistics, and stack traces on errors')
    .option('--explain <node>', 'explain why NODE was or was not fused (repeatable)', (v: string, acc: string[] | undefined) => [...(acc ?? []), v])
    .option('--max-tensor-bytes <bytes>', 'largest single allocation: the model file, one tensor (e.g. 512M, 8G; default 4G)', maxBytesArg)
    .addHelpText('after', OPTIMIZE_HELP)
    .action(async (input: string, flags: OptimizeFlags, cmd: Command) => {
      if (flags.emit !== undefined && flags.target === undefined) {
        cmd.error(`error: --emit needs --target (one of: ${TARGETS.join(', ')})`, { exitCode: EXIT.USAGE, code: 'rmsfuse.emitWithoutTarget' });
      }
      if (flags.report !== undefined && !/\.(json|md|markdown)$/i.test(flags.report)) {
        cmd.error(`error: --report ${flags.report}: the file name must end in .json or .md`, { exitCode: EXIT.USAGE, code: 'rmsfuse.reportExtension' });
      }
      // The limit also governs allocations after loading (constants made by the passes), which
      // read it from the environment.
      if (flags.maxTensorBytes !== undefined) process.env.RMSFUSE_MAX_BYTES = String(flags.maxTensorBytes);
      const progress = flags.json ? undefined : await Progress.open(io, flags.emit !== undefined ? 5 : 4);
      const { optimize, renderJsonReport } = await import('./api.js');
      let report: OptimizeReport;
      try {
        report = await optimize(input, flags.output, {
          report: flags.report,
          target: flags.target,
          format: flags.format as OutputFormat,
          emit: flags.emit,
          debug: flags.debug,
          explain: flags.explain,
          log: (line) => {
            progress?.clear();
            io.stderr.write(line + '\n');
          },
          onPhase: progress ? (phase, detail) => progress.step(phaseLabel(phase, detail, input, flags.output)) : undefined,
          onProgress: progress ? (p) => progress.copy(p) : undefined,
          ...(flags.maxTensorBytes !== undefined ? { limits: { maxTensorBytes: flags.maxTensorBytes } } : {}),
        });
      } finally {
        progress?.stop();
      }
      if (flags.json) io.stdout.write(renderJsonReport(report));
      else io.stderr.write(summary(report, input, flags.output, flags.report, styleFor(io.stderr, io.env)));
    });

  program
    .command('inspect')
    .description('summarise a model: op histogram, opsets, IR version, inputs and outputs, external data, and the RMSNorm sites optimize would fuse (nothing is written)')
    .argument('<in>', 'input model (.onnx)')
    .addOption(new Option('--target <target>', 'list what this target would fuse').choices([...TARGETS]))
    .option('--json', 'print the summary as JSON')
    .option('--debug', 'print per-rule match statistics, and stack traces on errors')
    .addHelpText('after', INSPECT_HELP)
    .action(async (input: string, flags: InspectFlags) => {
      const progress = flags.json ? undefined : await Progress.open(io, 2);
      const { inspectModel, loadModel } = await import('./api.js');
      let info: InspectResult;
      try {
        progress?.step(phaseLabel('load', {}, input));
        const model = loadModel(input);
        progress?.step(`trying the passes on ${model.graph.nodes.length} nodes`);
        // The model was read for this and is never written: the passes may change it.
        info = inspectModel(model, { fusion: { target: flags.target, debug: flags.debug, log: (line) => void io.stderr.write(line + '\n') }, consume: true });
      } finally {
        progress?.stop();
      }
      io.stdout.write(flags.json ? JSON.stringify(info, null, 2) + '\n' : formatInspect(info, styleFor(io.stdout, io.env)));
    });

  return program;
}

/** --max-tensor-bytes: a byte count with an optional K/M/G/T suffix; a bad one is a usage error (exit 2). */
function maxBytesArg(v: string): number {
  try {
    return parseByteSize(v, '--max-tensor-bytes');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

// ---------------------------------------------------------------------------------------------
// Colour

/** Text styles; identity functions where colour is off. */
export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

const identity = (s: string): string => s;
export const PLAIN: Style = { bold: identity, dim: identity, green: identity, yellow: identity, cyan: identity };

/** True where `stream` is a terminal and NO_COLOR is unset or empty (https://no-color.org). */
export function colorEnabled(stream: { isTTY?: boolean }, env: Record<string, string | undefined> = process.env): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

/** The styles for text written to `stream`. styleText's own stream check is off: this decides. */
export function styleFor(stream: { isTTY?: boolean }, env: Record<string, string | undefined> = process.env): Style {
  if (!colorEnabled(stream, env)) return PLAIN;
  const st = (format: Parameters<typeof styleText>[0]) => (s: string) => styleText(format, s, { validateStream: false });
  return { bold: st('bold'), dim: st('dim'), green: st('green'), yellow: st('yellow'), cyan: st('cyan') };
}

// ---------------------------------------------------------------------------------------------
// Progress

interface BarPayload {
  /** 'steps': step `value` of `total`; 'copy': bytes of a data file. */
  mode: 'steps' | 'copy';
  label: string;
  /** The number of the step shown (the bar shows the steps done before it). */
  step?: number;
}

/**
 * Progress on stderr while a command works: numbered steps (loading, fusing N nodes, saving),
 * and bytes while data files are copied. A cli-progress bar, cleared when the command ends; only
 * where stderr is a terminal. The work is synchronous, so each change of step is drawn at once.
 */
export class Progress {
  private current = 0;
  private active = false;
  /** The data file being copied, while one is. */
  private copying?: string;
  private constructor(
    private readonly bar: SingleBar,
    private readonly steps: number,
  ) {}

  /** A bar on io.stderr, or undefined where stderr is not a terminal. */
  static async open(io: CliIO, steps: number): Promise<Progress | undefined> {
    if (io.stderr.isTTY !== true) return undefined;
    const { default: cliProgress } = await import('cli-progress');
    const format = (options: Parameters<typeof cliProgress.Format.BarFormat>[1], params: { progress: number; value: number; total: number; eta: number }, payload: BarPayload): string => {
      const bar = `[${cliProgress.Format.BarFormat(params.progress, options)}]`;
      if (payload.mode === 'steps') return `${bar} ${payload.step ?? params.value}/${params.total} ${payload.label}`;
      const pct = Math.floor(params.progress * 100);
      const eta = params.progress < 1 && Number.isFinite(params.eta) && params.eta > 0 ? `, ${params.eta} s left` : '';
      return `${bar} ${payload.label}: ${bytes(params.value)} / ${bytes(params.total)} (${pct}%)${eta}`;
    };
    const bar = new cliProgress.SingleBar({
      // cli-progress writes through readline's cursor helpers; a TTY stream (or a test's stand-in) will do.
      stream: io.stderr as unknown as NodeJS.WritableStream,
      format,
      barsize: 20,
      clearOnComplete: true,
      linewrap: false,
      fps: 10,
    });
    return new Progress(bar, steps);
  }

  /** The next step starts. */
  step(label: string): void {
    this.current = Math.min(this.current + 1, this.steps);
    this.restart(this.steps, this.current - 1, { mode: 'steps', label, step: this.current });
  }

  /** A data file is being copied (save's onProgress). */
  copy(p: CopyProgress): void {
    if (!this.active || this.copying !== p.location) {
      this.restart(p.totalBytes, p.copiedBytes, { mode: 'copy', label: `copying ${p.location}` });
      this.copying = p.location;
    } else {
      this.bar.update(p.copiedBytes);
      if (p.done) this.bar.render();
    }
  }

  /** Clears the bar's line (before other output); the next step or copy draws it again. */
  clear(): void {
    this.stop();
  }

  /** Clears the bar's line and stops its timer. */
  stop(): void {
    if (this.active) this.bar.stop();
    this.active = false;
    this.copying = undefined;
  }

  /** (Re)starts the bar with new totals; start() draws at once, update() only every few frames. */
  private restart(total: number, value: number, payload: BarPayload): void {
    this.stop();
    this.bar.start(total, value, payload);
    this.active = true;
  }
}

function phaseLabel(phase: OptimizePhase, detail: { nodes?: number }, input: string, output?: string): string {
  switch (phase) {
    case 'load': {
      let size = '';
      try {
        size = ` (${bytes(fs.statSync(input).size)})`;
      } catch {
        // the loader reports a missing or unreadable file
      }
      return `loading ${input}${size}`;
    }
    case 'validate':
      return 'checking the graph';
    case 'passes':
      return detail.nodes !== undefined ? `fusing (${detail.nodes} nodes)` : 'fusing';
    case 'save':
      return `writing ${output ?? ''}`;
    case 'emit':
      return 'emitting kernels';
  }
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

// ---------------------------------------------------------------------------------------------
// Summary (optimize) and inspect

/** Remarks listed in the summary before "... and N more". */
const MAX_REMARKS_SHOWN = 20;

const byOpType = (fused: readonly FusedSite[]): string => {
  const byOp = new Map<string, number>();
  for (const f of fused) byOp.set(f.op_type, (byOp.get(f.op_type) ?? 0) + 1);
  return [...byOp].map(([op, n]) => `${op} ${n}`).join(', ');
};

const remarkLine = (r: Remark, s: Style, indent = '    '): string => `${indent}- ${s.yellow(`${r.graph ? `${r.graph}/` : ''}${r.node}`)}: ${r.reason}`;

/** What optimize did, for people (stderr): sites fused by type, near misses, data files, time. */
export function summary(report: OptimizeReport, input: string, output: string, reportFile?: string, s: Style = PLAIN): string {
  const lines: string[] = [];
  lines.push(`${s.bold('rmsfuse:')} ${input} -> ${output} (target ${report.target}, format ${report.format}) in ${report.timings.totalMs.toFixed(0)} ms`);
  lines.push(report.fused.length === 0 ? `  fused: ${s.yellow('nothing')}` : `  fused: ${s.green(`${report.fused.length} site(s)`)}: ${byOpType(report.fused)}`);
  lines.push(`  remarks: ${report.remarks.length}`);
  for (const r of report.remarks.slice(0, MAX_REMARKS_SHOWN)) lines.push(remarkLine(r, s));
  if (report.remarks.length > MAX_REMARKS_SHOWN) {
    lines.push(`    ... and ${report.remarks.length - MAX_REMARKS_SHOWN} more${reportFile ? ` (see ${reportFile})` : ' (write them all with --report R.md)'}`);
  }
  const copied = report.externalData.filter((f) => f.action === 'copied');
  if (copied.length > 0) lines.push(`  external data copied beside the output: ${copied.map((f) => `${f.location} (${bytes(f.bytes)})`).join(', ')}`);
  const t = report.timings;
  lines.push(
    s.dim(
      `  time: load ${t.loadMs.toFixed(0)} ms, validate ${t.validateMs.toFixed(0)} ms, passes ${t.optimizeMs.toFixed(0)} ms, save ${t.saveMs.toFixed(0)} ms` +
        (t.emitMs !== undefined ? `, emit ${t.emitMs.toFixed(0)} ms` : ''),
    ),
  );
  if (report.emitted) lines.push(`  emitted: ${report.emitted.kernels} kernel(s) into ${report.emitted.dir}`);
  if (reportFile) lines.push(`  report: ${s.cyan(reportFile)}`);
  return lines.join('\n') + '\n';
}

const shapeText = (s: InspectResult['inputs'][number]['shape']): string =>
  s === null ? '(unknown shape)' : `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;

export function formatInspect(info: InspectResult, s: Style = PLAIN): string {
  const lines: string[] = [];
  const head = (t: string): string => s.bold(t);
  if (info.path) lines.push(`${head('model:')} ${info.path}`);
  lines.push(`${head('ir_version:')} ${info.irVersion}`);
  if (info.producer.name || info.producer.version) lines.push(`${head('producer:')} ${[info.producer.name, info.producer.version].filter(Boolean).join(' ')}`);
  lines.push(`${head('opsets:')} ${info.opsets.map((o) => `${o.domain} ${o.version}`).join(', ') || '(none)'}`);
  lines.push(
    `graph '${info.graph.name}': ${info.graph.nodes} nodes` +
      (info.graph.subgraphs > 0 ? ` (${info.graph.nodesWithSubgraphs} with ${info.graph.subgraphs} subgraph(s))` : ''),
  );
  lines.push(head('inputs:'));
  for (const i of info.inputs) lines.push(`  ${i.name}: ${i.dtype} ${shapeText(i.shape)}`);
  lines.push(head('outputs:'));
  for (const o of info.outputs) lines.push(`  ${o.name}: ${o.dtype} ${shapeText(o.shape)}`);
  const init = info.initializers;
  lines.push(`${head('initializers:')} ${init.count} (${bytes(init.inlineBytes)} inline, ${init.externalCount} external, ${bytes(init.externalBytes)})`);
  if (info.externalData.tensors > 0) {
    lines.push(`${head('external data:')} ${info.externalData.tensors} tensor(s), ${bytes(info.externalData.bytes)} in ${info.externalData.files.length} file(s)`);
    for (const f of info.externalData.files) lines.push(`  ${f.location}: ${f.tensors} tensor(s), ${bytes(f.bytes)}`);
  } else {
    lines.push(`${head('external data:')} none`);
  }
  if (info.functions.length > 0) {
    lines.push(`${head('functions:')} ${info.functions.length}`);
    for (const f of info.functions) lines.push(`  ${f.domain}::${f.name}${f.overload ? ` (overload ${f.overload})` : ''}`);
  }
  const metadata = Object.entries(info.metadata);
  if (metadata.length > 0) {
    lines.push(head('metadata:'));
    for (const [k, v] of metadata) lines.push(`  ${k}: ${v}`);
  }
  if (info.fusion) {
    const f = info.fusion;
    if (f.error) lines.push(`${head('would fuse')} (target ${f.target}): unknown, the passes stopped: ${f.error}`);
    else lines.push(
      `${head('would fuse')} (target ${f.target}): ` +
        (f.fused.length === 0 ? s.yellow('nothing') : `${s.green(`${f.fused.length} site(s)`)}: ${byOpType(f.fused)}`),
    );
    const width = Math.max(0, ...f.fused.map((x) => x.op_type.length));
    for (const x of f.fused) {
      lines.push(`  ${x.op_type.padEnd(width)}  ${x.graph ? `${x.graph}/` : ''}${x.node}  ${s.dim(`(replaces ${x.replaced.length} nodes)`)}`);
    }
    if (!f.error) lines.push(`${head('would not fuse')} (near misses): ${f.remarks.length}`);
    for (const r of f.remarks) lines.push(remarkLine(r, s, '  '));
  }
  lines.push(head('ops:'));
  const width = Math.max(0, ...Object.keys(info.ops).map((k) => k.length));
  for (const [op, n] of Object.entries(info.ops)) lines.push(`  ${op.padEnd(width)}  ${n}`);
  return lines.join('\n') + '\n';
}
