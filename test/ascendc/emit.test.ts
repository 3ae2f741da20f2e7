/**
 * `--emit DIR` for Ascend targets and `npm run ascendc:check -- DIR`: one kernel per distinct
 * spec, the files SPEC section 6 lists, deterministic output, launchers that type-check, host
 * snippets that compile against an ACL stub, and a check command that passes every emitted
 * kernel and fails (exit 1) a tampered one.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createKernelLauncher, type AscendKernelInfo } from '../../codegen/ascendc/ascend-runtime.js';
import { checkAscendDir } from '../../codegen/ascendc/check.js';
import { emitAscend, emitAscendFiles } from '../../codegen/ascendc/emit.js';
import { PLATFORMS, computeTilingForLayout, serializeTiling } from '../../codegen/ascendc/tiling.js';
import type { FusedNodeDesc } from '../../compiler/op/param.js';
import type { Manifest } from '../../codegen/manifest.js';
import { typeCheck } from '../../codegen/launcher/ts-emit.js';
import { MODEL_INCLUDE } from '../../runtime/ascendc/harness.js';
import { makeDesc } from './helpers.js';

const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ACL_STUB = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** A small model: 32 identical PreNorm layers, a final norm, and a few other variants. */
function modelDescs(): FusedNodeDesc[] {
  const descs: FusedNodeDesc[] = [];
  for (let l = 0; l < 32; l++) descs.push(makeDesc(`layers.${l}/post_attention_layernorm`, { layer: 'PreNorm' }, 'float16', 4096, ['batch', 'seq']));
  descs.push(makeDesc('norm', {}, 'float16', 4096, ['batch', 'seq']));
  descs.push(makeDesc('w8a8/input_quant', { layer: 'PreNorm', quant: 'dynamic' }, 'float16', 4096, ['batch', 'seq']));
  descs.push(makeDesc('small/qnorm', { quant: 'static', beta: true, offset: true }, 'bfloat16', 48, [3, 5]));
  descs.push(makeDesc('postnorm', { layer: 'PostNorm', bias: true }, 'float32', 640, 'tokens'));
  return descs;
}

