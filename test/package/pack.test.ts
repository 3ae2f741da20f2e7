/**
 * The published package as a user gets it: `npm pack`, install the tarball into an empty folder,
 * then use it from there:
 *
 * - the tarball holds the CLI and every file package.json's `exports` names, and no tests,
 *   benchmarks or example models;
 * - `npx rmsfuse optimize` fuses an example, and `--target webgpu --emit` works from node_modules;
 * - plain Node ESM (no TypeScript loader of its own) imports `rmsfuse` and `rmsfuse/runtime`;
 * - a browser bundle (esbuild, platform browser) of `rmsfuse/runtime` needs no Node built-ins;
 * - TypeScript consumers (module/moduleResolution NodeNext, strict, lib ES2022, @types/node)
 *   type-check against the installed package with the repository's tsc, and misuse is a type
 *   error (so the types are real, not `any`).
 *
 * npm needs the registry, or its cache (`--prefer-offline`), for the dependencies.
 * RMSFUSE_PACK_ROOT packs another checkout (e.g. a copy with a package.json under review).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { expect } from 'chai';
import * as esbuild from 'esbuild';
import { ModelProtoSchema } from 'onnx-buf';

const REPO = path.resolve('.');
const ROOT = path.resolve(process.env.RMSFUSE_PACK_ROOT ?? REPO);
const EXAMPLE = path.join(REPO, 'examples', 'mini-llama-fp32.onnx');
const TSC = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const FUSED_OPS = ['RmsNorm', 'PreNorm', 'PostNorm'];

/** The environment of every child: no loader inherited from the test runner, no CUDA download. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', NO_UPDATE_NOTIFIER: '1' };
  delete env.NODE_OPTIONS;
  // Settings `npm test` exports to its scripts must not steer the nested npm commands.
  for (const k of Object.keys(env)) if (k.startsWith('npm_')) delete env[k];
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeout = 240_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: childEnv(), encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  const detail =
    `${what}: exit ${r.status}${r.signal ? ` (signal ${r.signal})` : ''}${r.error ? ` (${r.error.message})` : ''}\n` +
    `--- stdout\n${r.stdout?.slice(-4000)}\n--- stderr\n${r.stderr?.slice(-4000)}`;
  expect(r.status, detail).to.equal(0);
  return r.stdout;
}

/** Every file path an `exports` map can resolve to (all conditions). */
function exportTargets(exportsField: unknown): string[] {
  if (typeof exportsField === 'string') return [exportsField];
  if (exportsField && typeof exportsField === 'object') return Object.values(exportsField).flatMap(exportTargets);
  return [];
}

