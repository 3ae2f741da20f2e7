/**
 * The browser demo's work, without any DOM: for every fused node of an `--emit DIR` manifest,
 * make seeded random inputs of the node's shapes, run the node's WebGPU launcher, compute the CPU
 * reference (runtime/reference.ts) and compare with SPEC section 2's tolerances.
 *
 * It takes the device, the emitted `launchers` and the parsed `manifest.json` as arguments, so the
 * same code runs in a page (main.ts) and, given a dawn.node device, in Node.
 *
 * Inputs: symbolic dims (batch, sequence, d0, ...) become small numbers (`dims`, default 3 for
 * any name it does not list); x, residual and bias are uniform in [-spread, spread]; gamma and beta
 * uniform in [0.5, 1.5] and [-0.5, 0.5]; a static quant scale is positive and an offset a small
 * integer. fp16/bf16 values are rounded to their dtype first, so the reference sees exactly the
 * values the GPU does.
 */
import type { Manifest, ManifestNode } from '../../codegen/manifest.js';
import { fromAttributes, type DType, type FloatDType, type TensorDesc } from '../../compiler/op/param.js';
import {
  compareWithTolerance,
  fromBf16Bits,
  fromF16Bits,
  toBf16Bits,
  toF16Bits,
  type CompareKind,
} from '../../runtime/numeric.js';
import { rng } from '../../runtime/random.js';
import { rmsNormReference, type RefInputs, type RefOutputs } from '../../runtime/reference.js';
import type { Launcher, TensorData } from '../../runtime/webgpu/runtime.js';

export interface DemoOptions {
  /** Seed of the input generator (default 1). */
  seed?: number;
  /** Values of symbolic dims by name; others get `defaultDim`. */
  dims?: Record<string, number>;
  /** Value of a symbolic dim not in `dims` (default 3). */
  defaultDim?: number;
  /** Activations are uniform in [-spread, spread] (default 4). */
  spread?: number;
  /** Called after every node (for a progress display). */
  onNode?: (result: NodeResult, index: number, total: number) => void;
}

export interface OutputResult {
  name: string;
  role: string;
  dtype: string;
  elements: number;
  ok: boolean;
  /** Worst error: relative for floats and scales, absolute for int8. */
  maxError: number;
  message: string;
}

export interface NodeResult {
  node: string;
  opType: string;
  kernel: string;
  /** Concrete shape of x the node ran on. */
  shape: number[];
  ok: boolean;
  /** Largest `maxError` over the outputs (NaN when the run failed). */
  maxError: number;
  /** Wall time of the launcher run (upload, dispatch, readback; pipeline build on first use), ms. */
  runMs: number;
  outputs: OutputResult[];
  /** Why the node failed to run (launcher or reference threw). */
  error?: string;
}

export interface DemoResult {
  ok: boolean;
  passed: number;
  total: number;
  nodes: NodeResult[];
  seed: number;
  /** Set when the demo could not run at all (no WebGPU, no adapter, ...). */
  error?: string;
  /** What the adapter says about itself, where known. */
  adapter?: { vendor: string; architecture: string; description: string };
}

export const DEFAULT_DIMS: Readonly<Record<string, number>> = { batch: 2, batch_size: 2, seq: 3, sequence: 3, sequence_length: 3 };

/** A manifest shape with its symbolic dims replaced by numbers. */
export function concreteShape(shape: (number | string)[], dims: Record<string, number>, defaultDim: number): number[] {
  return shape.map((d) => (typeof d === 'number' ? d : (dims[d] ?? defaultDim)));
}

const product = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** A tensor as the launcher takes it and as the reference reads it (decoded numbers). */
interface HostTensor {
  data: TensorData;
  values: Float32Array;
}

function floatTensor(dtype: DType, values: Float32Array): HostTensor {
  switch (dtype) {
    case 'float32':
      return { data: values, values };
    case 'float16': {
      const data = toF16Bits(values);
      return { data, values: fromF16Bits(data) };
    }
    case 'bfloat16': {
      const data = toBf16Bits(values);
      return { data, values: fromBf16Bits(data) };
    }
    case 'int8': {
      const data = Int8Array.from(values, (v) => Math.max(-128, Math.min(127, Math.round(v))));
      return { data, values: Float32Array.from(data) };
    }
    case 'uint8': {
      const data = Uint8Array.from(values, (v) => Math.max(0, Math.min(255, Math.round(v))));
      return { data, values: Float32Array.from(data) };
    }
    default:
      throw new Error(`the demo has no input data for dtype ${dtype}`);
  }
}

/** Random values of one input, by role. */
function randomInput(t: TensorDesc, n: number, random: () => number, spread: number): HostTensor {
  const uniform = (lo: number, hi: number): number => lo + (hi - lo) * random();
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (t.role) {
      case 'gamma':
        values[i] = uniform(0.5, 1.5);
        break;
      case 'beta':
        values[i] = uniform(-0.5, 0.5);
        break;
      case 'scale':
        values[i] = uniform(0.02, 0.06);
        break;
      case 'offset':
        values[i] = Math.floor(uniform(-4, 5));
        break;
      default:
        values[i] = uniform(-spread, spread);
    }
  }
  return floatTensor(t.dtype, values);
}

/** Launcher output -> numbers to compare (fp16/bf16 decoded). */
function decodeOutput(dtype: string, a: TensorData): ArrayLike<number> {
  if (dtype === 'float16') return fromF16Bits(a as Uint16Array);
  if (dtype === 'bfloat16') return fromBf16Bits(a as Uint16Array);
  return a;
}

