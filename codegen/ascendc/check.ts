/**
 * `npm run ascendc:check -- DIR [--rows N] [--seed S] [--platform CORES,UB_BYTES] [--max-elements N]`
 *
 * Compiles every kernel of an Ascend `--emit DIR` against the CPU model of the Ascend C API
 * (g++, cached by source hash), runs each through its emitted launcher (kernels/<id>.ts, whose
 * tiling decides the launch) on random inputs of the manifest's shapes, and compares the outputs
 * with runtime/reference.ts within SPEC's tolerances. One line per kernel: pass or FAIL, the
 * tiling mode, and the GM bytes it moved per element against SPEC's minimum (KERNELS.md's table
 * plus gamma/beta once per core and the per-row outputs). The last line is `K/N kernels pass`
 * (N = kernels in the manifest); the exit status is 0 iff K == N.
 *
 * Symbolic dims become 7 (or --rows); launches are capped at --max-elements elements of x
 * (default 2^20) to keep the JS reference quick; the line says when a shape was capped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { DType, TensorDesc } from '../../compiler/op/param.js';
import { CpuModelDevice, buildRunner, type KernelSource } from '../../runtime/ascendc/harness.js';
import { checkOutputs, randomCase, trafficFigure } from '../../runtime/ascendc/verify.js';
import type { Manifest } from '../manifest.js';
import type { AscendKernelInfo, Launcher, TensorData, TensorNames } from './ascend-runtime.js';
import type { AscendKernelSpec } from './spec.js';
import { MODE_NAMES, type Platform, type Tiling, type TilingMode } from './tiling-core.js';

interface LauncherModule {
  kernel: AscendKernelInfo;
  tiling(rows: number, platform?: Platform): Tiling;
  createLauncher(names: TensorNames): Launcher;
}

export interface CheckOptions {
  /** Value of every symbolic dim (default 7). */
  rows?: number;
  seed?: number;
  /** Overrides the target's platform preset. */
  platform?: Platform;
  /** Most x elements per launch (default 2^20). */
  maxElements?: number;
}

export interface CheckResult {
  lines: string[];
  passed: number;
  total: number;
}

/** Rows of a launch: x's dims before the normalized ones (whose product is H), symbolic ones set to `symbolic`. */
function rowsOf(x: TensorDesc, H: number, symbolic: number): number {
  let tail = 1;
  let i = x.shape.length;
  while (i > 0 && tail < H) {
    const d = x.shape[--i];
    tail *= typeof d === 'number' ? d : symbolic;
  }
  return x.shape.slice(0, i).reduce<number>((p, d) => p * (typeof d === 'number' ? d : symbolic), 1);
}

function typed(dtype: DType, bytes: Uint8Array): TensorData {
  const b = bytes.slice().buffer;
  if (dtype === 'float32') return new Float32Array(b);
  if (dtype === 'float16' || dtype === 'bfloat16') return new Uint16Array(b);
  if (dtype === 'int8') return new Int8Array(b);
  if (dtype === 'int32') return new Int32Array(b);
  return new Uint8Array(b);
}

const bytesOf = (t: TensorData): Uint8Array => new Uint8Array(t.buffer, t.byteOffset, t.byteLength);

