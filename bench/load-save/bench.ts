/**
 * Load/save benchmark (not a test): how much `rmsfuse optimize` with no passes costs over the
 * floor, onnx-buf's own read + decode + encode + write of the same .onnx, on Llama-7B-shaped
 * graphs whose weights are external data in a sparse file.
 *
 *   npx tsx bench/load-save/bench.ts [--layers 8,32,128] [--repeat 3] [--dir DIR] [--json FILE] [--keep]
 *
 * Every measurement is a fresh child process (as a user runs it) under /usr/bin/time for the
 * peak RSS; the median of --repeat runs is reported. See README.md for what the columns mean.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DT } from '../../test/helpers/model-builder.js';
import { LLAMA_7B, writeLlama, type GeneratedModel } from './llama.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(REPO, 'bin', 'rmsfuse.js');
const FLOOR = path.join(REPO, 'bench', 'load-save', 'floor.mjs');

interface Args {
  layers: number[];
  repeat: number;
  dir: string;
  json?: string;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { layers: [8, 32, 128], repeat: 3, dir: path.join(os.tmpdir(), 'rmsfuse-bench-load-save'), keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--layers') args.layers = value().split(',').map(Number);
    else if (a === '--repeat') args.repeat = Number(value());
    else if (a === '--dir') args.dir = value();
    else if (a === '--json') args.json = value();
    else if (a === '--keep') args.keep = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

interface Run {
  wallMs: number;
  maxRssMiB: number;
  stdout: string;
  stderr: string;
}

/** Runs a command under /usr/bin/time; wall time measured here, peak RSS by time(1). */
function timed(cmd: string[], env: NodeJS.ProcessEnv = {}): Run {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME_RSS_KB=%M', ...cmd], {
    cwd: REPO,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const m = /TIME_RSS_KB=(\d+)/.exec(r.stderr);
  if (!m) throw new Error(`no /usr/bin/time output from ${cmd.join(' ')}:\n${r.stderr}`);
  return { wallMs, maxRssMiB: Number(m[1]) / 1024, stdout: r.stdout, stderr: r.stderr };
}

const best = (xs: number[]): number => Math.min(...xs);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

interface Row {
  label: string;
  layers: number;
  nodes: number;
  modelMiB: number;
  weightGiB: number;
  /** In-process times (ms) as each process reports them: best of the runs, and median. */
  floorMs: number;
  rmsfuseMs: number;
  floorMedianMs: number;
  rmsfuseMedianMs: number;
  rmsfusePhases: { loadMs: number; validateMs: number; optimizeMs: number; saveMs: number };
  /** In-process CPU time (user + system), best of the runs: steadier than wall time on a busy machine. */
  floorCpuMs: number;
  rmsfuseCpuMs: number;
  /** Whole child process (startup included), median. */
  floorWallMs: number;
  rmsfuseWallMs: number;
  floorRssMiB: number;
  rmsfuseRssMiB: number;
}

interface Timings {
  loadMs: number;
  validateMs: number;
  optimizeMs: number;
  saveMs: number;
  totalMs: number;
  cpuMs: number;
}

function measure(label: string, gen: GeneratedModel, layers: number, repeat: number): Row {
  const dir = path.dirname(gen.file);
  const floorOut = path.join(dir, 'floor.onnx');
  const out = path.join(dir, 'out.onnx');
  const reportFile = path.join(dir, 'report.json');
  const floor: { run: Run; totalMs: number; cpuMs: number }[] = [];
  const ours: { run: Run; timings: Timings }[] = [];
  for (let i = 0; i < repeat; i++) {
    const f = timed([process.execPath, FLOOR, gen.file, floorOut]);
    const phases = JSON.parse(f.stdout) as { totalMs: number; cpuMs: number };
    floor.push({ run: f, totalMs: phases.totalMs, cpuMs: phases.cpuMs });
    const o = timed([process.execPath, BIN, 'optimize', gen.file, '-o', out, '--report', reportFile], { RMSFUSE_PASSES: 'none' });
    ours.push({ run: o, timings: (JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { timings: Timings }).timings });
  }
  const original = fs.readFileSync(gen.file);
  if (!fs.readFileSync(out).equals(original) || !fs.readFileSync(floorOut).equals(original)) {
    throw new Error(`${label}: a saved model differs from the input (load+save must be byte-identical)`);
  }
  const pick = (f: (t: Timings) => number) => median(ours.map((o) => f(o.timings)));
  return {
    label,
    layers,
    nodes: gen.nodes,
    modelMiB: gen.modelBytes / 2 ** 20,
    weightGiB: gen.weightBytes / 2 ** 30,
    floorMs: best(floor.map((f) => f.totalMs)),
    rmsfuseMs: best(ours.map((o) => o.timings.totalMs)),
    floorMedianMs: median(floor.map((f) => f.totalMs)),
    rmsfuseMedianMs: pick((t) => t.totalMs),
    rmsfusePhases: { loadMs: pick((t) => t.loadMs), validateMs: pick((t) => t.validateMs), optimizeMs: pick((t) => t.optimizeMs), saveMs: pick((t) => t.saveMs) },
    floorCpuMs: best(floor.map((f) => f.cpuMs)),
    rmsfuseCpuMs: best(ours.map((o) => o.timings.cpuMs)),
    floorWallMs: median(floor.map((f) => f.run.wallMs)),
    rmsfuseWallMs: median(ours.map((o) => o.run.wallMs)),
    floorRssMiB: median(floor.map((f) => f.run.maxRssMiB)),
    rmsfuseRssMiB: median(ours.map((o) => o.run.maxRssMiB)),
  };
}

