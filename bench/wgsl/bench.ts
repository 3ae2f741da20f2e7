/**
 * WebGPU kernel benchmark (not a test). For Norm, PreNorm and Norm + dynamic int8 at
 * H = 4096, 8192 and 1, 64, 4096 rows it reports:
 * - achieved bandwidth: the kernel's minimal bytes (KERNELS.md table: every row tensor once,
 *   per-row outputs, gamma once) over its GPU time (timestamp queries, averaged over back-to-back
 *   dispatches), as a ratio to a plain copy kernel moving the same bytes on the same adapter;
 * - wall time of the emitted launcher's run() (upload, dispatch, readback) against onnxruntime's
 *   WebGPU EP running SimplifiedLayerNormalization / com.microsoft.SkipSimplifiedLayerNormalization
 *   on the same shapes, in a child process (onnxruntime aborts next to dawn.node).
 *
 *   npx tsx bench/wgsl/bench.ts [--adapter swiftshader|default] [--dtype float32|float16]
 *                               [--runs N] [--rows 1,64,4096] [--H 4096,8192] [--no-ort]
 *                               [--split auto|always|never] [--gpu-ms MS]
 *
 * --split is the launchers' splitRow option: 'auto' takes the split-row path for few rows of
 * H >= 8192 (column `path`), 'never' / 'always' compare it with the one-pass kernel.
 * --gpu-ms is the GPU time each measurement aims at (default 300; less for quick sweeps).
 * SwiftShader figures are a sanity check only (KERNELS.md: never tune for it).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { FloatDType } from '../../compiler/op/param.js';
import { emitWebGpu } from '../../codegen/wgsl/emit.js';
import { childGpuEnv, nodeGpu, swiftShaderUnavailable, type Backend } from '../../runtime/webgpu/node.js';
import { elementBytes, timeDispatches, type KernelInfo, type TensorData } from '../../runtime/webgpu/runtime.js';
import { findVariant, makeData, makeDesc, tensorNames } from '../../test/wgsl/fixtures.js';
import { importEmittedKernels } from './emitted.js';
import type { OrtCase } from './ort-child.js';

const { values: args } = parseArgs({
  options: {
    adapter: { type: 'string' },
    dtype: { type: 'string', default: 'float32' },
    runs: { type: 'string', default: '5' },
    rows: { type: 'string', default: '1,64,4096' },
    H: { type: 'string', default: '4096,8192' },
    'no-ort': { type: 'boolean', default: false },
    split: { type: 'string', default: 'auto' },
    'gpu-ms': { type: 'string', default: '300' },
  },
});
const backend = (args.adapter ?? (swiftShaderUnavailable() ? 'default' : 'swiftshader')) as Backend;
const dtype = args.dtype as FloatDType;
const runs = Number(args.runs);
const splitRow = args.split as 'auto' | 'always' | 'never';
const gpuNs = Number(args['gpu-ms']) * 1e6;
if (!(gpuNs > 0)) throw new Error(`--gpu-ms must be a positive number of milliseconds, got ${args['gpu-ms']}`);
if (!['auto', 'always', 'never'].includes(splitRow)) throw new Error(`--split must be auto, always or never, got ${splitRow}`);
const ROWS = args.rows!.split(',').map(Number);
const HS = args.H!.split(',').map(Number);
const KINDS = [
  { kind: 'norm', variant: 'norm', ort: 'norm' as const },
  { kind: 'prenorm', variant: 'prenorm', ort: 'prenorm' as const },
  { kind: 'dyn-int8', variant: 'norm int8 dynamic, no beta', ort: undefined },
];

interface BenchCase {
  key: string;
  kind: (typeof KINDS)[number];
  H: number;
  rows: number;
}
const cases: BenchCase[] = KINDS.flatMap((kind) => HS.flatMap((H) => ROWS.map((rows) => ({ key: `${kind.kind}/${H}/${rows}`, kind, H, rows }))));

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

// ---- onnxruntime first, in a child process (and not at the same time: 2 cores are shared).
const ortMs = new Map<string, number>();
const ortNa = new Map<string, string>();
if (args['no-ort']) {
  for (const c of cases) ortNa.set(c.key, 'skipped (--no-ort)');
} else {
  const ortCases: OrtCase[] = cases.filter((c) => c.kind.ort).map((c) => ({ key: c.key, kind: c.kind.ort!, H: c.H, rows: c.rows, dtype: dtype as 'float32' | 'float16' }));
  // From source through tsx; bundled (bench/wgsl/device) the child is ort-child.mjs beside this file.
  const bundled = !import.meta.url.endsWith('.ts');
  const child = fileURLToPath(new URL(bundled ? './ort-child.mjs' : './ort-child.ts', import.meta.url));
  const r = spawnSync(process.execPath, [...(bundled ? [] : ['--import', 'tsx']), child, JSON.stringify({ cases: ortCases, runs })], {
    env: childGpuEnv(backend),
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const lines = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{'));
  for (const l of lines) {
    const o = JSON.parse(l) as { key: string; ms?: number; na?: string };
    if (o.ms !== undefined) ortMs.set(o.key, o.ms);
    else ortNa.set(o.key, o.na ?? 'failed');
  }
  const why = r.error?.message ?? (r.status !== 0 ? `child exited with ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').pop()}` : 'no result');
  for (const c of ortCases) if (!ortMs.has(c.key) && !ortNa.has(c.key)) ortNa.set(c.key, why);
  for (const c of cases) if (!c.kind.ort) ortNa.set(c.key, 'onnxruntime has no fused RMSNorm + dynamic int8 op');
}

// ---- our kernels, through emitted launchers
const gpu = await nodeGpu(backend);
const { device, adapter } = gpu;
if (!device.features.has('timestamp-query')) throw new Error('the adapter lacks timestamp-query: no GPU times');
const features = { shaderF16: device.features.has('shader-f16'), subgroups: device.features.has('subgroups') };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-bench-'));
const descs = cases.map((c, i) => makeDesc(`b${i}`, findVariant(c.kind.variant), dtype, c.H));
const manifest = emitWebGpu(descs, dir, { features });
const modules = await importEmittedKernels(dir, manifest);

/** Minimal bytes of one run: row tensors once, per-row outputs, gamma once (KERNELS.md). */
function minimalBytes(k: KernelInfo, rows: number): number {
  let bytes = 0;
  for (const b of k.bindings) bytes += (b.extent === 'rows' ? rows * k.H : b.extent === 'vector' ? k.H : rows) * elementBytes(b);
  return bytes;
}

