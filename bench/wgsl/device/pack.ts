/**
 * Packs what the WebGPU check and benchmark need on a bare x86-64 Linux machine with a GPU and
 * without Node or npm (the device machine some sessions are lent): `.devbundle/bundle.tar.xz`
 * holds the esbuild bundles (bundle.ts), the native packages they load for linux-x64 (webgpu's
 * dawn.node, onnxruntime-node with onnxruntime-common) and this machine's node binary;
 * `.devbundle/gl/` holds Debian's Vulkan loader packages for machines whose image lacks
 * libvulkan.so.1. run.sh, on that machine, unpacks and runs them. See bench/wgsl/README.md.
 *
 *   npx tsx bench/wgsl/device/pack.ts [--no-debs]
 *
 * Writes into .devbundle.tmp and renames it to .devbundle at the end (git-ignored), so a failed
 * pack never leaves a half-built bundle behind.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleScripts } from './bundle.js';

const { values: args } = parseArgs({ options: { 'no-debs': { type: 'boolean', default: false } } });
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const out = path.join(root, '.devbundle');
const tmp = `${out}.tmp`;
/** Debian's Vulkan loader (and what the device README lists for EGL/GL, harmless here). */
const DEBS = ['libvulkan1', 'libegl1', 'libglvnd0', 'libopengl0', 'libgl1', 'libglx0', 'libgles2'];

if (process.platform !== 'linux' || process.arch !== 'x64') {
  throw new Error(`pack.ts bundles this machine's node and linux-x64 binaries; run it on x86-64 Linux (here ${process.platform}-${process.arch})`);
}
const step = (what: string): void => console.log(`pack: ${what}`);
fs.rmSync(tmp, { recursive: true, force: true });
const stage = path.join(tmp, 'stage');
fs.mkdirSync(stage, { recursive: true });

step('esbuild bundles of bench, gpu-check, ort-child');
await bundleScripts(stage);

/** Copies `files` (relative to the package root) of an installed package into stage/node_modules. */
function copyPackage(name: string, files: string[]): void {
  // npm's layout: hoisted to the top, or nested under the package that needs it.
  const from = [path.join(root, 'node_modules', name), path.join(root, 'node_modules/onnxruntime-node/node_modules', name)].find((d) => fs.existsSync(path.join(d, 'package.json')));
  if (!from) throw new Error(`${name} is not installed: run npm ci first`);
  for (const f of ['package.json', ...files]) {
    fs.cpSync(path.join(from, f), path.join(stage, 'node_modules', name, f), { recursive: true });
  }
}
step('native packages for linux-x64');
copyPackage('webgpu', ['index.js', 'dist/linux-x64']);
copyPackage('onnxruntime-node', ['dist', 'bin/napi-v6/linux/x64']);
copyPackage('onnxruntime-common', ['dist']);

step(`node ${process.version} (${process.execPath})`);
fs.copyFileSync(process.execPath, path.join(stage, 'node'));
fs.chmodSync(path.join(stage, 'node'), 0o755);

step('bundle.tar.xz (xz, about a minute)');
execFileSync('tar', ['-C', stage, '-cJf', path.join(tmp, 'bundle.tar.xz'), '.'], { stdio: 'inherit', env: { ...process.env, XZ_OPT: '-6 -T0' } });
fs.rmSync(stage, { recursive: true });

if (!args['no-debs']) {
  step(`Vulkan loader packages (${DEBS.join(', ')})`);
  const gl = path.join(tmp, 'gl');
  const lists = path.join(tmp, 'apt-lists');
  fs.mkdirSync(path.join(lists, 'partial'), { recursive: true });
  fs.mkdirSync(gl);
  // amd64 lists of their own (whatever this machine's own apt state), fetched as root without the _apt sandbox.
  const o = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', `-oDir::State::Lists=${lists}`, '-oAPT::Sandbox::User=root'];
  execFileSync('apt-get', [...o, '-qq', 'update'], { stdio: 'inherit' });
  execFileSync('apt-get', [...o, '-qq', 'download', ...DEBS], { cwd: gl, stdio: 'inherit' });
  fs.rmSync(lists, { recursive: true });
}

fs.rmSync(out, { recursive: true, force: true });
fs.renameSync(tmp, out);
let total = 0;
for (const e of fs.readdirSync(out, { recursive: true, withFileTypes: true })) if (e.isFile()) total += fs.statSync(path.join(e.parentPath, e.name)).size;
step(`done: .devbundle, ${(total / 2 ** 20).toFixed(1)} MiB (the device's working-tree limit is 64 MiB in all)`);