const f0 = (x: number) => x.toFixed(0);
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (!fs.existsSync('/usr/bin/time')) throw new Error('this benchmark needs /usr/bin/time (Debian: apt-get install time)');
  fs.mkdirSync(args.dir, { recursive: true });
  const rows: Row[] = [];
  const configs = [
    ...args.layers.map((layers) => ({ label: `${layers} layers, fp16 weights`, layers, weightDtype: DT.FLOAT16 })),
    { label: '32 layers, fp32 weights', layers: 32, weightDtype: DT.FLOAT },
  ];
  for (const c of configs) {
    const dir = path.join(args.dir, c.label.replace(/[^a-z0-9]+/gi, '-'));
    const gen = writeLlama(dir, { ...LLAMA_7B, layers: c.layers, weightDtype: c.weightDtype });
    process.stderr.write(`${c.label}: ${gen.nodes} nodes, ${f1(gen.modelBytes / 2 ** 20)} MiB .onnx, ${f1(gen.weightBytes / 2 ** 30)} GiB sparse weights\n`);
    rows.push(measure(c.label, gen, c.layers, args.repeat));
  }
  // Fixed costs of a process: plain node, and the rmsfuse launcher (tsx + commander) doing nothing.
  const nodeOnly = median(Array.from({ length: args.repeat }, () => timed([process.execPath, '-e', '0']).wallMs));
  const launcher = Array.from({ length: args.repeat }, () => timed([process.execPath, BIN, '--version']));
  const startup = { nodeMs: nodeOnly, launcherMs: median(launcher.map((r) => r.wallMs)), launcherRssMiB: median(launcher.map((r) => r.maxRssMiB)) };

  const lines: string[] = [];
  lines.push(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os.loadavg().map(f2).join(' ')}, node ${process.version}`);
  lines.push('');
  lines.push(
    '| model | nodes | .onnx MiB | weights GiB | floor ms | rmsfuse ms | ratio | ratio (median) | floor CPU ms | rmsfuse CPU ms | CPU ratio | rmsfuse load / validate / save ms | floor process ms | rmsfuse process ms | floor RSS MiB | rmsfuse RSS MiB |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${r.nodes} | ${f1(r.modelMiB)} | ${f1(r.weightGiB)} | ${f0(r.floorMs)} | ${f0(r.rmsfuseMs)} | ${f2(r.rmsfuseMs / r.floorMs)} | ${f2(r.rmsfuseMedianMs / r.floorMedianMs)} | ` +
        `${f0(r.floorCpuMs)} | ${f0(r.rmsfuseCpuMs)} | ${f2(r.rmsfuseCpuMs / r.floorCpuMs)} | ` +
        `${f0(r.rmsfusePhases.loadMs)} / ${f0(r.rmsfusePhases.validateMs)} / ${f0(r.rmsfusePhases.saveMs)} | ${f0(r.floorWallMs)} | ${f0(r.rmsfuseWallMs)} | ` +
        `${f0(r.floorRssMiB)} | ${f0(r.rmsfuseRssMiB)} |`,
    );
  }
  lines.push('');
  const fp16 = rows.filter((r) => r.label.includes('fp16'));
  if (fp16.length > 1) {
    lines.push(`per layer (in-process wall / CPU ms): ${fp16.map((r) => `${r.layers} layers: floor ${f2(r.floorMs / r.layers)} / ${f2(r.floorCpuMs / r.layers)}, rmsfuse ${f2(r.rmsfuseMs / r.layers)} / ${f2(r.rmsfuseCpuMs / r.layers)}`).join('; ')}`);
  }
  const a = rows.find((r) => r.label === '32 layers, fp16 weights');
  const b = rows.find((r) => r.label === '32 layers, fp32 weights');
  if (a && b) {
    lines.push(`RSS vs weight size (same graph): ${f1(a.weightGiB)} GiB -> ${f0(a.rmsfuseRssMiB)} MiB, ${f1(b.weightGiB)} GiB -> ${f0(b.rmsfuseRssMiB)} MiB`);
  }
  lines.push(`process startup: node -e 0 ${f0(startup.nodeMs)} ms; rmsfuse --version ${f0(startup.launcherMs)} ms, ${f0(startup.launcherRssMiB)} MiB RSS`);
  process.stdout.write(lines.join('\n') + '\n');
  if (args.json) fs.writeFileSync(args.json, JSON.stringify({ rows, startup, loadavg: os.loadavg() }, null, 2) + '\n');
  if (!args.keep) fs.rmSync(args.dir, { recursive: true, force: true });
}

main();