const COPY_WGSL = `@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  let i = g.x + g.y * n.x * 256u;
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}`;
const copyPipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: COPY_WGSL }), entryPoint: 'main' } });

/** Copy bandwidth (bytes moved per ns, read + write) for `bytes` of total traffic. */
async function copyBandwidth(bytes: number, iterations: number): Promise<number> {
  const half = Math.min(Math.ceil(bytes / 2 / 16) * 16, Math.floor(device.limits.maxStorageBufferBindingSize / 16) * 16);
  const usage = 0x80 | 0x08; // STORAGE | COPY_DST
  const src = device.createBuffer({ size: half, usage });
  const dst = device.createBuffer({ size: half, usage });
  const bindGroup = device.createBindGroup({
    layout: copyPipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: src } },
      { binding: 1, resource: { buffer: dst } },
    ],
  });
  const groups = Math.ceil(half / 16 / 256);
  const x = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
  const ns = await timeDispatches(device, iterations, (pass) => {
    pass.setPipeline(copyPipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
  });
  src.destroy();
  dst.destroy();
  return (2 * half) / ns;
}

interface Row {
  c: BenchCase;
  mb: number;
  kernelUs: number;
  gbs: number;
  copyGbs: number;
  ratio: number;
  runMs: number;
  path: string;
  ortMs?: number;
  speedup?: number;
}
const rows: Row[] = [];
for (const [i, c] of cases.entries()) {
  const d = descs[i]!;
  const mod = modules.get(manifest.nodes[d.node]!.kernel)!;
  const launcher = mod.createLauncher(tensorNames(d), { splitRow });
  const k = mod.kernel;
  const { inputs } = makeData(d, c.H, c.rows, { seed: i });
  const bytes = minimalBytes(k, c.rows);
  // Calibrate: about --gpu-ms of GPU time per measurement, at least 2 and at most 2000 dispatches.
  const once = (await launcher.gpuTime(device, inputs, 1))!;
  const iterations = Math.max(2, Math.min(2000, Math.round(gpuNs / Math.max(once, 1))));
  // Median of three: timestamps on a CPU adapter are noisy (the submitting thread competes with it).
  const nsAll: number[] = [];
  const copyAll: number[] = [];
  for (let m = 0; m < 3; m++) {
    nsAll.push((await launcher.gpuTime(device, inputs, iterations))!);
    copyAll.push(await copyBandwidth(bytes, iterations));
  }
  const ns = median(nsAll);
  const copy = median(copyAll);
  await launcher.run(device, inputs as Record<string, TensorData>); // warm-up
  const wall: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await launcher.run(device, inputs);
    wall.push(performance.now() - t0);
  }
  const runMs = median(wall);
  const o = ortMs.get(c.key);
  const pathTaken = launcher.lastPlan?.path ?? 'n/a';
  rows.push({ c, mb: bytes / 1e6, kernelUs: ns / 1e3, gbs: bytes / ns, copyGbs: copy, ratio: bytes / ns / copy, runMs, path: pathTaken, ortMs: o, speedup: o !== undefined ? o / runMs : undefined });
  process.stderr.write(`.`);
}
process.stderr.write('\n');
fs.rmSync(dir, { recursive: true, force: true });

