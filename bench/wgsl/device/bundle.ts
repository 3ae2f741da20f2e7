/**
 * esbuild bundles of the WebGPU scripts (bench.ts, gpu-check.ts, ort-child.ts) that run under plain
 * node, with no TypeScript loader and no node_modules beside them except the two native packages
 * (webgpu's dawn.node, onnxruntime-node), which stay external. Used by pack.ts for the device
 * machine, and by test/wgsl/bundle.test.ts.
 */
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WGSL_BENCH = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const ROOT = path.resolve(WGSL_BENCH, '../..');
export const BUNDLED_SCRIPTS = ['bench', 'gpu-check', 'ort-child'] as const;
/** Loaded at run time from node_modules beside the bundle: native addons cannot be bundled. */
export const NATIVE_PACKAGES = ['webgpu', 'onnxruntime-node'] as const;

/**
 * Writes `<outdir>/bin/<script>.mjs` for each script, with the code they share in
 * `<outdir>/chunks/`. Both folders sit one level down, where the generator's `../<file>` lookups
 * (emit-common.ts repoSource: the launcher runtime copied into every emitted folder, and
 * package.json's version) find the copies written beside them.
 */
export async function bundleScripts(outdir: string): Promise<void> {
  await build({
    entryPoints: Object.fromEntries(BUNDLED_SCRIPTS.map((s) => [s, path.join(WGSL_BENCH, `${s}.ts`)])),
    outdir,
    outExtension: { '.js': '.mjs' },
    entryNames: 'bin/[name]',
    bundle: true,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: [...NATIVE_PACKAGES],
    // TypeScript (inside ts-morph) is CommonJS: it calls require() for node's built-ins and reads __filename.
    banner: {
      js: [
        "import { createRequire as __rmsfuseRequire } from 'node:module';",
        "import { fileURLToPath as __rmsfuseFileURLToPath } from 'node:url';",
        'const require = __rmsfuseRequire(import.meta.url);',
        'const __filename = __rmsfuseFileURLToPath(import.meta.url);',
        "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
      ].join('\n'),
    },
    logLevel: 'warning',
  });
  fs.cpSync(path.join(ROOT, 'runtime/webgpu/runtime.ts'), path.join(outdir, 'runtime/webgpu/runtime.ts'));
  const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  fs.writeFileSync(path.join(outdir, 'package.json'), `${JSON.stringify({ name: 'rmsfuse-device-bundle', version, private: true }, null, 2)}\n`);
}
