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
 * Shapes are a chosen set, not a cross product (SwiftShader is slow): each variant runs in fp32
 * and in packed fp16 on a different shape; together they cover H = 1, 3, 4, 8, 4095, 4096, 16384,
 * odd H for packed fp16 and int8 outputs, rows = 1 and rows = 70000 (2-D dispatch).
 * The split-row path (few rows of H >= 8192) has its own set below: Norm, PreNorm, PostNorm,
 * static and dynamic int8 in fp32 and packed fp16 at H = 16384 and 32768 (static int8 at H not a
 * multiple of 4, where chunks must start on words of the packed output) with rows = 1 and 2,
 * then the other variants, vec1/vec2 units, bf16, subgroups, a 2-D grid and several chunks.
 * Native fp16 cannot run here (SwiftShader has no shader-f16); validate.test.ts checks it in Tint.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FloatDType, FusedNodeDesc } from '../../compiler/op/param.js';
import { emitWebGpu } from '../../codegen/wgsl/emit.js';
import { wgslSpecFromDesc, type WgslFeatures } from '../../codegen/wgsl/spec.js';
import { nodeGpu, swiftShaderUnavailable, type NodeGpu } from '../../runtime/webgpu/node.js';
import type { Launcher, LauncherOptions, TensorNames } from '../../runtime/webgpu/runtime.js';
import { compareOutputs, findVariant, makeData, makeDesc, reference, type DescOptions, type Variant } from './fixtures.js';

interface Case {
  variant: Variant;
  x: FloatDType;
  H: number;
  rows: number;
  desc?: DescOptions;
  zeroRows?: number[];
  /** Emit with the subgroups feature (SwiftShader has it; one-row workgroups then use subgroupAdd). */
  subgroups?: boolean;
  /** Launcher options: small limits force several dispatches or a 2-D grid. */
  launcher?: LauncherOptions;
  note?: string;
}

const c = (name: string, x: FloatDType, H: number, rows: number, more: Partial<Case> = {}): Case => ({ variant: findVariant(name), x, H, rows, ...more });

const CASES: Case[] = [
  // Every variant in fp32 and packed fp16, one shape each.
  c('norm', 'float32', 4096, 4),
  c('norm', 'float16', 1, 300),
  c('norm gemma', 'float32', 3, 257),
  c('norm gemma', 'float16', 4095, 5),
  c('norm high_performance', 'float32', 8, 70),
  c('norm high_performance', 'float16', 16384, 1),
  c('norm rstd', 'float32', 16384, 1),
  c('norm rstd', 'float16', 6, 33),
  c('norm int8 static', 'float32', 127, 20),
  c('norm int8 static', 'float16', 4096, 3),
  c('norm int8 dynamic', 'float32', 4095, 3, { zeroRows: [1] }),
  c('norm int8 dynamic, no beta', 'float16', 6, 33, { zeroRows: [0, 7] }),
  c('prenorm', 'float32', 768, 12),
  c('prenorm', 'float16', 3, 100),
  c('prenorm bias', 'float32', 1, 64),
  c('prenorm bias', 'float16', 2050, 3),
  c('prenorm high_performance', 'float32', 4, 129),
  c('prenorm high_performance', 'float16', 768, 6),
  c('postnorm', 'float32', 130, 9),
  c('postnorm', 'float16', 16384, 1),
  c('postnorm bias', 'float32', 4095, 2),
  c('postnorm bias', 'float16', 8, 70),
  c('prenorm int8 static', 'float32', 5, 50),
  c('prenorm int8 static', 'float16', 130, 9),
  c('postnorm int8 static', 'float32', 2050, 3),
  c('postnorm int8 static', 'float16', 127, 20),
  c('prenorm int8 dynamic', 'float32', 6, 33, { zeroRows: [2] }),
  c('prenorm int8 dynamic', 'float16', 4096, 2),
  c('postnorm int8 dynamic', 'float32', 8, 70, { zeroRows: [5] }),
  c('postnorm int8 dynamic', 'float16', 1, 300, { zeroRows: [3] }),
  // bf16 activations (packed in u32), including odd H with atomic sub-word outputs.
  c('norm', 'bfloat16', 4096, 3),
  c('norm high_performance', 'bfloat16', 8, 30),
  c('prenorm int8 dynamic', 'bfloat16', 127, 9, { zeroRows: [4] }),
  // Weights and scale in other dtypes than x.
  c('norm', 'float16', 4095, 3, { desc: { weights: 'float32' }, note: 'fp32 gamma' }),
  c('prenorm bias', 'float16', 4096, 2, { desc: { weights: 'float32' }, note: 'fp32 gamma and bias' }),
  c('norm int8 static', 'float16', 7, 40, { desc: { scale: 'float16' }, note: 'fp16 scale' }),
  // Subgroup reductions (one row per workgroup).
  c('norm', 'float32', 4096, 3, { subgroups: true }),
  c('norm int8 dynamic', 'float16', 4095, 3, { subgroups: true, zeroRows: [2] }),
  c('prenorm', 'float16', 2050, 2, { subgroups: true }),
  c('postnorm int8 dynamic', 'float32', 16384, 1, { subgroups: true }),
  // Rows too long for registers: read again in the later passes (the one-pass kernel, not the split path).
  c('norm int8 dynamic', 'float16', 32768, 1, { launcher: { splitRow: 'never' }, note: 'row re-read' }),
  c('prenorm', 'float32', 32768, 2, { launcher: { splitRow: 'never' }, note: 'row re-read' }),
  // Many rows: a real 2-D dispatch (70000 workgroups of one row each), and a forced one.
  c('norm', 'float32', 129, 70000, { subgroups: true, note: '70000 workgroups' }),
  c('norm int8 dynamic, no beta', 'float16', 8, 70000, { zeroRows: [0, 1, 69999], launcher: { maxWorkgroupsPerDimension: 100 }, note: '2-D grid' }),
  // Several dispatches when tensors exceed the binding limit (atomic outputs are cleared per dispatch).
  c('prenorm', 'float16', 130, 37, { launcher: { maxBindingBytes: 1024 }, note: '13 dispatches' }),
  c('norm int8 dynamic, no beta', 'float16', 7, 50, { zeroRows: [9], launcher: { maxBindingBytes: 64 }, note: '13 dispatches' }),
];