function compareKind(t: TensorDesc): CompareKind {
  if (t.role === 'scale') return 'scale';
  if (t.dtype === 'int8') return 'int8';
  if (t.dtype === 'float32' || t.dtype === 'float16' || t.dtype === 'bfloat16') return t.dtype;
  throw new Error(`output '${t.name}' has dtype ${t.dtype}, which the demo cannot compare`);
}

/** Elements per normalized row: the kernel spec's H, or gamma's element count. */
function rowLength(manifest: Manifest, n: ManifestNode, gammaShape: number[] | undefined): number {
  const spec = manifest.kernels[n.kernel]?.spec as { H?: unknown } | undefined;
  if (spec && typeof spec.H === 'number') return spec.H;
  if (gammaShape) return product(gammaShape);
  throw new Error(`kernel ${n.kernel}: no H in the manifest and no gamma input`);
}

const fail = (message: string): never => {
  throw new Error(message);
};

/** Runs one node on the GPU and on the CPU reference and compares every output. */
export async function checkNode(
  device: GPUDevice,
  launcher: Launcher,
  manifest: Manifest,
  name: string,
  random: () => number,
  options: DemoOptions = {},
): Promise<NodeResult> {
  const n = manifest.nodes[name] ?? fail(`node '${name}' is not in the manifest`);
  const dims = { ...DEFAULT_DIMS, ...options.dims };
  const defaultDim = options.defaultDim ?? 3;
  const spread = options.spread ?? 4;
  const x = n.inputs.find((t) => t.role === 'x') ?? fail(`${name}: no x input`);
  const shape = concreteShape(x.shape, dims, defaultDim);
  const result: NodeResult = { node: name, opType: n.opType, kernel: n.kernel, shape, ok: false, maxError: NaN, runMs: NaN, outputs: [] };
  try {
    const param = fromAttributes(n.opType, n.attributes);
    const gamma = n.inputs.find((t) => t.role === 'gamma');
    const H = rowLength(manifest, n, gamma && concreteShape(gamma.shape, dims, defaultDim));

    const inputs: Record<string, TensorData> = {};
    const byRole = new Map<string, HostTensor>();
    for (const t of n.inputs) {
      if (t.name === '') continue;
      const host = randomInput(t, product(concreteShape(t.shape, dims, defaultDim)), random, spread);
      inputs[t.name] = host.data;
      byRole.set(t.role, host);
    }

    const xDType = x.dtype as FloatDType;
    const ref: RefInputs = {
      x: byRole.get('x')!.values,
      gamma: byRole.get('gamma')?.values ?? fail(`${name}: no gamma input`),
      residual: byRole.get('residual')?.values,
      bias: byRole.get('bias')?.values,
      beta: byRole.get('beta')?.values,
      scale: byRole.get('scale')?.values[0],
      offset: byRole.get('offset')?.values[0],
    };
    const expected: RefOutputs = rmsNormReference(param, xDType, H, ref);

    const t0 = performance.now();
    const got = await launcher.run(device, inputs);
    result.runMs = performance.now() - t0;

    for (const t of n.outputs) {
      if (t.name === '') continue;
      const want = expected[t.role as keyof RefOutputs];
      const actual = got[t.name];
      if (!want || !actual) {
        result.outputs.push({
          name: t.name,
          role: t.role,
          dtype: t.dtype,
          elements: 0,
          ok: false,
          maxError: Infinity,
          message: `${t.role} '${t.name}': ${want ? 'the launcher' : 'the reference'} returned nothing`,
        });
        continue;
      }
      const r = compareWithTolerance(decodeOutput(t.dtype, actual), want, compareKind(t), { label: `${t.role} '${t.name}'` });
      result.outputs.push({ name: t.name, role: t.role, dtype: t.dtype, elements: want.length, ok: r.ok, maxError: r.worst.error, message: r.message });
    }
    result.ok = result.outputs.length > 0 && result.outputs.every((o) => o.ok);
    result.maxError = Math.max(...result.outputs.map((o) => o.maxError));
  } catch (e) {
    result.error = e instanceof Error ? e.message : String(e);
  }
  return result;
}

/** Checks every node of the manifest (in manifest order) that has a launcher. */
export async function runDemo(
  device: GPUDevice,
  launchers: Record<string, Launcher>,
  manifest: Manifest,
  options: DemoOptions = {},
): Promise<DemoResult> {
  const seed = options.seed ?? 1;
  const random = rng(seed);
  const names = Object.keys(manifest.nodes);
  const nodes: NodeResult[] = [];
  for (const [i, name] of names.entries()) {
    const launcher = launchers[name];
    const r: NodeResult = launcher
      ? await checkNode(device, launcher, manifest, name, random, options)
      : {
          node: name,
          opType: manifest.nodes[name]!.opType,
          kernel: manifest.nodes[name]!.kernel,
          shape: [],
          ok: false,
          maxError: NaN,
          runMs: NaN,
          outputs: [],
          error: 'index.ts has no launcher for this node',
        };
    nodes.push(r);
    options.onNode?.(r, i, names.length);
  }
  const passed = nodes.filter((r) => r.ok).length;
  return { ok: nodes.length > 0 && passed === nodes.length, passed, total: nodes.length, nodes, seed };
}

/** Device features the emitted kernels need (e.g. 'shader-f16' for kernels emitted with it). */
export function requiredFeatures(manifest: Manifest): string[] {
  const features = new Set<string>();
  for (const k of Object.values(manifest.kernels)) {
    const spec = k.spec as { f16?: unknown; subgroups?: unknown };
    if (spec.f16 === 'native') features.add('shader-f16');
    if (spec.subgroups === true) features.add('subgroups');
  }
  return [...features];
}