describe('Ascend C emitter and check command', function () {
  this.timeout(900_000);
  let dir: string;
  let manifest: Manifest;
  const descs = modelDescs();

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-ascend-emit-'));
    manifest = emitAscend(descs, dir, 'ascend910b');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('emits one kernel per distinct spec and maps every node to it', () => {
    expect(Object.keys(manifest.kernels)).to.have.length(5);
    expect(manifest.target).to.equal('ascend910b');
    expect(Object.keys(manifest.nodes)).to.deep.equal(descs.map((d) => d.node));
    const layerKernels = new Set(descs.slice(0, 32).map((d) => manifest.nodes[d.node]!.kernel));
    expect(layerKernels.size).to.equal(1);
    const node = manifest.nodes['w8a8/input_quant']!;
    expect(node.opType).to.equal('PreNorm');
    expect(node.attributes).to.include({ quant_type: 'int8', dynamic_quant: 'symmetric' });
    expect(node.outputs.map((t) => t.role)).to.deep.equal(['q', 'scale', 'sum']);
  });

  it('writes the kernel, tiling header, host snippet and launcher of each kernel, index.ts and the runtime', () => {
    for (const k of Object.values(manifest.kernels)) {
      expect(Object.keys(k.files).sort()).to.deep.equal(['host', 'kernel', 'launcher', 'tilingHeader']);
      for (const f of Object.values(k.files)) expect(fs.existsSync(path.join(dir, f)), f).to.equal(true);
      expect(k.files.kernel).to.equal(`kernels/${k.id}.cpp`);
    }
    for (const [copy, source] of [
      ['kernels/tiling-core.ts', 'codegen/ascendc/tiling-core.ts'],
      ['kernels/ascend-runtime.ts', 'codegen/ascendc/ascend-runtime.ts'],
    ]) {
      expect(fs.readFileSync(path.join(dir, copy!), 'utf8'), `${copy} is a verbatim copy`).to.equal(fs.readFileSync(path.join(REPO, source!), 'utf8'));
    }
    expect(fs.readFileSync(path.join(dir, 'index.ts'), 'utf8')).to.contain("'layers.31/post_attention_layernorm': prenorm_f16_");
  });

  it('is deterministic', () => {
    const a = emitAscendFiles(descs, 'ascend910b').files;
    const b = emitAscendFiles(descs, 'ascend910b').files;
    expect(a).to.deep.equal(b);
    for (const [rel, text] of Object.entries(a)) expect(fs.readFileSync(path.join(dir, rel), 'utf8'), rel).to.equal(text);
  });

  it('prints a node\'s kernel on request (RMSFUSE_PRINT_SHADER)', () => {
    const write = process.stderr.write;
    let printed = '';
    process.stderr.write = ((s: string) => ((printed += s), true)) as typeof process.stderr.write;
    try {
      emitAscendFiles(descs, 'ascend910b', { printKernel: 'norm' });
    } finally {
      process.stderr.write = write;
    }
    expect(printed).to.match(/^\/\/ ---- RMSFUSE_PRINT_SHADER: node norm -> kernel rmsnorm_f16_\w+\n\/\/ rmsnorm_f16_/);
  });

  it('emits launchers that type-check', () => {
    const files = [path.join(dir, 'index.ts'), ...fs.readdirSync(path.join(dir, 'kernels')).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, 'kernels', f))];
    expect(typeCheck(files)).to.deep.equal([]);
  });

  it('emits host snippets that compile against an ACL stub', async () => {
    for (const k of Object.values(manifest.kernels)) {
      // g++ has no <<<>>> launch syntax: the stub compile calls the kernel like a function instead.
      const src = fs.readFileSync(path.join(dir, k.files.host!), 'utf8').replace(`${k.id}<<<blockDim, nullptr, stream>>>(`, `(void)blockDim, (void)stream, ${k.id}(`);
      expect(src, 'the launch was there').not.to.equal(fs.readFileSync(path.join(dir, k.files.host!), 'utf8'));
      const file = path.join(dir, `${k.id}_host_stub.cpp`);
      fs.writeFileSync(file, src);
      await exec('g++', ['-std=c++17', '-fsyntax-only', '-Wall', '-Wextra', '-Werror', '-I', ACL_STUB, '-I', MODEL_INCLUDE, '-I', path.join(dir, 'kernels'), file]);
    }
  });

  it('launches through an injected device with the tiling of the actual rows', async () => {
    const k = (await import(path.join(dir, manifest.kernels[manifest.nodes['small/qnorm']!.kernel]!.files.launcher!))) as { kernel: AscendKernelInfo };
    const calls: Array<{ name: string; blockDim: number; sizes: Record<string, number>; tiling: Uint8Array }> = [];
    const device = {
      async launch(name: string, blockDim: number, buffers: Record<string, Uint8Array>, tiling: Uint8Array) {
        calls.push({ name, blockDim, sizes: Object.fromEntries(Object.entries(buffers).map(([n, b]) => [n, b.byteLength])), tiling });
        return { q: new Uint8Array(buffers.q!.byteLength).fill(7) };
      },
    };
    const node = manifest.nodes['small/qnorm']!;
    const launcher = createKernelLauncher(k.kernel, { inputs: node.inputs.map((t) => t.name), outputs: node.outputs.map((t) => t.name) });
    const rows = 15;
    const out = await launcher.run(device, {
      'small/qnorm_x': new Uint16Array(rows * 48),
      'small/qnorm_gamma': new Uint16Array(48),
      'small/qnorm_beta': new Uint16Array(48),
      'small/qnorm_scale': new Float32Array([0.1]),
      'small/qnorm_offset': new Int8Array([3]),
    });
    expect(Object.keys(out)).to.deep.equal(['small/qnorm_out_q']);
    expect(Array.from(out['small/qnorm_out_q']!).every((v) => v === 7)).to.equal(true);
    const t = computeTilingForLayout(k.kernel.layout, rows, PLATFORMS.ascend910b!);
    expect(calls).to.deep.equal([
      { name: k.kernel.id, blockDim: t.blockDim, sizes: { x: rows * 96, gamma: 96, beta: 96, scale: 4, offset: 1, q: rows * 48 }, tiling: serializeTiling(t.data) },
    ]);
    await launcher
      .run(device, { 'small/qnorm_x': new Float32Array(48) } as never)
      .then(() => expect.fail('accepted a Float32Array for a bf16 input'), (e: Error) => expect(e.message).to.match(/must be a Uint16Array/));
  });

  it('check command: every emitted kernel passes on the CPU model', async () => {
    const lines: string[] = [];
    const r = await checkAscendDir(dir, {}, (l) => lines.push(l));
    expect(r.lines).to.deep.equal(lines);
    expect(lines.at(-1)).to.equal('5/5 kernels pass');
    expect(r.passed).to.equal(5);
    for (const l of lines.slice(0, -1)) expect(l).to.match(/^pass {2}\w+: node .*, \d+ rows, (multi-row|single-row|split-D), \d+ cores: .*GM [\d.]+ B\/elem vs minimum [\d.]+ \(x1\.00\)$/);
    expect(lines.find((l) => l.includes('w8a8/input_quant'))).to.contain('49 rows'); // [batch, seq] -> 7 * 7
  });

  it('check command: a tampered kernel fails, and the exit status says so', async () => {
    const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-ascend-bad-'));
    try {
      fs.cpSync(dir, bad, { recursive: true });
      const ids = Object.keys(manifest.kernels).sort();
      // One kernel computes wrong values (epsilon 10x too large), another does not compile.
      const wrong = path.join(bad, manifest.kernels[ids[0]!]!.files.kernel!);
      fs.writeFileSync(wrong, fs.readFileSync(wrong, 'utf8').replace('epsilon = tiling.epsilon;', 'epsilon = tiling.epsilon * 1e4f;'));
      const broken = path.join(bad, manifest.kernels[ids[1]!]!.files.kernel!);
      fs.writeFileSync(broken, fs.readFileSync(broken, 'utf8').replace('op.Process();', 'op.Process()'));
      const run = await exec(process.execPath, ['--import', 'tsx', path.join(REPO, 'codegen/ascendc/check.ts'), bad, '--rows', '3'], { cwd: REPO }).then(
        () => ({ code: 0, stdout: '' }),
        (e: { code: number; stdout: string }) => e,
      );
      expect(run.code).to.equal(1);
      const lines = run.stdout.trim().split('\n');
      expect(lines.at(-1)).to.equal('3/5 kernels pass');
      expect(lines.find((l) => l.startsWith(`FAIL  ${ids[0]}`))).to.match(/y: \d+\/\d+ elements rel err > 0.001/);
      expect(lines.find((l) => l.startsWith(`FAIL  ${ids[1]}`))).to.contain('does not compile against the CPU model');
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });
});
