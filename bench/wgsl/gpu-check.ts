/**
 * Runs the WGSL kernel cases of test/wgsl/cases.ts on a WebGPU adapter through emitted launchers
 * and compares every output with the CPU reference under SPEC 2's tolerances (checkRun). CI runs
 * the same cases on SwiftShader (test/wgsl/execute.test.ts); this script is for the adapters CI
 * lacks, a real GPU above all, where native fp16 (shader-f16), the GPU's own subgroup size and the
 * launchers' 'auto' choice of the split-row path take effect. Not a test: a check to run where a
 * GPU is (bench/wgsl/device runs it before the benchmark).
 *
 *   npx tsx bench/wgsl/gpu-check.ts [--adapter default|swiftshader] [--only SUBSTRING]
 *
 * Runs, per case:
 * - every one-pass case as CI runs it (packed fp16; subgroups where the case asks and the adapter
 *   has them), with the launchers' default splitRow 'auto';
 * - every fp16 one-pass case again with native f16 (and subgroups), where the adapter has shader-f16;
 * - every split-row case at rows 1 and 2 with splitRow 'always', in packed fp16 and, where the
 *   adapter has it, native f16.
 * Prints one line per run (ok or its mismatches), then `K/N runs pass`; exits 0 iff all pass.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { FusedNodeDesc } from '../../compiler/op/param.js';
import { emitWebGpu } from '../../codegen/wgsl/emit.js';
import type { WgslFeatures } from '../../codegen/wgsl/spec.js';
import { nodeGpu, swiftShaderUnavailable, type Backend } from '../../runtime/webgpu/node.js';
import type { LauncherOptions } from '../../runtime/webgpu/runtime.js';
import { CASES, checkRun, label, SPLIT_CASES, splitLabel } from '../../test/wgsl/cases.js';
import { makeDesc, tensorNames } from '../../test/wgsl/fixtures.js';
import { importEmittedKernels, type KernelModule } from './emitted.js';

const { values: args } = parseArgs({ options: { adapter: { type: 'string' }, only: { type: 'string' } } });
const backend = (args.adapter ?? (swiftShaderUnavailable() ? 'default' : 'swiftshader')) as Backend;
if (!['default', 'swiftshader'].includes(backend)) throw new Error(`--adapter must be default or swiftshader, got ${backend}`);

const { device, adapter } = await nodeGpu(backend);
const has = { shaderF16: device.features.has('shader-f16'), subgroups: device.features.has('subgroups') };
const info = adapter.info;
console.log(`adapter: ${[info.vendor, info.architecture, info.description].filter(Boolean).join(' ')} (${backend}); features: ${JSON.stringify(has)}; fallback: ${device.adapterInfo.isFallbackAdapter}`);

interface Run {
  label: string;
  desc: FusedNodeDesc;
  features: WgslFeatures;
  H: number;
  rows: number[];
  seed: number;
  zeroRows?: number[];
  options?: LauncherOptions;
}

const runs: Run[] = [];
const mode = (f: WgslFeatures): string => `${f.shaderF16 ? 'native f16' : 'packed'}${f.subgroups ? ', subgroups' : ''}`;
const add = (name: string, k: (typeof CASES)[number] | (typeof SPLIT_CASES)[number], features: WgslFeatures, rest: Omit<Run, 'label' | 'desc' | 'features' | 'H'>): void => {
  const node = `run${runs.length}`;
  runs.push({ label: `${name} [${mode(features)}]`, desc: makeDesc(node, k.variant, k.x, k.H, k.desc), features, H: k.H, ...rest });
};
CASES.forEach((k, i) => {
  add(label(k, i), k, { shaderF16: false, subgroups: !!k.subgroups && has.subgroups }, { rows: [k.rows], seed: 1000 + i, zeroRows: k.zeroRows, options: k.launcher });
  if (k.x === 'float16' && has.shaderF16) add(label(k, i), k, { shaderF16: true, subgroups: has.subgroups }, { rows: [k.rows], seed: 1000 + i, zeroRows: k.zeroRows, options: k.launcher });
});
SPLIT_CASES.forEach((k, i) => {
  const rest = { rows: [1, 2], seed: 2000 + 10 * i, zeroRows: k.zeroRows, options: { splitRow: 'always' as const } };
  add(`${splitLabel(k)} split`, k, { shaderF16: false, subgroups: !!k.subgroups && has.subgroups }, rest);
  if (k.x === 'float16' && has.shaderF16) add(`${splitLabel(k)} split`, k, { shaderF16: true, subgroups: has.subgroups }, rest);
});
const selected = runs.filter((r) => !args.only || r.label.includes(args.only));

// One emitted folder per feature set, each imported as JavaScript.
const dirs: string[] = [];
const kernelOf = new Map<string, KernelModule>();
const groups = new Map<string, Run[]>();
for (const r of selected) groups.set(JSON.stringify(r.features), [...(groups.get(JSON.stringify(r.features)) ?? []), r]);
for (const [key, group] of groups) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-gpu-check-'));
  dirs.push(dir);
  const manifest = emitWebGpu(group.map((r) => r.desc), dir, { features: JSON.parse(key) as WgslFeatures });
  const modules = await importEmittedKernels(dir, manifest);
  for (const r of group) kernelOf.set(r.desc.node, modules.get(manifest.nodes[r.desc.node]!.kernel)!);
}

let passed = 0;
for (const r of selected) {
  const desc = r.desc;
  const launcher = kernelOf.get(desc.node)!.createLauncher(tensorNames(desc), r.options);
  const errors: string[] = [];
  const paths: string[] = [];
  for (const rows of r.rows) {
    const zeroRows = r.zeroRows?.filter((z) => z < rows);
    try {
      errors.push(...(await checkRun(launcher, device, desc, r.H, rows, { seed: r.seed + rows, zeroRows }, `${r.label} rows=${rows}`)));
    } catch (e) {
      errors.push(`${r.label} rows=${rows}: ${(e as Error).message}`);
    }
    paths.push(launcher.lastPlan?.path ?? '?');
  }
  if (errors.length === 0) passed++;
  console.log(`${errors.length === 0 ? 'ok  ' : 'FAIL'} ${r.label} rows=${r.rows.join(',')} path=${paths.join(',')}${errors.length ? `\n       ${errors.join('\n       ')}` : ''}`);
}
for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
console.log(`${passed}/${selected.length} runs pass`);
process.exit(passed === selected.length && selected.length > 0 ? 0 : 1);
