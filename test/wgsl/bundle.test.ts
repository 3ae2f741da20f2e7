/**
 * The WebGPU scripts as they run on a GPU machine without Node tooling (bench/wgsl/device): the
 * esbuild bundles of gpu-check and bench run under plain node (no tsx), with only the native
 * packages beside them, load emitted launchers as JavaScript, and report what they measured.
 * Here on SwiftShader, on a few small cases (the full runs are for a GPU). Also: the check they
 * share with execute.test.ts (checkRun) does catch wrong outputs.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleScripts, NATIVE_PACKAGES } from '../../bench/wgsl/device/bundle.js';
import type { Launcher, TensorData } from '../../runtime/webgpu/runtime.js';
import { swiftShaderUnavailable } from '../../runtime/webgpu/node.js';
import { CASES, checkRun, SPLIT_CASES, splitLabel } from './cases.js';
import { findVariant, makeData, makeDesc, reference } from './fixtures.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('WebGPU scripts bundled for a GPU machine (bench/wgsl/device)', function () {
  this.timeout(180_000);
  let dir = '';

  before(async function () {
    const why = swiftShaderUnavailable();
    if (why) {
      console.warn(`      skipped: ${why}`);
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-bundle-'));
    await bundleScripts(dir);
    // The native packages, as pack.ts copies them (links will do here).
    fs.mkdirSync(path.join(dir, 'node_modules'));
    for (const p of NATIVE_PACKAGES) fs.symlinkSync(path.join(ROOT, 'node_modules', p), path.join(dir, 'node_modules', p));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs a bundled script with plain node from outside the repository (no tsx, no node_modules of ours). */
  const runBundled = (script: string, args: string[]) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // mocha's tsx loader must not help
    return spawnSync(process.execPath, [path.join(dir, 'bin', `${script}.mjs`), ...args], { cwd: os.tmpdir(), env, encoding: 'utf8', timeout: 150_000 });
  };

  it('gpu-check runs the selected cases, the split ones on the split path, and passes them all', () => {
    const only = 'norm int8 dynamic float16';
    const r = runBundled('gpu-check', ['--adapter', 'swiftshader', '--only', only]);
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.match(/^adapter: .*swiftshader.*fallback: true$/i);
    const ran = lines.filter((l) => /^(ok|FAIL) /.test(l));
    // SwiftShader has no shader-f16: each matching case runs once, packed.
    const want = CASES.filter((k) => `${k.variant.name} ${k.x}`.includes(only)).length + SPLIT_CASES.filter((k) => splitLabel(k).includes(only)).length;
    expect(ran).to.have.length(want);
    expect(ran.every((l) => l.startsWith('ok   ') && l.includes(only))).to.equal(true);
    expect(ran.filter((l) => l.includes(' split ')).every((l) => l.endsWith('path=split,split'))).to.equal(true);
    expect(lines.at(-1)).to.equal(`${want}/${want} runs pass`);
  });

  it('bench prints its table and medians, with onnxruntime timed in its bundled child process', () => {
    const r = runBundled('bench', ['--adapter', 'swiftshader', '--H', '64', '--rows', '2', '--runs', '1', '--gpu-ms', '5']);
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n');
    const rows = lines.filter((l) => /^(norm|prenorm|dyn-int8) +64 +2 +rows /.test(l));
    expect(rows).to.have.length(3);
    // Norm and PreNorm have an onnxruntime figure (a number, then the speed-up); dyn-int8 has none.
    expect(rows.filter((l) => /\d+\.\d\d +\d+\.\d\dx$/.test(l))).to.have.length(2);
    expect(lines.at(-2)).to.match(/^median ratio to copy: \d+\.\d\d$/);
    expect(lines.at(-1)).to.match(/^median speed-up over onnxruntime: \d+\.\d\dx \(2 cases\)$/);
  });
});

describe('checkRun (the check execute.test.ts and gpu-check share)', () => {
  const H = 8;
  const rows = 4;
  /** A launcher that answers with the reference, after `spoil` has changed it. */
  const fakeLauncher = (desc: ReturnType<typeof makeDesc>, spoil: (out: Record<string, TensorData>) => void): Launcher =>
    ({
      run: async (_device: GPUDevice, inputs: Record<string, TensorData>) => {
        const { ref } = makeData(desc, H, rows, { seed: 5, zeroRows: [1] });
        expect(inputs[desc.inputs[0]!.name]).to.have.length(rows * H);
        const want = reference(desc, H, ref);
        const out: Record<string, TensorData> = {
          [`${desc.node}.q`]: want.q!,
          [`${desc.node}.scale`]: want.scale!,
        };
        spoil(out);
        return out;
      },
    }) as unknown as Launcher;
  const desc = makeDesc('n', findVariant('norm int8 dynamic, no beta'), 'float32', H);
  const check = (spoil: (out: Record<string, TensorData>) => void) => checkRun(fakeLauncher(desc, spoil), {} as GPUDevice, desc, H, rows, { seed: 5, zeroRows: [1] }, 'fake');

  it('passes the reference itself', async () => {
    expect(await check(() => {})).to.deep.equal([]);
  });

  it('reports a q off by 2 and an all-zero row without the 2^-23 scale floor', async () => {
    expect((await check((o) => ((o['n.q'] as Int8Array)[3]! += 2))).join('\n')).to.match(/fake q/);
    const errors = await check((o) => ((o['n.scale'] as Float32Array)[1] = 1));
    expect(errors.join('\n')).to.match(/all-zero row 1 has scale 1, not the 2\^-23 floor/);
  });
});
