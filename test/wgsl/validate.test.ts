/**
 * Every generated kernel compiles in Tint and builds a compute pipeline on dawn's null backend
 * (no GPU needed). The null adapter advertises shader-f16 and subgroups, so native-f16 and
 * subgroup kernels are checked here although SwiftShader cannot run the former.
 *
 * The matrix: every variant x activation dtype x feature set x a set of H that reaches every
 * layout (vec4/vec2/scalar units, multi-row workgroups, one thread per row, one row per
 * workgroup, rows too long for registers, the split-row path). Every entry point of a kernel
 * (`main` and the split path's) gets its pipeline.
 */
import { expect } from 'chai';
import type { FloatDType } from '../../compiler/op/param.js';
import { CACHE_FLOATS, generateWgsl } from '../../codegen/wgsl/generate.js';
import { wgslSpecFromDesc, type WgslFeatures } from '../../codegen/wgsl/spec.js';
import { nodeGpu, type NodeGpu } from '../../runtime/webgpu/node.js';
import { VARIANTS, makeDesc, type DescOptions } from './fixtures.js';

const HS = [1, 2, 3, 4, 6, 8, 127, 130, 768, 4095, 4096, 16383, 16386, 65536];
const X_TYPES: FloatDType[] = ['float32', 'float16', 'bfloat16'];
const FEATURES: WgslFeatures[] = [
  { shaderF16: false, subgroups: false },
  { shaderF16: true, subgroups: true },
];
const WEIGHTS: DescOptions[] = [{}, { weights: 'float32', scale: 'float16' }];

// Module level on purpose: dawn.node must stay referenced (TOOLING.md).
let gpu: NodeGpu | undefined;

describe('WGSL kernels validate in Tint (dawn null backend)', function () {
  this.timeout(180_000);
  before(async () => {
    gpu = await nodeGpu('null');
  });

  it('compiles and builds a pipeline for every variant, dtype, feature set and layout', async function () {
    const device = gpu!.device;
    const failures: string[] = [];
    const seen = new Set<string>();
    let count = 0;
    const layouts = new Set<string>();
    for (const v of VARIANTS) {
      for (const x of X_TYPES) {
        for (const features of FEATURES) {
          for (const w of WEIGHTS) {
            if (x === 'float32' && w.weights) continue; // fp32 weights with fp32 x is the plain case
            for (const H of HS) {
              const spec = wgslSpecFromDesc(makeDesc('n', v, x, H, w), features);
              const k = generateWgsl(spec);
              if (seen.has(k.source)) continue;
              seen.add(k.source);
              count++;
              const T = spec.workgroupSize / spec.rowsPerWorkgroup;
              layouts.add(
                `vec${spec.vecWidth} R=${spec.rowsPerWorkgroup > 1 ? 'many' : 1} T=${T === 1 ? 1 : 'many'} ${Math.ceil(H / spec.vecWidth / T) * spec.vecWidth > CACHE_FLOATS ? 'reread' : 'cached'} ${spec.f16} sg=${spec.subgroups}${spec.splitRow ? ' split' : ''}`,
              );
              device.pushErrorScope('validation');
              const module = device.createShaderModule({ code: k.source });
              const info = await module.getCompilationInfo();
              const errors = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
              if (errors.length === 0) {
                for (const entryPoint of [k.entryPoint, ...(k.dispatch.split?.entryPoints ?? [])]) {
                  await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint } }).catch((e: Error) => errors.push(`${entryPoint}: ${e.message}`));
                }
              }
              const scoped = await device.popErrorScope();
              if (scoped) errors.push(scoped.message);
              if (errors.length > 0) failures.push(`${v.name} x=${x} H=${H} ${JSON.stringify(features)} ${JSON.stringify(w)}:\n  ${errors.join('\n  ')}`);
            }
          }
        }
      }
    }
    expect(failures, failures.slice(0, 3).join('\n')).to.deep.equal([]);
    // Guard against the matrix silently shrinking: it must reach the native-f16 and re-read paths.
    expect(count).to.be.greaterThan(1000);
    expect([...layouts].some((l) => l.includes('native'))).to.equal(true);
    expect([...layouts].some((l) => l.includes('reread'))).to.equal(true);
    expect([...layouts].some((l) => l.includes('sg=true'))).to.equal(true);
    for (const vw of [1, 2, 4]) expect([...layouts].some((l) => l.startsWith(`vec${vw}`) && l.endsWith('split'))).to.equal(true);
  });

  it('reports a shader error (the check above can fail)', async function () {
    const device = gpu!.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: '@compute @workgroup_size(1) fn main() { let a: u32 = 1.5; }' });
    const info = await module.getCompilationInfo();
    const scoped = await device.popErrorScope();
    expect(info.messages.some((m) => m.type === 'error')).to.equal(true);
    expect(scoped?.message).to.match(/cannot convert/);
  });
});