export async function checkAscendDir(dir: string, opts: CheckOptions = {}, log: (line: string) => void = () => {}): Promise<CheckResult> {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
  if (!manifest.target.startsWith('ascend')) throw new Error(`${dir}: manifest target is '${manifest.target}', not an Ascend target`);
  const ids = Object.keys(manifest.kernels).sort();
  const lines: string[] = [];
  const say = (l: string): void => {
    lines.push(l);
    log(l);
  };

  // The platform presets the launchers default to: the emitted copy of the tiling core.
  const core = (await import(pathToFileURL(path.resolve(dir, 'kernels', 'tiling-core.ts')).href)) as { PLATFORMS: Record<string, Platform> };
  const presets = core.PLATFORMS;

  // Load every launcher and source first, so one build compiles all kernels in parallel.
  const loaded = new Map<string, { module: LauncherModule; source: KernelSource }>();
  const loadErrors: Record<string, string> = {};
  for (const id of ids) {
    const files = manifest.kernels[id]!.files;
    try {
      const module = (await import(pathToFileURL(path.resolve(dir, files.launcher!)).href)) as LauncherModule;
      const header = path.basename(files.tilingHeader!);
      const source: KernelSource = {
        id,
        cpp: fs.readFileSync(path.join(dir, files.kernel!), 'utf8'),
        headers: { [header]: fs.readFileSync(path.join(dir, files.tilingHeader!), 'utf8') },
        params: module.kernel.params.map((p) => p.name),
      };
      loaded.set(id, { module, source });
    } catch (e) {
      loadErrors[id] = (e as Error).message;
    }
  }
  const { binary, failures } = await buildRunner([...loaded.values()].map((l) => l.source), { keepGoing: true });

  let passed = 0;
  for (const id of ids) {
    const entry = manifest.kernels[id]!;
    const spec = entry.spec as AscendKernelSpec;
    const nodeName = Object.keys(manifest.nodes).find((n) => manifest.nodes[n]!.kernel === id);
    const fail = (why: string): void => say(`FAIL  ${id}: ${why}`);
    if (loadErrors[id]) {
      fail(`cannot load its files: ${loadErrors[id]}`);
      continue;
    }
    if (failures[id]) {
      fail(`does not compile against the CPU model:\n${failures[id]}`);
      continue;
    }
    if (!nodeName) {
      fail('no node of the manifest uses it');
      continue;
    }
    const node = manifest.nodes[nodeName]!;
    const { module } = loaded.get(id)!;
    const platform = opts.platform ?? presets[module.kernel.target];
    const x = node.inputs.find((t) => t.role === 'x');
    if (!x) {
      fail(`node '${nodeName}' has no x input`);
      continue;
    }
    let rows = rowsOf(x, spec.H, opts.rows ?? 7);
    const maxElements = opts.maxElements ?? 1 << 20;
    const capped = rows * spec.H > maxElements;
    if (capped) rows = Math.max(1, Math.floor(maxElements / spec.H));
    try {
      if (!platform) throw new Error(`no platform preset for target ${module.kernel.target}`);
      const tiling = module.tiling(rows, platform);
      const outputsOf = (k: string): string[] => (k === id ? module.kernel.params.filter((p) => p.direction === 'out').map((p) => p.name) : []);
      const device = new CpuModelDevice(binary, platform, outputsOf);
      const data = randomCase(spec, rows, opts.seed ?? 1);
      const onnxOf = (list: TensorDesc[], role: string): string | undefined => list.find((t) => t.role === role && t.name !== '')?.name;
      const inputs: Record<string, TensorData> = {};
      for (const p of module.kernel.params.filter((q) => q.direction === 'in')) {
        inputs[onnxOf(node.inputs, p.role)!] = typed(p.dtype as DType, data.inputs[p.name]!);
      }
      const launcher = module.createLauncher({ inputs: node.inputs.map((t) => t.name), outputs: node.outputs.map((t) => t.name) });
      const outs = await launcher.run(device, inputs);
      const byParam: Record<string, Uint8Array> = {};
      for (const p of module.kernel.params.filter((q) => q.direction === 'out')) {
        const t = outs[onnxOf(node.outputs, p.role) ?? ''];
        if (t) byParam[p.name] = bytesOf(t);
      }
      const checks = checkOutputs(spec, data.ref, byParam);
      const traffic = trafficFigure(spec, rows, tiling.blockDim, device.last?.gm ?? []);
      const modeName = MODE_NAMES[tiling.data.mode as TilingMode] ?? `mode ${tiling.data.mode}`;
      const ok = checks.every((c) => c.ok);
      const what = checks.map((c) => (c.ok ? `${c.name} ok` : c.message)).join('; ');
      const gm = `GM ${traffic.measuredPerElement.toFixed(2)} B/elem vs minimum ${traffic.minimumPerElement.toFixed(2)} (x${traffic.ratio.toFixed(2)})`;
      say(`${ok ? 'pass' : 'FAIL'}  ${id}: node ${nodeName}, ${rows} rows${capped ? ' (capped)' : ''}, ${modeName}, ${tiling.blockDim} cores: ${what}; ${gm}`);
      if (ok) passed++;
    } catch (e) {
      fail((e as Error).message);
    }
  }
  say(`${passed}/${ids.length} kernels pass`);
  return { lines, passed, total: ids.length };
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      rows: { type: 'string' },
      seed: { type: 'string' },
      platform: { type: 'string' },
      'max-elements': { type: 'string' },
    },
  });
  if (positionals.length !== 1) {
    process.stderr.write('usage: npm run ascendc:check -- DIR [--rows N] [--seed S] [--platform CORES,UB_BYTES] [--max-elements N]\n');
    return 2;
  }
  const int = (s: string | undefined, what: string): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${what} must be a positive integer`);
    return n;
  };
  let platform: Platform | undefined;
  if (values.platform) {
    const [c, u] = values.platform.split(',');
    platform = { coreNum: int(c, 'platform')!, ubBytes: int(u, 'platform')! };
  }
  const result = await checkAscendDir(
    positionals[0]!,
    { rows: int(values.rows, 'rows'), seed: int(values.seed, 'seed'), platform, maxElements: int(values['max-elements'], 'max-elements') },
    (l) => process.stdout.write(`${l}\n`),
  );
  return result.passed === result.total ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(1);
    },
  );
}
