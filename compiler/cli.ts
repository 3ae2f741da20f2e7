/**
 * The command line (SPEC section 6):
 *
 *   rmsfuse optimize IN -o OUT [--report R.json|R.md] [--target T] [--format rmsfuse|ort|onnx23]
 *                              [--emit DIR] [--debug] [--explain NODE]...
 *   rmsfuse inspect IN [--json]
 *
 * Exit codes: 0 ok; 1 bad model or refused output (`error: ...` on stderr, OUT not created);
 * 2 usage; 70 internal error (a bug: `internal error: ...`). Stack traces only with --debug
 * (or RMSFUSE_DEBUG=1).
 */
import * as fs from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
// The API (and with it the passes and the decoder) is imported when a command runs, so
// --help, --version and usage errors answer without loading it.
import type { InspectResult, OptimizeReport, OutputFormat } from './api.js';
import { RmsfuseError } from './errors.js';
import { parseByteSize } from './onnx/limits.js';
import type { CopyProgress } from './onnx/save.js';
import { TARGETS } from './op/target.js';

export const EXIT = { OK: 0, MODEL: 1, USAGE: 2, INTERNAL: 70 } as const;

/** The output formats (api.ts FORMATS; repeated here so that parsing arguments loads nothing else). */
const FORMATS: readonly OutputFormat[] = ['rmsfuse', 'ort', 'onnx23'];

export interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean };
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
  debug?: boolean;
  explain?: string[];
  maxTensorBytes?: number;
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
    .showHelpAfterError('(run rmsfuse --help for usage)');

  program
    .command('optimize')
    .description('fuse the RMSNorm sites of IN and write the optimized model to OUT')
    .argument('<in>', 'input model (.onnx)')
    .requiredOption('-o, --output <out>', 'output model (.onnx); written atomically, may equal IN')
    .option('--report <file>', 'write a report: .json for tools, .md for people')
    .addOption(new Option('--target <target>', 'fuse only what this target supports and generate for it').choices([...TARGETS]))
    .addOption(new Option('--format <format>', 'how fused nodes are written').choices([...FORMATS]).default('rmsfuse'))
    .option('--emit <dir>', 'emit kernels and launchers for the fused nodes into DIR (needs --target)')
    .option('--debug', 'print per-rule match statistics, and stack traces on errors')
    .option('--explain <node>', 'explain why NODE was or was not fused (repeatable)', (v: string, acc: string[] | undefined) => [...(acc ?? []), v])
    .option('--max-tensor-bytes <bytes>', 'largest single allocation: the model file, one tensor (e.g. 512M, 8G; default 4G)', maxBytesArg)
    .addHelpText(
      'after',
      '\nEnvironment:\n  RMSFUSE_PASSES=none|all|NAME,...  run no pass / every pass (default) / only these passes\n  RMSFUSE_DEBUG=1                    as --debug\n' +
        '  RMSFUSE_MAX_BYTES=N                as --max-tensor-bytes\n  RMSFUSE_MAX_DECODED_BYTES=N        heap the decoded model may take (default 75% of the free heap)\n',
    )
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
      const { optimize } = await import('./api.js');
      const report = await optimize(input, flags.output, {
        report: flags.report,
        target: flags.target,
        format: flags.format as OutputFormat,
        emit: flags.emit,
        debug: flags.debug,
        explain: flags.explain,
        log: (line) => void io.stderr.write(line + '\n'),
        onProgress: io.stderr.isTTY ? ttyProgress(io) : undefined,
        ...(flags.maxTensorBytes !== undefined ? { limits: { maxTensorBytes: flags.maxTensorBytes } } : {}),
      });
      io.stderr.write(summary(report, input, flags.output, flags.report));
    });

  program
    .command('inspect')
    .description('summarise a model: op histogram, opsets, IR version, inputs and outputs, external data')
    .argument('<in>', 'input model (.onnx)')
    .option('--json', 'print the summary as JSON')
    .option('--debug', 'stack traces on errors')
    .action(async (input: string, flags: { json?: boolean }) => {
      const { inspectModel, loadModel } = await import('./api.js');
      const info = inspectModel(loadModel(input));
      io.stdout.write(flags.json ? JSON.stringify(info, null, 2) + '\n' : formatInspect(info));
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

/** A progress line for data-file copies, rewritten in place (stderr is a TTY). */
function ttyProgress(io: CliIO): (p: CopyProgress) => void {
  return (p) => {
    const pct = p.totalBytes > 0 ? Math.floor((100 * p.copiedBytes) / p.totalBytes) : 100;
    io.stderr.write(`\rcopying ${p.location}: ${bytes(p.copiedBytes)} / ${bytes(p.totalBytes)} (${pct}%)${p.done ? '\n' : ''}`);
  };
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

/** Remarks listed in the summary before "... and N more". */
const MAX_REMARKS_SHOWN = 20;

export function summary(report: OptimizeReport, input: string, output: string, reportFile?: string): string {
  const lines: string[] = [];
  const byOp = new Map<string, number>();
  for (const f of report.fused) byOp.set(f.op_type, (byOp.get(f.op_type) ?? 0) + 1);
  lines.push(`rmsfuse: ${input} -> ${output} (target ${report.target}, format ${report.format}) in ${report.timings.totalMs.toFixed(0)} ms`);
  lines.push(
    report.fused.length === 0
      ? '  fused: nothing'
      : `  fused: ${report.fused.length} site(s): ${[...byOp].map(([op, n]) => `${op} ${n}`).join(', ')}`,
  );
  lines.push(`  remarks: ${report.remarks.length}`);
  for (const r of report.remarks.slice(0, MAX_REMARKS_SHOWN)) lines.push(`    - ${r.graph ? `${r.graph}/` : ''}${r.node}: ${r.reason}`);
  if (report.remarks.length > MAX_REMARKS_SHOWN) {
    lines.push(`    ... and ${report.remarks.length - MAX_REMARKS_SHOWN} more${reportFile ? ` (see ${reportFile})` : ' (write them all with --report R.md)'}`);
  }
  const copied = report.externalData.filter((f) => f.action === 'copied');
  if (copied.length > 0) lines.push(`  external data copied beside the output: ${copied.map((f) => `${f.location} (${bytes(f.bytes)})`).join(', ')}`);
  const t = report.timings;
  lines.push(
    `  time: load ${t.loadMs.toFixed(0)} ms, validate ${t.validateMs.toFixed(0)} ms, passes ${t.optimizeMs.toFixed(0)} ms, save ${t.saveMs.toFixed(0)} ms` +
      (t.emitMs !== undefined ? `, emit ${t.emitMs.toFixed(0)} ms` : ''),
  );
  if (report.emitted) lines.push(`  emitted: ${report.emitted.kernels} kernel(s) into ${report.emitted.dir}`);
  if (reportFile) lines.push(`  report: ${reportFile}`);
  return lines.join('\n') + '\n';
}

const shapeText = (s: InspectResult['inputs'][number]['shape']): string =>
  s === null ? '(unknown shape)' : `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;

export function formatInspect(info: InspectResult): string {
  const lines: string[] = [];
  if (info.path) lines.push(`model: ${info.path}`);
  lines.push(`ir_version: ${info.irVersion}`);
  if (info.producer.name || info.producer.version) lines.push(`producer: ${[info.producer.name, info.producer.version].filter(Boolean).join(' ')}`);
  lines.push(`opsets: ${info.opsets.map((o) => `${o.domain} ${o.version}`).join(', ') || '(none)'}`);
  lines.push(
    `graph '${info.graph.name}': ${info.graph.nodes} nodes` +
      (info.graph.subgraphs > 0 ? ` (${info.graph.nodesWithSubgraphs} with ${info.graph.subgraphs} subgraph(s))` : ''),
  );
  lines.push('inputs:');
  for (const i of info.inputs) lines.push(`  ${i.name}: ${i.dtype} ${shapeText(i.shape)}`);
  lines.push('outputs:');
  for (const o of info.outputs) lines.push(`  ${o.name}: ${o.dtype} ${shapeText(o.shape)}`);
  const init = info.initializers;
  lines.push(`initializers: ${init.count} (${bytes(init.inlineBytes)} inline, ${init.externalCount} external, ${bytes(init.externalBytes)})`);
  if (info.externalData.tensors > 0) {
    lines.push(`external data: ${info.externalData.tensors} tensor(s), ${bytes(info.externalData.bytes)} in ${info.externalData.files.length} file(s)`);
    for (const f of info.externalData.files) lines.push(`  ${f.location}: ${f.tensors} tensor(s), ${bytes(f.bytes)}`);
  } else {
    lines.push('external data: none');
  }
  if (info.functions.length > 0) {
    lines.push(`functions: ${info.functions.length}`);
    for (const f of info.functions) lines.push(`  ${f.domain}::${f.name}${f.overload ? ` (overload ${f.overload})` : ''}`);
  }
  const metadata = Object.entries(info.metadata);
  if (metadata.length > 0) {
    lines.push('metadata:');
    for (const [k, v] of metadata) lines.push(`  ${k}: ${v}`);
  }
  lines.push('ops:');
  const width = Math.max(0, ...Object.keys(info.ops).map((k) => k.length));
  for (const [op, n] of Object.entries(info.ops)) lines.push(`  ${op.padEnd(width)}  ${n}`);
  return lines.join('\n') + '\n';
}
