/**
 * Speed: rmsfuse's fusion pass and whole optimize against onnxruntime-node's session creation
 * with its graph optimizer, on Llama-7B-shaped decoders of 8, 32 and 128 layers.
 *
 *   npx tsx bench/fusion/speed.ts [layers ...] [--runs N]     (default: 8 32 128, 3 runs)
 *
 * The graph: H = 4096 (the norms are full size: gamma [4096], Llama's HF spelling with Casts,
 * Pow, ReduceMean, Add, Sqrt, Div, Mul, Cast, Mul), and per layer the op structure of a Llama
 * decoder layer (q/k/v/o MatMuls, softmax attention, SiLU-gated MLP, two residual Adds). To keep
 * the files loadable (7B fp32 weights are 28 GB) the projections are low-rank stand-ins
 * (q/k/v [4096, 4], o [4, 4096], gate/up [4096, 8], down [8, 4096]): same ops and the same
 * [batch, seq, 4096] activations between the norms, 0.7 MB of weights per layer. rmsfuse never
 * reads weights, so the pass time does not depend on them; onnxruntime loads them all.
 *
 * Measured (median of N runs, after one warm-up):
 *   pass      the fusion pass alone (report.passes, 'fuse-rms-norm')
 *   optimize  optimize(IN, OUT): read + decode, validate, type inference + all passes, encode + write
 *   ort-off   InferenceSession.create, graphOptimizationLevel 'disabled' (load + partition only)
 *   ort-ext   InferenceSession.create, 'extended' (CPU provider): includes its RMSNorm fusions
 *   ort-opt   ort-ext - ort-off: what onnxruntime's optimizer itself costs
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { optimize } from '../../compiler/api.js';
import { build, SPECS, type Dims } from '../../examples/make-examples.js';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export interface SpeedRow {
  layers: number;
  nodes: number;
  mb: number;
  pass: number;
  optimize: number;
  ortOff: number;
  ortExt: number;
  fused: number;
}

async function ortCreate(file: string, level: 'disabled' | 'extended'): Promise<number> {
  const t0 = performance.now();
  const s = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], graphOptimizationLevel: level, logSeverityLevel: 3 });
  const ms = performance.now() - t0;
  await s.release();
  return ms;
}

export function llama7bShaped(layers: number): Uint8Array {
  const dims: Dims = { hidden: 4096, ffn: 8, head: 4, layers };
  return build({ ...SPECS.find((s) => s.name === 'mini-llama-fp32')!, name: `llama7b-shaped-${layers}` }, dims);
}

export async function measure(layers: number, runs: number, dir: string): Promise<SpeedRow> {
  const file = path.join(dir, `llama7b-shaped-${layers}.onnx`);
  const bytes = llama7bShaped(layers);
  fs.writeFileSync(file, bytes);
  const out = path.join(dir, `out-${layers}.onnx`);
  const pass: number[] = [], opt: number[] = [], off: number[] = [], ext: number[] = [];
  let fused = 0, nodes = 0;
  for (let i = 0; i < runs; i++) {
    const r = await optimize(file, out);
    pass.push(r.passes.find((p) => p.pass === 'fuse-rms-norm')?.ms ?? NaN);
    opt.push(r.timings.totalMs);
    fused = r.fused.length;
    off.push(await ortCreate(file, 'disabled'));
    ext.push(await ortCreate(file, 'extended'));
  }
  const { decodeModel } = await import('../../compiler/onnx/model.js');
  nodes = decodeModel(bytes).graph!.node.length;
  return { layers, nodes, mb: bytes.length / 2 ** 20, pass: median(pass), optimize: median(opt), ortOff: median(off), ortExt: median(ext), fused };
}

export function table(rows: SpeedRow[]): string {
  const head = ['layers', 'nodes', 'MB', 'fused', 'pass ms', 'pass ms/layer', 'optimize ms', 'ort-off ms', 'ort-ext ms', 'ort-opt ms', 'pass / ort-opt', 'optimize / ort-ext'];
  const lines = rows.map((r) => {
    const ortOpt = r.ortExt - r.ortOff;
    return [
      String(r.layers), String(r.nodes), r.mb.toFixed(1), String(r.fused), r.pass.toFixed(1), (r.pass / r.layers).toFixed(2),
      r.optimize.toFixed(0), r.ortOff.toFixed(0), r.ortExt.toFixed(0), ortOpt.toFixed(0),
      ortOpt > 0 ? (r.pass / ortOpt).toFixed(2) : 'n/a', (r.optimize / r.ortExt).toFixed(2),
    ];
  });
  const all = [head, ...lines];
  const w = head.map((_, i) => Math.max(...all.map((l) => l[i]!.length)));
  const row = (l: string[]) => `| ${l.map((c, i) => c.padStart(w[i]!)).join(' | ')} |`;
  return [row(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...lines.map(row)].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args.splice(runsAt, 2)[1]) : 3;
  const layers = args.length ? args.map(Number) : [8, 32, 128];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-speed-'));
  try {
    await measure(2, 1, dir); // warm-up: JIT, onnxruntime's first session
    const rows: SpeedRow[] = [];
    for (const l of layers) {
      rows.push(await measure(l, runs, dir));
      process.stderr.write(`measured ${l} layers\n`);
    }
    console.log(table(rows));
    if (rows.length >= 2) {
      const a = rows[0]!, b = rows[rows.length - 1]!;
      console.log(
        `\npass time ${a.layers} -> ${b.layers} layers: x${(b.pass / a.pass).toFixed(1)} for x${(b.layers / a.layers).toFixed(0)} layers ` +
          `(${(a.pass / a.layers).toFixed(2)} -> ${(b.pass / b.layers).toFixed(2)} ms/layer; linear means a constant ms/layer)`,
      );
      // Verdict with slack for timer noise and GC: ms/layer may grow at most 1.5x over the range.
      const growth = b.pass / b.layers / (a.pass / a.layers);
      console.log(growth <= 1.5 ? `linear: yes (ms/layer x${growth.toFixed(2)})` : `linear: NO (ms/layer x${growth.toFixed(2)})`);
      process.exitCode = growth <= 1.5 ? 0 : 1;
    }
    console.log(`node ${process.version}, onnxruntime-node ${ort.env.versions.node}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), ${runs} runs, medians`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