describe('package: npm pack, install the tarball into an empty folder, use it', function () {
  this.timeout(300_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-pack-'));
  const consumer = path.join(tmp, 'consumer');
  let tarball = '';
  let files: string[] = [];

  before(function () {
    const dest = path.join(tmp, 'pack');
    fs.mkdirSync(dest);
    ok(run('npm', ['pack', '--pack-destination', dest, '--loglevel', 'warn'], ROOT), 'npm pack');
    const tgz = fs.readdirSync(dest).filter((f) => f.endsWith('.tgz'));
    expect(tgz, 'tarballs written').to.have.length(1);
    tarball = path.join(dest, tgz[0]!);
    files = ok(run('tar', ['-tzf', tarball], tmp), 'tar -t')
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));

    fs.mkdirSync(consumer);
    fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'rmsfuse-consumer', private: true, type: 'module' }, null, 2));
    ok(run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'warn', tarball], consumer), 'npm install <tarball>');
  });

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the tarball holds the CLI, every exports target, and no tests, benchmarks or models', function () {
    const pkg = JSON.parse(fs.readFileSync(path.join(consumer, 'node_modules', 'rmsfuse', 'package.json'), 'utf8')) as {
      exports?: Record<string, unknown>;
      bin?: Record<string, string>;
    };
    const needed = [
      'package.json',
      ...Object.values(pkg.bin ?? {}),
      ...exportTargets(pkg.exports),
      // Read from disk by the emitters: copied next to the kernels.
      'runtime/webgpu/runtime.ts',
    ].map((f) => f.replace(/^\.\//, ''));
    for (const f of needed) expect(files, `tarball lists ${f}`).to.include(f);
    const unwanted = files.filter((f) => /^(test|bench|examples|scratch-tmp|docs|dist\/(test|bench|examples))\//.test(f) || f.endsWith('.onnx') || f.endsWith('.tmp.ts'));
    expect(unwanted, 'files that should not ship').to.deep.equal([]);
    expect(fs.statSync(tarball).size, 'tarball bytes').to.be.below(2 << 20);
    expect(Object.keys(pkg.exports ?? {}), 'package.json exports').to.include.members(['.', './runtime']);
  });

  it('npx rmsfuse optimize fuses the example (exit 0, fused nodes in the output)', function () {
    ok(run('npx', ['--no', 'rmsfuse', 'optimize', EXAMPLE, '-o', 'out.onnx', '--report', 'report.json'], consumer), 'npx rmsfuse optimize');
    const report = JSON.parse(fs.readFileSync(path.join(consumer, 'report.json'), 'utf8')) as { fused: { op_type: string }[] };
    expect(report.fused.length, 'fused sites in the report').to.equal(5);
    // The model's own nodes, read with an independent decoder (the repository's onnx-buf).
    const model = fromBinary(ModelProtoSchema, fs.readFileSync(path.join(consumer, 'out.onnx')));
    const ops = model.graph!.node.map((n) => n.opType).filter((t) => FUSED_OPS.includes(t));
    expect(ops.sort()).to.deep.equal(['PostNorm', 'PreNorm', 'PreNorm', 'PreNorm', 'RmsNorm']);
  });

  it('npx rmsfuse optimize --target webgpu --emit works from node_modules (runtime.ts found, launchers written)', function () {
    ok(run('npx', ['--no', 'rmsfuse', 'optimize', EXAMPLE, '-o', 'web.onnx', '--target', 'webgpu', '--emit', 'kernels'], consumer), 'npx rmsfuse --emit');
    const manifest = JSON.parse(fs.readFileSync(path.join(consumer, 'kernels', 'manifest.json'), 'utf8')) as { nodes: object; rmsfuse: string };
    expect(Object.keys(manifest.nodes)).to.have.length(5);
    expect(manifest.rmsfuse, 'version in the manifest').to.match(/^\d+\.\d+\.\d+/);
    expect(fs.readFileSync(path.join(consumer, 'kernels', 'kernels', 'runtime.ts'), 'utf8')).to.contain('export function createKernelLauncher');
    expect(fs.readFileSync(path.join(consumer, 'kernels', 'index.ts'), 'utf8')).to.contain('export const launchers');
  });

  it("plain Node ESM imports 'rmsfuse': loadModel, optimizeModel, saveModel, RmsfuseError", function () {
    fs.writeFileSync(
      path.join(consumer, 'api.mjs'),
      `import { loadModel, optimizeModel, saveModel, RmsfuseError } from 'rmsfuse';

const model = loadModel(${JSON.stringify(EXAMPLE)});
const report = optimizeModel(model, { target: 'webgpu' });
saveModel(model, 'api.onnx');
const fused = loadModel('api.onnx').graph.nodes.filter((n) => ${JSON.stringify(FUSED_OPS)}.includes(n.opType)).length;
let badModel = '';
try { loadModel(new Uint8Array([1, 2, 3])); } catch (e) { badModel = e instanceof RmsfuseError ? 'RmsfuseError ' + e.exitCode : String(e); }
console.log(JSON.stringify({ fused: report.fused.length, saved: fused, badModel }));
`,
    );
    const out = JSON.parse(ok(run(process.execPath, ['api.mjs'], consumer), 'node api.mjs')) as Record<string, unknown>;
    expect(out).to.deep.equal({ fused: 5, saved: 5, badModel: 'RmsfuseError 1' });
  });

  it("plain Node ESM imports 'rmsfuse/runtime': reference, attributes, tolerance, fp16 bits", function () {
    fs.writeFileSync(
      path.join(consumer, 'runtime.mjs'),
      `import { rmsNormReference, fromAttributes, compareWithTolerance, toF16Bits, fromF16Bits } from 'rmsfuse/runtime';

// x = [3, 4], gamma = [1, 2]: y = x / sqrt(mean(x^2) + eps) * gamma.
const attributes = { epsilon: 1e-6, quant_type: 'none', dynamic_quant: 'none', precision_mode: 'high_precision', model_type: 'llama', rstd: 1, has_bias: 0 };
const param = fromAttributes('RmsNorm', attributes);
const ref = rmsNormReference(param, 'float32', 2, { x: new Float32Array([3, 4]), gamma: new Float32Array([1, 2]) });
const rms = Math.sqrt(12.5 + 1e-6);
const cmp = compareWithTolerance(ref.y, [3 / rms, 8 / rms], 'float32');
const rstd = compareWithTolerance(ref.rstd, [1 / rms], 'float32');
const half = Array.from(fromF16Bits(toF16Bits([1.5, -2, 65504])));
console.log(JSON.stringify({ layerType: param.layerType, y: cmp.ok, rstd: rstd.ok, half }));
`,
    );
    const out = JSON.parse(ok(run(process.execPath, ['runtime.mjs'], consumer), 'node runtime.mjs')) as Record<string, unknown>;
    expect(out).to.deep.equal({ layerType: 'Norm', y: true, rstd: true, half: [1.5, -2, 65504] });
  });

  it("a browser bundle of 'rmsfuse/runtime' (esbuild, platform browser) needs no Node built-ins", async function () {
    const r = await esbuild.build({
      stdin: {
        contents: `import { rmsNormReference, compareWithTolerance } from 'rmsfuse/runtime';\nexport { rmsNormReference, compareWithTolerance };`,
        resolveDir: consumer,
        loader: 'js',
      },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
    }).catch((e: unknown) => {
      throw new Error(`esbuild could not bundle rmsfuse/runtime for the browser: ${e instanceof Error ? e.message : String(e)}`);
    });
    const js = r.outputFiles[0]!.text;
    expect(js).to.contain('rmsNormReference');
    expect(js, 'Node built-ins in the browser bundle').to.not.match(/from\s*["']node:|require\(["']node:/);
  });

  describe('types resolve for a strict NodeNext TypeScript consumer', function () {
    function typeCheck(name: string, source: string): void {
      fs.writeFileSync(path.join(consumer, `${name}.ts`), source);
      const config = {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          lib: ['ES2022'],
          types: ['node'],
          // @types/node from the repository: a Node consumer has it; installing it again costs time.
          typeRoots: [path.join(REPO, 'node_modules', '@types')],
        },
        files: [`${name}.ts`],
      };
      fs.writeFileSync(path.join(consumer, `tsconfig.${name}.json`), JSON.stringify(config, null, 2));
      ok(run(process.execPath, [TSC, '-p', `tsconfig.${name}.json`], consumer, 120_000), `tsc -p tsconfig.${name}.json`);
    }

    it("'rmsfuse'", function () {
      typeCheck(
        'consumer-api',
        `import { loadModel, optimizeModel, saveModel, optimize, RmsfuseError, type Model, type Report, type OptimizeReport, type FusedAttributes } from 'rmsfuse';

const model: Model = loadModel('in.onnx');
const report: Report = optimizeModel(model, { target: 'webgpu', format: 'ort' });
saveModel(model, 'out.onnx');
const pending: Promise<OptimizeReport> = optimize('in.onnx', 'out.onnx', { target: 'webgpu', emit: 'kernels' });
const attributes: FusedAttributes | undefined = report.fused[0]?.attributes;
const code = (e: unknown): number | undefined => (e instanceof RmsfuseError ? e.exitCode : undefined);

// Misuse must not type-check (an unused @ts-expect-error is itself an error).
// @ts-expect-error format is one of 'rmsfuse' | 'ort' | 'onnx23'
optimizeModel(model, { format: 'tflite' });
// @ts-expect-error loadModel takes a path or bytes
loadModel(42);

export { pending, attributes, code };
`,
      );
    });

    it("'rmsfuse/runtime'", function () {
      typeCheck(
        'consumer-runtime',
        `import { rmsNormReference, fromAttributes, compareWithTolerance, toF16Bits, type RefOutputs, type CompareResult, type RmsNormParam } from 'rmsfuse/runtime';

const param: RmsNormParam = fromAttributes('PreNorm', { epsilon: 1e-6, quant_type: 'none', dynamic_quant: 'none', precision_mode: 'high_performance', model_type: 'llama', rstd: 0, has_bias: 0 });
const ref: RefOutputs = rmsNormReference(param, 'float16', 64, { x: new Float32Array(64), gamma: new Float32Array(64), residual: new Float32Array(64) });
const cmp: CompareResult = compareWithTolerance(ref.y!, ref.y!, 'float16');
const bits: Uint16Array = toF16Bits([1, 2]);

// @ts-expect-error xDType is a float dtype name
rmsNormReference(param, 'int4', 64, { x: new Float32Array(64), gamma: new Float32Array(64) });
// @ts-expect-error precision_mode is 'high_precision' | 'high_performance'
fromAttributes('RmsNorm', { epsilon: 1e-6, quant_type: 'none', dynamic_quant: 'none', precision_mode: 'fast', model_type: 'llama', rstd: 0, has_bias: 0 });

export { cmp, bits };
`,
      );
    });
  });
});
