/**
 * The published package as a user gets it: `npm pack` (which builds dist/ in `prepack`), install
 * the tarball into an empty folder, then use it from there:
 *
 * - the tarball holds the CLI, the TypeScript sources the CLI and the emitters read, the compiled
 *   entries with their declarations, and no tests, benchmarks or example models;
 * - `npx rmsfuse optimize` fuses an example (and `--target webgpu --emit` works from node_modules);
 * - plain Node ESM (no TypeScript loader) imports `rmsfuse` and `rmsfuse/runtime` and uses them;
 * - a TypeScript consumer (module/moduleResolution NodeNext, strict, skipLibCheck off) type-checks
 *   against the installed declarations with the repository's tsc, and misuse is a type error.
 *
 * npm needs the registry (or its cache: `--prefer-offline`) for the dependencies. RMSFUSE_PACK_ROOT
 * packs another checkout (e.g. a copy with a package.json under review) instead of this one.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';

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
  const detail = `${what}: exit ${r.status}${r.signal ? ` (signal ${r.signal})` : ''}${r.error ? ` (${r.error.message})` : ''}\n--- stdout\n${r.stdout?.slice(-4000)}\n--- stderr\n${r.stderr?.slice(-4000)}`;
  expect(r.status, detail).to.equal(0);
  return r.stdout;
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

  it('the tarball holds the CLI, sources, dist entries with declarations, and no tests or models', function () {
    for (const f of [
      'package.json',
      'bin/rmsfuse.js',
      'compiler/cli.ts',
      'runtime/webgpu/runtime.ts',
      'dist/compiler/index.js',
      'dist/compiler/index.d.ts',
      'dist/runtime/index.js',
      'dist/runtime/index.d.ts',
    ]) {
      expect(files, `tarball lists ${f}`).to.include(f);
    }
    const unwanted = files.filter((f) => /^(test|bench|examples|scratch-tmp|dist\/(test|bench|examples))\//.test(f) || f.endsWith('.onnx') || f.endsWith('.tmp.ts'));
    expect(unwanted, 'files that should not ship').to.deep.equal([]);
    const bytes = fs.statSync(tarball).size;
    expect(bytes, 'tarball size').to.be.below(2 << 20);
  });

  it('npx rmsfuse optimize fuses the example (exit 0, fused nodes in the output)', function () {
    const out = run('npx', ['--no', 'rmsfuse', 'optimize', EXAMPLE, '-o', 'out.onnx', '--report', 'report.json'], consumer);
    ok(out, 'npx rmsfuse optimize');
    const report = JSON.parse(fs.readFileSync(path.join(consumer, 'report.json'), 'utf8')) as { fused: { op_type: string }[] };
    expect(report.fused.length, 'fused sites in the report').to.equal(5);
    expect(fs.statSync(path.join(consumer, 'out.onnx')).size).to.be.greaterThan(0);
    // The output's own nodes, read back with the installed API below ('import rmsfuse').
    const r = run(process.execPath, ['--input-type=module', '-e', `
      import { loadModel } from 'rmsfuse';
      const m = loadModel('out.onnx');
      console.log(JSON.stringify(m.graph.nodes.filter((n) => ${JSON.stringify(FUSED_OPS)}.includes(n.opType)).map((n) => n.opType)));
    `], consumer);
    expect(JSON.parse(ok(r, 'read back out.onnx')) as string[]).to.have.length(5);
  });

  it('npx rmsfuse optimize --target webgpu --emit works from node_modules (runtime.ts found, launchers written)', function () {
    ok(run('npx', ['--no', 'rmsfuse', 'optimize', EXAMPLE, '-o', 'web.onnx', '--target', 'webgpu', '--emit', 'kernels'], consumer), 'npx rmsfuse --emit');
    const manifest = JSON.parse(fs.readFileSync(path.join(consumer, 'kernels', 'manifest.json'), 'utf8')) as { nodes: object; rmsfuse: string };
    expect(Object.keys(manifest.nodes)).to.have.length(5);
    expect(manifest.rmsfuse, 'version in the manifest').to.match(/^\d+\.\d+\.\d+/);
    expect(fs.readFileSync(path.join(consumer, 'kernels', 'kernels', 'runtime.ts'), 'utf8')).to.contain('export function createKernelLauncher');
    expect(fs.readFileSync(path.join(consumer, 'kernels', 'index.ts'), 'utf8')).to.contain('export const launchers');
  });

  it("plain Node ESM imports 'rmsfuse' and 'rmsfuse/runtime' and uses them", function () {
    fs.writeFileSync(
      path.join(consumer, 'use.mjs'),
      `import { loadModel, optimizeModel, saveModel, RmsfuseError } from 'rmsfuse';
import { rmsNormReference, fromAttributes, compareWithTolerance, toF16Bits, fromF16Bits } from 'rmsfuse/runtime';

const model = loadModel(${JSON.stringify(EXAMPLE)});
const report = optimizeModel(model, { target: 'webgpu' });
saveModel(model, 'api.onnx');
const fused = loadModel('api.onnx').graph.nodes.filter((n) => ${JSON.stringify(FUSED_OPS)}.includes(n.opType));

let badModel = '';
try { loadModel(new Uint8Array([1, 2, 3])); } catch (e) { badModel = e instanceof RmsfuseError ? 'RmsfuseError ' + e.exitCode : String(e); }

// One fused node's semantics on the CPU: x = [3, 4] -> y = x / sqrt(mean(x^2) + eps) * gamma.
const site = report.fused.find((s) => s.op_type === 'RmsNorm');
const param = fromAttributes(site.op_type, site.attributes);
const ref = rmsNormReference({ ...param, epsilon: 1e-6 }, 'float32', 2, { x: new Float32Array([3, 4]), gamma: new Float32Array([1, 2]) });
const expected = [3 / Math.sqrt(12.5 + 1e-6), 8 / Math.sqrt(12.5 + 1e-6)];
const cmp = compareWithTolerance(ref.y, expected, 'float32');
const half = Array.from(fromF16Bits(toF16Bits([1.5, -2, 65504])));
console.log(JSON.stringify({ fused: report.fused.length, saved: fused.length, badModel, layerType: param.layerType, cmp: cmp.ok, half }));
`,
    );
    const out = JSON.parse(ok(run(process.execPath, ['use.mjs'], consumer), 'node use.mjs')) as Record<string, unknown>;
    expect(out).to.deep.equal({ fused: 5, saved: 5, badModel: 'RmsfuseError 1', layerType: 'Norm', cmp: true, half: [1.5, -2, 65504] });
  });

  it('types resolve: a strict NodeNext TypeScript consumer type-checks, and misuse is an error', function () {
    fs.writeFileSync(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            skipLibCheck: false,
            lib: ['ES2022', 'DOM'],
            types: [],
          },
          files: ['consumer.ts'],
        },
        null,
        2,
      ),
    );
    fs.writeFileSync(
      path.join(consumer, 'consumer.ts'),
      `import { loadModel, optimizeModel, saveModel, optimize, type Model, type Report, type RmsNormParam, type OptimizeReport } from 'rmsfuse';
import { rmsNormReference, fromAttributes, compareWithTolerance, type RefOutputs, type CompareResult } from 'rmsfuse/runtime';
import type { Launcher, TensorData } from 'rmsfuse/runtime/webgpu';

const model: Model = loadModel('in.onnx');
const report: Report = optimizeModel(model, { target: 'webgpu', format: 'ort' });
saveModel(model, 'out.onnx');
const pending: Promise<OptimizeReport> = optimize('in.onnx', 'out.onnx', { target: 'webgpu', emit: 'kernels' });
const param: RmsNormParam = fromAttributes('RmsNorm', report.fused[0]!.attributes);
const ref: RefOutputs = rmsNormReference(param, 'float16', 64, { x: new Float32Array(64), gamma: new Float32Array(64) });
const cmp: CompareResult = compareWithTolerance(ref.y!, ref.y!, 'float16');
async function runIt(device: GPUDevice, l: Launcher, x: TensorData): Promise<number> {
  const out = await l.run(device, { x });
  return Object.keys(out).length;
}

// Misuse must not type-check (an unused @ts-expect-error is itself an error): the types are real, not any.
// @ts-expect-error format is one of 'rmsfuse' | 'ort' | 'onnx23'
optimizeModel(model, { format: 'tflite' });
// @ts-expect-error xDType is a float dtype name
rmsNormReference(param, 'int4', 64, { x: new Float32Array(64), gamma: new Float32Array(64) });
// @ts-expect-error loadModel takes a path or bytes
loadModel(42);

export { pending, cmp, runIt };
`,
    );
    ok(run(process.execPath, [TSC, '-p', 'tsconfig.json'], consumer, 120_000), 'tsc --noEmit in the consumer');
  });
});
