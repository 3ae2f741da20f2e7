/**
 * Runs the generated WGSL kernels on SwiftShader (CPU Vulkan through dawn.node) through the
 * *emitted* launchers (emitWebGpu into a temp dir, then `import()` of its index.ts and kernel
 * modules) and compares every output with runtime/reference.ts.
 *
 * Tolerances are SPEC section 2's (ATB's golden tests), via compareWithTolerance:
 * - y, sum (fp32/fp16): fewer than 0.1% of elements over 1e-3 relative error (bf16: 2^-7). The
 *   kernels sum squares in f32 in another order than the reference (which sums in double), so
 *   rstd differs in the last bits and an fp16 rounding may flip by one ulp (< 1e-3 relative).
 * - rstd: as fp32 floats; dynamic scale: relative error <= 2^-8; q: |diff| <= 1 (a flipped
 *   rounding of v moves v / scale by far less than 1).
 *
 * The cases (test/wgsl/cases.ts) are a chosen set of shapes, shared with bench/wgsl/gpu-check.ts,
 * which runs them on any adapter (a real GPU, native fp16 too).
 * Native fp16 cannot run here (SwiftShader has no shader-f16); validate.test.ts checks it in Tint.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FusedNodeDesc } from '../../compiler/op/param.js';
import { emitWebGpu } from '../../codegen/wgsl/emit.js';
import { wgslSpecFromDesc, type WgslFeatures } from '../../codegen/wgsl/spec.js';
import { nodeGpu, swiftShaderUnavailable, type NodeGpu } from '../../runtime/webgpu/node.js';
import type { Launcher, LauncherOptions, TensorNames } from '../../runtime/webgpu/runtime.js';
import { CASES, checkRun, label, SPLIT_CASES, splitLabel } from './cases.js';
import { compareOutputs, findVariant, makeData, makeDesc, reference, tensorNames } from './fixtures.js';

// Module level on purpose: dawn.node must stay referenced (TOOLING.md).
let gpu: NodeGpu | undefined;
const launchers = new Map<string, (names: TensorNames, options?: LauncherOptions) => Launcher>();
const indexLaunchers: Record<string, Launcher> = {};
let emitted: { dir: string; descs: FusedNodeDesc[] }[] = [];

/** Emits `descs` into a fresh temp dir and imports its index.ts and kernel modules. */
async function emitAndImport(descs: FusedNodeDesc[], features: WgslFeatures): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-wgsl-'));
  const manifest = emitWebGpu(descs, dir, { features });
  const index = (await import(path.join(dir, 'index.ts'))) as { launchers: Record<string, Launcher> };
  Object.assign(indexLaunchers, index.launchers);
  for (const d of descs) {
    const id = manifest.nodes[d.node]!.kernel;
    const mod = (await import(path.join(dir, 'kernels', `${id}.ts`))) as { createLauncher: (n: TensorNames, o?: LauncherOptions) => Launcher };
    launchers.set(d.node, mod.createLauncher);
  }
  emitted.push({ dir, descs });
}

/**
 * Hooks of a describe block that runs kernels on SwiftShader: skip (with the reason) where it is
 * absent, else emit `descs` (those `withSubgroups` picks with the subgroups feature) and import
 * the launchers; remove the emitted folders afterwards.
 */
function useSwiftShaderKernels(descs: FusedNodeDesc[], withSubgroups: (i: number) => boolean): void {
  before(async function () {
    const why = swiftShaderUnavailable();
    if (why) {
      console.warn(`      skipped: ${why}`);
      this.skip();
    }
    gpu = await nodeGpu('swiftshader');
    await emitAndImport(descs.filter((_, i) => !withSubgroups(i)), { shaderF16: false, subgroups: false });
    await emitAndImport(descs.filter((_, i) => withSubgroups(i)), { shaderF16: false, subgroups: true });
  });

  after(() => {
    for (const e of emitted) fs.rmSync(e.dir, { recursive: true, force: true });
    emitted = [];
  });
}

