/**
 * The WebGPU emitter: one kernel per distinct spec, deterministic files, the manifest of SPEC 6,
 * the shader print switch, the tuning table, and emitted launchers that type-check in strict
 * mode against @webgpu/types, as a consumer of the folder would compile them.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { typeCheck } from '../../codegen/launcher/ts-emit.js';
import { emitWebGpu, emitWebGpuFiles } from '../../codegen/wgsl/emit.js';
import { chooseTuning, kernelId, wgslSpecFromDesc } from '../../codegen/wgsl/spec.js';
import { VARIANTS, findVariant, makeDesc } from './fixtures.js';

const WEBGPU_TYPES = fileURLToPath(new URL('../../node_modules/@webgpu/types/dist/index.d.ts', import.meta.url));

describe('WebGPU emitter', () => {
  const layers = Array.from({ length: 32 }, (_, l) => makeDesc(`layers.${l}/input_layernorm`, findVariant('norm'), 'float16', 4096));
  const post = Array.from({ length: 32 }, (_, l) => makeDesc(`layers.${l}/post_attention_layernorm`, findVariant('prenorm'), 'float16', 4096));
  const model = [...layers, ...post, makeDesc('final_norm', { ...findVariant('norm'), param: { ...findVariant('norm').param, epsilon: 1e-6 } }, 'float16', 4096)];

  it('emits one kernel per distinct spec: 65 nodes, 3 kernels', () => {
    const { files, manifest } = emitWebGpuFiles(model);
    expect(Object.keys(manifest.kernels)).to.have.length(3); // norm, prenorm, norm with another epsilon
    expect(Object.keys(manifest.nodes)).to.have.length(65);
    expect(new Set(layers.map((d) => manifest.nodes[d.node]!.kernel)).size).to.equal(1);
    expect(manifest.nodes['final_norm']!.kernel).to.not.equal(manifest.nodes[layers[0]!.node]!.kernel);
    expect(Object.keys(files).sort()).to.deep.equal(
      ['index.ts', 'kernels/runtime.ts', 'manifest.json', ...Object.keys(manifest.kernels).flatMap((id) => [`kernels/${id}.ts`, `kernels/${id}.wgsl`])].sort(),
    );
    for (const [id, k] of Object.entries(manifest.kernels)) {
      expect(id).to.match(/^(rmsnorm|prenorm)_f16_[0-9a-f]{8}$/);
      expect(k.files).to.deep.equal({ wgsl: `kernels/${id}.wgsl`, launcher: `kernels/${id}.ts` });
    }
  });

  it('writes a manifest with every node, its kernel, attributes and tensors (initializers marked)', () => {
    const { manifest, files } = emitWebGpuFiles(model);
    expect(JSON.parse(files['manifest.json']!)).to.deep.equal(manifest);
    expect(manifest.target).to.equal('webgpu');
    const n = manifest.nodes['layers.3/post_attention_layernorm']!;
    expect(n.opType).to.equal('PreNorm');
    expect(n.attributes).to.include({ epsilon: 1e-5, quant_type: 'none', has_bias: 0 });
    expect(n.inputs.map((t) => [t.name, t.role, t.dtype, t.initializer])).to.deep.equal([
      ['layers.3/post_attention_layernorm.x', 'x', 'float16', false],
      ['', 'bias', 'float16', true],
      ['layers.3/post_attention_layernorm.residual', 'residual', 'float16', false],
      ['layers.3/post_attention_layernorm.gamma', 'gamma', 'float16', true],
    ]);
    expect(n.outputs.map((t) => t.name)).to.deep.equal(['layers.3/post_attention_layernorm.y', 'layers.3/post_attention_layernorm.sum']);
  });

  it('is deterministic: same files for the same nodes, kernel files independent of node order', () => {
    const a = emitWebGpuFiles(model).files;
    const b = emitWebGpuFiles(model).files;
    expect(a).to.deep.equal(b);
    const c = emitWebGpuFiles([...model].reverse()).files;
    for (const f of Object.keys(a)) if (f.startsWith('kernels/')) expect(c[f], f).to.equal(a[f]);
  });

  it('binds each node to its own tensor names in index.ts', () => {
    const { files, manifest } = emitWebGpuFiles(model.slice(0, 2));
    const id = manifest.nodes[layers[0]!.node]!.kernel;
    expect(files['index.ts']).to.contain(`import { createLauncher as ${id} } from './kernels/${id}.js';`);
    expect(files['index.ts']).to.contain(`'layers.1/input_layernorm': ${id}({`);
    expect(files['index.ts']).to.contain(`inputs: ['layers.1/input_layernorm.x', 'layers.1/input_layernorm.gamma'],`);
  });

  it('prints the WGSL of the nodes named in RMSFUSE_PRINT_SHADER (option printShader)', () => {
    const written: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (written.push(String(s)), true)) as typeof process.stderr.write;
    try {
      emitWebGpuFiles(model, { printShader: 'final_norm' });
    } finally {
      process.stderr.write = original;
    }
    expect(written).to.have.length(1);
    expect(written[0]).to.match(/^\/\/ ---- RMSFUSE_PRINT_SHADER: node final_norm -> kernel rmsnorm_f16_[0-9a-f]{8}\n\/\/ rmsfuse Norm kernel/);
  });

  it('chooses vector width, workgroup size and rows per workgroup from H (KERNELS.md)', () => {
    const table = [1, 3, 4, 8, 64, 127, 512, 768, 4095, 4096, 8191, 8192, 16384, 16386, 32767, 65536, 262144].map((H) => {
      const t = chooseTuning(H);
      const split = t.splitRow ? `, split ${t.splitRow.workgroupsPerRow} x ${t.splitRow.unitsPerWorkgroup} units up to ${t.splitRow.maxRows} rows` : '';
      return `${H}: vec${t.vecWidth} wg${t.workgroupSize} rows${t.rowsPerWorkgroup}${split}`;
    });
    expect(table).to.deep.equal([
      '1: vec1 wg64 rows64',
      '3: vec1 wg64 rows32',
      '4: vec4 wg64 rows64',
      '8: vec4 wg64 rows64',
      '64: vec4 wg64 rows8',
      '127: vec1 wg64 rows1',
      '512: vec4 wg64 rows1',
      '768: vec4 wg64 rows1',
      '4095: vec1 wg256 rows1',
      '4096: vec4 wg256 rows1',
      '8191: vec1 wg256 rows1',
      // Split-row path from H = 8192: chunks of 2 units per thread, runs of up to 32 rows (fewer
      // when 4 MiB of fp32 rows would not fit).
      '8192: vec4 wg256 rows1, split 4 x 512 units up to 32 rows',
      '16384: vec4 wg256 rows1, split 8 x 512 units up to 32 rows',
      '16386: vec2 wg256 rows1, split 17 x 512 units up to 32 rows',
      '32767: vec1 wg256 rows1, split 64 x 512 units up to 32 rows',
      '65536: vec4 wg256 rows1, split 32 x 512 units up to 16 rows',
      '262144: vec4 wg256 rows1, split 128 x 512 units up to 4 rows',
    ]);
  });

  it('uses native f16 and subgroups only where the features allow (subgroups only for one-row workgroups)', () => {
    const d = makeDesc('n', findVariant('norm'), 'float16', 4096);
    expect(wgslSpecFromDesc(d, { shaderF16: false, subgroups: false })).to.include({ f16: 'packed', subgroups: false });
    expect(wgslSpecFromDesc(d, { shaderF16: true, subgroups: true })).to.include({ f16: 'native', subgroups: true });
    const small = makeDesc('n', findVariant('norm'), 'float32', 8);
    expect(wgslSpecFromDesc(small, { shaderF16: true, subgroups: true })).to.include({ f16: 'none', subgroups: false });
    expect(kernelId(wgslSpecFromDesc(small, { shaderF16: true, subgroups: true }))).to.match(/^rmsnorm_f32_[0-9a-f]{8}$/);
  });

  describe('emitted launchers type-check (strict, ES2022 + DOM + @webgpu/types)', function () {
    this.timeout(120_000);
    let dir = '';
    after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

    it('every variant and dtype, plus a consumer calling run()', () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-tc-'));
      const descs = VARIANTS.flatMap((v, i) => (['float32', 'float16', 'bfloat16'] as const).map((x) => makeDesc(`n${i}_${x}`, v, x, 4096)));
      // Kernels with a split-row path (KernelInfo.split).
      descs.push(makeDesc('split_dyn', findVariant('prenorm int8 dynamic'), 'float16', 16384), makeDesc('split_norm', findVariant('norm'), 'float32', 32767));
      const manifest = emitWebGpu(descs, dir, { features: { shaderF16: true, subgroups: true } });
      fs.writeFileSync(
        path.join(dir, 'consumer.ts'),
        [
          "import { launchers } from './index.js';",
          'export async function use(device: GPUDevice): Promise<number> {',
          "  const out = await launchers['n0_float32']!.run(device, { 'n0_float32.x': new Float32Array(8192), 'n0_float32.gamma': new Float32Array(4096) }, ['n0_float32.y']);",
          "  return out['n0_float32.y']!.length;",
          '}',
          "export function path(device: GPUDevice): 'rows' | 'split' | undefined {",
          "  return launchers['split_norm']!.plan(device, 1).path === 'split' ? launchers['split_norm']!.lastPlan?.path : undefined;",
          '}',
          '',
        ].join('\n'),
      );
      const files = fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f));
      expect(files).to.have.length(Object.keys(manifest.kernels).length + 3); // + runtime.ts, index.ts, consumer.ts
      expect(typeCheck(files, { declarationFiles: [WEBGPU_TYPES] })).to.deep.equal([]);
    });

    it('reports type errors (the check above can fail)', () => {
      const bad = path.join(dir, 'bad.ts');
      fs.writeFileSync(bad, "import { launchers } from './index.js';\nexport const n: number = launchers;\n");
      expect(typeCheck([bad], { declarationFiles: [WEBGPU_TYPES] }).join('\n')).to.match(/not assignable to type 'number'/);
    });
  });
});