const info = adapter.info;
console.log(`adapter: ${[info.vendor, info.architecture, info.description].filter(Boolean).join(' ')} (${backend}); x ${dtype}; features: ${JSON.stringify(features)}`);
console.log('bytes = SPEC minimum (row tensors once, per-row outputs, gamma once); ratio = achieved / copy bandwidth; run() and ORT = median wall ms incl. upload and readback');
console.log(`path: one-pass kernel (rows) or split-row path (split); --split ${splitRow}`);
const head = ['variant', 'H', 'rows', 'path', 'MB', 'kernel us', 'GB/s', 'copy GB/s', 'ratio', 'run() ms', 'ORT ms', 'speed-up'];
const table = rows.map((r) => [
  r.c.kind.kind,
  String(r.c.H),
  String(r.c.rows),
  r.path,
  r.mb.toFixed(2),
  r.kernelUs.toFixed(1),
  r.gbs.toFixed(2),
  r.copyGbs.toFixed(2),
  r.ratio.toFixed(2),
  r.runMs.toFixed(2),
  r.ortMs !== undefined ? r.ortMs.toFixed(2) : 'n/a',
  r.speedup !== undefined ? `${r.speedup.toFixed(2)}x` : 'n/a',
]);
const width = head.map((h, j) => Math.max(h.length, ...table.map((t) => t[j]!.length)));
const line = (cells: string[]): string => cells.map((s, j) => (j < 1 ? s.padEnd(width[j]!) : s.padStart(width[j]!))).join('  ');
console.log(line(head));
for (const t of table) console.log(line(t));
const reasons = new Set([...ortNa.values()]);
for (const r of reasons) console.log(`ORT n/a: ${r}`);
console.log(`median ratio to copy: ${median(rows.map((r) => r.ratio)).toFixed(2)}`);
const sp = rows.filter((r) => r.speedup !== undefined).map((r) => r.speedup!);
console.log(`median speed-up over onnxruntime: ${sp.length ? `${median(sp).toFixed(2)}x (${sp.length} cases)` : 'n/a'}`);
process.exit(0);
