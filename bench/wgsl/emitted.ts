/**
 * Loads the kernels of an emitted WebGPU folder (emitWebGpu / `--emit DIR`) as plain JavaScript.
 * Its TypeScript modules are transpiled beside themselves with the TypeScript that ts-morph
 * carries, so the scripts here run the same under tsx and as esbuild bundles under plain node
 * (bench/wgsl/device), where no TypeScript loader exists. Emitted launchers import only
 * `./runtime.js` and types, which transpilation erases.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ts } from 'ts-morph';
import type { Manifest } from '../../codegen/manifest.js';
import type { KernelInfo, Launcher, LauncherOptions, TensorNames } from '../../runtime/webgpu/runtime.js';

export interface KernelModule {
  kernel: KernelInfo;
  createLauncher: (names: TensorNames, options?: LauncherOptions) => Launcher;
}

/** Transpiles every `.ts` under `dir` to an ES module `.js` beside it. */
export function transpileEmitted(dir: string): void {
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const { outputText } = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      fileName: file,
    });
    fs.writeFileSync(file.replace(/\.ts$/, '.js'), outputText);
  }
}

/** The kernel modules of an emitted folder, by kernel id. */
export async function importEmittedKernels(dir: string, manifest: Manifest): Promise<Map<string, KernelModule>> {
  transpileEmitted(dir);
  const modules = new Map<string, KernelModule>();
  for (const id of Object.keys(manifest.kernels)) {
    modules.set(id, (await import(pathToFileURL(path.join(dir, 'kernels', `${id}.js`)).href)) as KernelModule);
  }
  return modules;
}