const label = (k: Case, i: number): string =>
  `${k.variant.name} ${k.x} H=${k.H} rows=${k.rows}${k.subgroups ? ' subgroups' : ''}${k.note ? ` (${k.note})` : ''} #${i}`;

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
      const data = makeData(desc, k.H, k.rows, { seed: 1000 + i, zeroRows: k.zeroRows });
      // Through index.ts (the node's bound launcher) unless the case needs launcher options.
      const launcher = k.launcher ? launchers.get(desc.node)!({ inputs: desc.inputs.map((t) => t.name), outputs: desc.outputs.map((t) => t.name) }, k.launcher) : indexLaunchers[desc.node]!;
      const got = await launcher.run(gpu!.device, data.inputs);
      const want = reference(desc, k.H, data.ref);
      expect(compareOutputs(desc, got, want, label(k, i))).to.deep.equal([]);
      if (k.zeroRows && want.scale && !k.variant.present.includes('beta')) {
        // An all-zero row (without beta, v = 0): scale is the 2^-23 floor and q is 0 (SPEC 2).
        const scale = got[`${desc.node}.scale`] as Float32Array;
        const q = got[`${desc.node}.q`] as Int8Array;
        for (const r of k.zeroRows) {
          expect(scale[r]).to.equal(2 ** -23);
          expect(Array.from(q.subarray(r * k.H, (r + 1) * k.H)).every((v) => v === 0)).to.equal(true);
        }
      }
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

interface SplitCase {
  variant: Variant;
  x: FloatDType;
  H: number;
  desc?: DescOptions;
  zeroRows?: number[];
  subgroups?: boolean;
  note?: string;
}

const sc = (name: string, x: FloatDType, H: number, more: Partial<SplitCase> = {}): SplitCase => ({ variant: findVariant(name), x, H, ...more });

/**
 * Each runs with rows = 1 and rows = 2 through its emitted kernel module with splitRow 'always'
 * ('auto' never splits on a CPU adapter such as SwiftShader): both must take the split path.
 */
const SPLIT_CASES: SplitCase[] = [
  // The required set: each variant in fp32 and packed fp16, H = 16384 and 32768 between them.
  sc('norm', 'float32', 16384),
  sc('norm', 'float16', 32768),
  sc('prenorm', 'float32', 32768),
  sc('prenorm', 'float16', 16384),
  sc('postnorm', 'float32', 16384),
  sc('postnorm', 'float16', 32768),
  sc('norm int8 dynamic', 'float32', 32768),
  sc('norm int8 dynamic', 'float16', 16384),
  // Static int8 where H is no multiple of 4: vec2 and scalar units, q OR-ed into shared words.
  sc('norm int8 static', 'float32', 16386),
  sc('norm int8 static', 'float16', 32767),
  // The other variants and layouts.
  sc('norm gemma', 'bfloat16', 16386),
  sc('prenorm bias', 'float16', 16383, { desc: { weights: 'float32' }, note: 'scalar units: the sum is read back from shared words' }),
  sc('postnorm bias', 'float32', 8192),
  sc('prenorm int8 static', 'float16', 16384),
  sc('postnorm int8 static', 'float32', 32767, { note: 'q and y' }),
  sc('prenorm int8 dynamic', 'bfloat16', 16384),
  sc('postnorm int8 dynamic', 'float16', 16390, { zeroRows: [1] }),
  sc('norm int8 dynamic, no beta', 'float32', 16384, { subgroups: true, zeroRows: [0] }),
  sc('prenorm high_performance', 'float16', 16384, { subgroups: true }),
];