describe('WGSL kernels on SwiftShader (emitted launchers vs CPU reference)', function () {
  this.timeout(120_000);
  const descs = CASES.map((k, i) => makeDesc(`case${i}`, k.variant, k.x, k.H, k.desc));

  useSwiftShaderKernels(descs, (i) => !!CASES[i]!.subgroups);

  CASES.forEach((k, i) => {
    it(label(k, i), async function () {
      const desc = descs[i]!;
      // Through index.ts (the node's bound launcher) unless the case needs launcher options.
      const launcher = k.launcher ? launchers.get(desc.node)!(tensorNames(desc), k.launcher) : indexLaunchers[desc.node]!;
      expect(await checkRun(launcher, gpu!.device, desc, k.H, k.rows, { seed: 1000 + i, zeroRows: k.zeroRows }, label(k, i))).to.deep.equal([]);
    });
  });

  it('reads back only the requested outputs, reuses and grows buffers across runs', async function () {
    const v = findVariant('prenorm int8 dynamic');
    const desc = descs.find((d, i) => CASES[i]!.variant === v && CASES[i]!.x === 'float32')!;
    const H = CASES[descs.indexOf(desc)]!.H;
    const launcher = indexLaunchers[desc.node]!;
    for (const [rows, seed] of [[5, 1], [40, 2], [3, 3]] as const) {
      const data = makeData(desc, H, rows, { seed });
      const got = await launcher.run(gpu!.device, data.inputs, [`${desc.node}.q`]);
      expect(Object.keys(got)).to.deep.equal([`${desc.node}.q`]);
      const want = reference(desc, H, data.ref);
      expect(compareOutputs({ ...desc, outputs: desc.outputs.filter((t) => t.role === 'q') }, got, want, `rows=${rows}`)).to.deep.equal([]);
    }
  });
});

describe('WGSL split-row path on SwiftShader (few long rows, emitted launchers vs CPU reference)', function () {
  this.timeout(120_000);
  const PORTABLE: WgslFeatures = { shaderF16: false, subgroups: false };
  const SUBGROUPS: WgslFeatures = { shaderF16: false, subgroups: true };
  const descs = SPLIT_CASES.map((k, i) => makeDesc(`split${i}`, k.variant, k.x, k.H, k.desc));
  const specOf = (i: number) => wgslSpecFromDesc(descs[i]!, SPLIT_CASES[i]!.subgroups ? SUBGROUPS : PORTABLE);

  useSwiftShaderKernels(descs, (i) => !!SPLIT_CASES[i]!.subgroups);

  SPLIT_CASES.forEach((k, i) => {
    it(splitLabel(k), async function () {
      const desc = descs[i]!;
      const split = specOf(i).splitRow!;
      const launcher = launchers.get(desc.node)!(tensorNames(desc), { splitRow: 'always' });
      const entryPoints = ['split_sumsq', ...(k.variant.param.dynamicQuant === 'symmetric' ? ['split_amax'] : []), 'split_norm'];
      for (const rows of [1, 2]) {
        // All-zero rows must agree on the 2^-23 scale floor across the row's workgroups.
        const data = { seed: 2000 + 10 * i + rows, zeroRows: k.zeroRows?.filter((r) => r < rows) };
        expect(await checkRun(launcher, gpu!.device, desc, k.H, rows, data, `${splitLabel(k)} rows=${rows}`)).to.deep.equal([]);
        // The run took the split path: S workgroups per row in each of its dispatches.
        expect(launcher.lastPlan).to.deep.equal({
          path: 'split',
          chunks: [{ startRow: 0, rows, dispatches: entryPoints.map((entryPoint) => ({ entryPoint, workgroups: [rows * split.workgroupsPerRow, 1] })) }],
        });
      }
    });
  });

  it('picks the split path from the row count (maxRows), and only where the kernel has one', function () {
    const i = SPLIT_CASES.findIndex((k) => k.variant.name === 'norm' && k.x === 'float32');
    const desc = descs[i]!;
    const { maxRows, workgroupsPerRow } = specOf(i).splitRow!;
    expect(maxRows).to.equal(32);
    const auto = launchers.get(desc.node)!(tensorNames(desc));
    // 'auto' on a GPU: the same device limits, a non-fallback adapter.
    const gpuDevice = { limits: gpu!.device.limits, adapterInfo: { isFallbackAdapter: false } } as unknown as GPUDevice;
    expect(auto.plan(gpuDevice, maxRows).path).to.equal('split');
    // ... and never on a CPU adapter: SwiftShader is one (isFallbackAdapter).
    expect(gpu!.device.adapterInfo.isFallbackAdapter).to.equal(true);
    expect(auto.plan(gpu!.device, 1).path).to.equal('rows');
    expect(auto.plan(gpuDevice, maxRows + 1)).to.deep.equal({
      path: 'rows',
      chunks: [{ startRow: 0, rows: maxRows + 1, dispatches: [{ entryPoint: 'main', workgroups: [maxRows + 1, 1] }] }],
    });
    expect(launchers.get(desc.node)!(tensorNames(desc), { splitRow: 'never' }).plan(gpu!.device, 1).path).to.equal('rows');
    expect(launchers.get(desc.node)!(tensorNames(desc), { splitRow: 'always' }).plan(gpu!.device, 1000).chunks[0]!.dispatches).to.deep.equal([
      { entryPoint: 'split_sumsq', workgroups: [1000 * workgroupsPerRow, 1] },
      { entryPoint: 'split_norm', workgroups: [1000 * workgroupsPerRow, 1] },
    ]);
    // H = 4096 kernels have no split path: 'always' changes nothing.
    const short = CASES.findIndex((k) => k.variant.name === 'norm' && k.H === 4096);
    const d4096 = makeDesc(`case${short}`, CASES[short]!.variant, CASES[short]!.x, 4096);
    expect(launchers.get(d4096.node)!(tensorNames(d4096), { splitRow: 'always' }).plan(gpu!.device, 1).path).to.equal('rows');
  });

  it("'always' with a 2-D grid and several chunks of rows (binding limit); the same kernel's one-pass path agrees", async function () {
    const i = SPLIT_CASES.findIndex((k) => k.variant.name === 'postnorm bias');
    const k = SPLIT_CASES[i]!;
    const desc = descs[i]!;
    const rows = 5;
    const S = specOf(i).splitRow!.workgroupsPerRow;
    // 2 rows per chunk (one fp32 row is 32 KiB), at most 3 workgroups per dimension.
    const options: LauncherOptions = { splitRow: 'always', maxBindingBytes: 2 * k.H * 4 + 3, maxWorkgroupsPerDimension: 3 };
    const split = launchers.get(desc.node)!(tensorNames(desc), options);
    const data = makeData(desc, k.H, rows, { seed: 7 });
    const want = reference(desc, k.H, data.ref);
    const got = await split.run(gpu!.device, data.inputs);
    expect(split.lastPlan!.path).to.equal('split');
    expect(split.lastPlan!.chunks.map((c) => [c.startRow, c.rows, c.dispatches[0]!.workgroups])).to.deep.equal([
      [0, 2, [3, Math.ceil((2 * S) / 3)]],
      [2, 2, [3, Math.ceil((2 * S) / 3)]],
      [4, 1, [3, Math.ceil(S / 3)]],
    ]);
    expect(compareOutputs(desc, got, want, 'split, 2-D, 3 chunks')).to.deep.equal([]);
    const onePass = launchers.get(desc.node)!(tensorNames(desc), { splitRow: 'never' });
    expect(compareOutputs(desc, await onePass.run(gpu!.device, data.inputs), want, 'one-pass')).to.deep.equal([]);
    expect(onePass.lastPlan!.path).to.equal('rows');
  });
});

describe('WGSL: 32 identical layers share one kernel', function () {
  this.timeout(60_000);
  let dir = '';
  before(function () {
    if (swiftShaderUnavailable()) this.skip();
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('emits one kernel for 32 static-int8 nodes; each runs with its own scale and offset', async function () {
    const v = findVariant('norm int8 static');
    const H = 64;
    const descs = Array.from({ length: 32 }, (_, l) => makeDesc(`model/layers.${l}/norm`, v, 'float16', H));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-wgsl-'));
    const manifest = emitWebGpu(descs, dir);
    expect(Object.keys(manifest.kernels)).to.have.length(1);
    expect(Object.keys(manifest.nodes)).to.have.length(32);
    expect(fs.readdirSync(path.join(dir, 'kernels')).sort()).to.have.length(3); // .wgsl, .ts, runtime.ts
    const { launchers: ls } = (await import(path.join(dir, 'index.ts'))) as { launchers: Record<string, Launcher> };
    const device = (await nodeGpu('swiftshader')).device;
    for (const l of [0, 17, 31]) {
      const d = descs[l]!;
      const data = makeData(d, H, 9, { seed: l });
      // Layers differ in their scale (and offset): run-time values, not baked into the shader.
      const scale = new Float32Array([0.01 + l * 0.002]);
      data.inputs[`${d.node}.scale`] = scale;
      data.ref.scale = scale[0]!;
      data.inputs[`${d.node}.offset`] = new Int8Array([l - 16]);
      data.ref.offset = l - 16;
      const got = await ls[d.node]!.run(device, data.inputs);
      expect(compareOutputs(d, got, reference(d, H, data.ref), d.node)).to.deep.equal([]);
    }
  });
});