const splitLabel = (k: SplitCase): string =>
  `${k.variant.name} ${k.x} H=${k.H}${k.subgroups ? ' subgroups' : ''}${k.desc?.weights ? ` (${k.desc.weights} weights)` : ''}${k.note ? ` (${k.note})` : ''}`;

describe('WGSL split-row path on SwiftShader (few long rows, emitted launchers vs CPU reference)', function () {
  this.timeout(120_000);
  const PORTABLE: WgslFeatures = { shaderF16: false, subgroups: false };
  const SUBGROUPS: WgslFeatures = { shaderF16: false, subgroups: true };
  const descs = SPLIT_CASES.map((k, i) => makeDesc(`split${i}`, k.variant, k.x, k.H, k.desc));
  const specOf = (i: number) => wgslSpecFromDesc(descs[i]!, SPLIT_CASES[i]!.subgroups ? SUBGROUPS : PORTABLE);
  const names = (d: FusedNodeDesc): TensorNames => ({ inputs: d.inputs.map((t) => t.name), outputs: d.outputs.map((t) => t.name) });

  useSwiftShaderKernels(descs, (i) => !!SPLIT_CASES[i]!.subgroups);

  SPLIT_CASES.forEach((k, i) => {
    it(splitLabel(k), async function () {
      const desc = descs[i]!;
      const split = specOf(i).splitRow!;
      const launcher = launchers.get(desc.node)!(names(desc), { splitRow: 'always' });
      const entryPoints = ['split_sumsq', ...(k.variant.param.dynamicQuant === 'symmetric' ? ['split_amax'] : []), 'split_norm'];
      for (const rows of [1, 2]) {
        const data = makeData(desc, k.H, rows, { seed: 2000 + 10 * i + rows, zeroRows: k.zeroRows?.filter((r) => r < rows) });
        const got = await launcher.run(gpu!.device, data.inputs);
        // The run took the split path: S workgroups per row in each of its dispatches.
        expect(launcher.lastPlan).to.deep.equal({
          path: 'split',
          chunks: [{ startRow: 0, rows, dispatches: entryPoints.map((entryPoint) => ({ entryPoint, workgroups: [rows * split.workgroupsPerRow, 1] })) }],
        });
        const want = reference(desc, k.H, data.ref);
        expect(compareOutputs(desc, got, want, `${splitLabel(k)} rows=${rows}`)).to.deep.equal([]);
        for (const r of k.zeroRows ?? []) {
          if (r >= rows) continue;
          // An all-zero row without beta: the scale floor 2^-23 and q = 0 (SPEC 2), agreed across the row's workgroups.
          expect((got[`${desc.node}.scale`] as Float32Array)[r]).to.equal(2 ** -23);
          expect((got[`${desc.node}.q`] as Int8Array).subarray(r * k.H, (r + 1) * k.H).every((v) => v === 0)).to.equal(true);
        }
      }
    });
  });

  it('picks the split path from the row count (maxRows), and only where the kernel has one', function () {
    const i = SPLIT_CASES.findIndex((k) => k.variant.name === 'norm' && k.x === 'float32');
    const desc = descs[i]!;
    const { maxRows, workgroupsPerRow } = specOf(i).splitRow!;
    expect(maxRows).to.equal(32);
    const auto = launchers.get(desc.node)!(names(desc));
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
    expect(launchers.get(desc.node)!(names(desc), { splitRow: 'never' }).plan(gpu!.device, 1).path).to.equal('rows');
    expect(launchers.get(desc.node)!(names(desc), { splitRow: 'always' }).plan(gpu!.device, 1000).chunks[0]!.dispatches).to.deep.equal([
      { entryPoint: 'split_sumsq', workgroups: [1000 * workgroupsPerRow, 1] },
      { entryPoint: 'split_norm', workgroups: [1000 * workgroupsPerRow, 1] },
    ]);
    // H = 4096 kernels have no split path: 'always' changes nothing.
    const short = CASES.findIndex((k) => k.variant.name === 'norm' && k.H === 4096);
    const d4096 = makeDesc(`case${short}`, CASES[short]!.variant, CASES[short]!.x, 4096);
    expect(launchers.get(d4096.node)!(names(d4096), { splitRow: 'always' }).plan(gpu!.device, 1).path).to.equal('rows');
  });

  it("'always' with a 2-D grid and several chunks of rows (binding limit); the same kernel's one-pass path agrees", async function () {
    const i = SPLIT_CASES.findIndex((k) => k.variant.name === 'postnorm bias');
    const k = SPLIT_CASES[i]!;
    const desc = descs[i]!;
    const rows = 5;
    const S = specOf(i).splitRow!.workgroupsPerRow;
    // 2 rows per chunk (one fp32 row is 32 KiB), at most 3 workgroups per dimension.
    const options: LauncherOptions = { splitRow: 'always', maxBindingBytes: 2 * k.H * 4 + 3, maxWorkgroupsPerDimension: 3 };
    const split = launchers.get(desc.node)!(names(desc), options);
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
    const onePass = launchers.get(desc.node)!(names(desc), { splitRow: 'never' });
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
