/**
 * rmsfuse WebGPU launcher runtime. `rmsfuse --emit` copies this file verbatim next to the
 * generated kernels as `kernels/runtime.ts`; every `kernels/<id>.ts` describes its kernel as a
 * `KernelInfo` and hands it to `createKernelLauncher`. It imports nothing (WebGPU types only), so
 * an emitted folder works in a browser bundle and in Node (dawn.node) alike.
 *
 * What a run does (KERNELS.md 8):
 * - The compute pipeline is built once per device and kernel key (the canonical serialisation of
 *   the whole kernel spec) and shared by every node that uses the kernel.
 * - Device buffers, readback buffers, the Params uniform and the bind group live per device and
 *   kernel, are reused across runs and grown when a larger tensor comes; runs of one kernel on
 *   one device are serialised, as they share those buffers.
 * - gamma, beta and bias (initializers) are uploaded again only when another array object is
 *   passed: mutate such an array in place and the device keeps the old values.
 * - Tensors larger than the storage binding limit are split by rows into several dispatches;
 *   more than maxComputeWorkgroupsPerDimension workgroups go 2-D.
 * - Kernels of long rows carry a split-row path (KernelInfo.split): for runs of few rows the
 *   launcher dispatches its entry points one after another in one compute pass (each row spread
 *   over several workgroups, meeting through a scratch buffer) instead of the one-pass `main`.
 *   All entry points share one explicit group-0 layout, hence one bind group.
 * - Only the requested outputs are copied back.
 */

/** fp32 tensors are Float32Array, fp16/bf16 Uint16Array of bits, int8 Int8Array (uint8 offsets Uint8Array). */
export type TensorData = Float32Array | Uint16Array | Int8Array | Uint8Array;

/** A node's ONNX tensor names in its input and output order ('' for an absent optional input). */
export interface TensorNames {
  inputs: string[];
  outputs: string[];
}

/** The dispatches of a run: which path, and per chunk of rows (one per binding-limit split) the entry points and grids. */
export interface DispatchPlan {
  path: 'rows' | 'split';
  chunks: { startRow: number; rows: number; dispatches: { entryPoint: string; workgroups: [number, number] }[] }[];
}

export interface Launcher {
  /**
   * Run the node on `inputs` (typed arrays keyed by ONNX input name, initializers included) and
   * return the outputs keyed by output name; `outputs` limits which are read back (default: all).
   */
  run(device: GPUDevice, inputs: Record<string, TensorData>, outputs?: string[]): Promise<Record<string, TensorData>>;
  /**
   * GPU time of one run's dispatches (one, or the split path's two or three) in nanoseconds,
   * averaged over `iterations` back-to-back runs on inputs uploaded once (timestamp queries;
   * undefined where the device lacks 'timestamp-query'). For benchmarks: the inputs must fit one
   * chunk of dispatches; atomic outputs are not cleared between iterations.
   */
  gpuTime(device: GPUDevice, inputs: Record<string, TensorData>, iterations: number): Promise<number | undefined>;
  /** The dispatches a run of `rows` rows makes on `device` (what run() and gpuTime() follow). */
  plan(device: GPUDevice, rows: number): DispatchPlan;
  /** The plan of the latest run() or gpuTime() call (for tests and benchmarks). */
  readonly lastPlan: DispatchPlan | undefined;
}

export interface LauncherOptions {
  /** Upper bound on bytes per tensor binding (default and cap: the device's maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
  /** Upper bound on workgroups per dispatch dimension (default and cap: the device's limit). */
  maxWorkgroupsPerDimension?: number;
  /**
   * The split-row path of a long-row kernel: 'auto' (default) for runs of at most
   * KernelInfo.split.maxRows rows on a GPU (never on a CPU adapter), 'always' for every run,
   * 'never'. No effect on other kernels.
   */
  splitRow?: 'auto' | 'always' | 'never';
}

export type Packing = 'f32' | 'f16' | 'f16x2' | 'bf16x2' | 'i8x4';

/** One tensor binding of a kernel (mirrors codegen/wgsl/parts.ts WgslBinding). */
export interface KernelBinding {
  binding: number;
  role: string;
  dtype: string;
  access: 'read' | 'read_write';
  packing: Packing;
  /** Sub-word elements OR-ed into a zeroed buffer: cleared before every dispatch. */
  atomic: boolean;
  /** rows * H elements, H elements, or one per row. */
  extent: 'rows' | 'vector' | 'perRow';
}

/** The split-row path of a kernel (codegen/wgsl/generate.ts WgslSplitDispatch). */
export interface KernelSplit {
  /** Entry points dispatched in this order, each over rows * workgroupsPerRow workgroups. */
  entryPoints: string[];
  workgroupsPerRow: number;
  /** Runs of at most this many rows take the split path (LauncherOptions.splitRow 'auto'). */
  maxRows: number;
  /** f32 partials per row in the scratch buffer (binding 0 of bind group 1). */
  partialsPerRow: number;
}

/** What an emitted kernel module tells the runtime. */
export interface KernelInfo {
  id: string;
  /** Canonical JSON of the kernel spec: the pipeline cache key. */
  key: string;
  source: string;
  entryPoint: string;
  /** Elements per normalized row. */
  H: number;
  /** Roles of the node's inputs and outputs, in ONNX order. */
  inputRoles: string[];
  outputRoles: string[];
  /** dtype of every input role the node can have (scale and offset included). */
  inputDTypes: Record<string, string>;
  /** Binding of the Params uniform { rows: u32, scale: f32, offset: f32, pad: u32 }. */
  paramsBinding: number;
  bindings: KernelBinding[];
  rowsPerWorkgroup: number;
  split?: KernelSplit;
  /** Device features the shader needs ('shader-f16' for native fp16, 'subgroups'). */
  requiredFeatures: string[];
}

// WebGPU constants by value, so the runtime needs no GPUBufferUsage/GPUMapMode globals (dawn.node
// does not install them unless asked).
const USAGE_MAP_READ = 0x0001;
const USAGE_COPY_SRC = 0x0004;
const USAGE_COPY_DST = 0x0008;
const USAGE_UNIFORM = 0x0040;
const USAGE_STORAGE = 0x0080;
const USAGE_QUERY_RESOLVE = 0x0200;
const MAP_READ = 0x0001;
const STAGE_COMPUTE = 0x0004;
/** Bind group of the split path's scratch buffer (codegen/wgsl/generate.ts SPLIT_GROUP). */
const SCRATCH_GROUP = 1;
const PARAMS_BYTES = 16;

const align4 = (n: number): number => Math.ceil(n / 4) * 4;

/** Bytes per element in memory (packed formats keep the element's own size). */
export function elementBytes(b: KernelBinding): number {
  switch (b.packing) {
    case 'f32':
      return 4;
    case 'f16':
    case 'f16x2':
    case 'bf16x2':
      return 2;
    case 'i8x4':
      return 1;
  }
}

function newArray(dtype: string, n: number): TensorData {
  if (dtype === 'float32') return new Float32Array(n);
  if (dtype === 'float16' || dtype === 'bfloat16') return new Uint16Array(n);
  if (dtype === 'int8') return new Int8Array(n);
  throw new Error(`rmsfuse runtime: no array type for dtype ${dtype}`);
}

/** A scalar input (static quant scale, offset) as an f32 value. */
function scalarValue(data: TensorData | undefined, dtype: string, fallback: number): number {
  if (!data || data.length === 0) return fallback;
  const v = data[0]!;
  if (dtype === 'float16') return halfToF32(v);
  if (dtype === 'bfloat16') return new Float32Array(new Uint32Array([v << 16]).buffer)[0]!;
  return v;
}

/** IEEE binary16 bits to a number (used for fp16 scales only; the kernels do their own conversions). */
function halfToF32(b: number): number {
  const sign = b & 0x8000 ? -1 : 1;
  const e = (b >> 10) & 0x1f;
  const m = b & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** Bytes of `data` ready for writeBuffer (whose size must be a multiple of 4). */
function uploadView(data: TensorData): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) return bytes;
  const padded = new Uint8Array(align4(bytes.byteLength));
  padded.set(bytes);
  return padded;
}

// ------------------------------------------------------------------------------------------
// Per-device caches

/** Shader module, explicit bind group layouts and pipelines (built on first use) of one kernel on one device. */
interface KernelPipelines {
  module: GPUShaderModule;
  /** Params and tensors: shared by every entry point, so one bind group serves them all. */
  group0: GPUBindGroupLayout;
  /** The split path's scratch buffer. */
  scratch?: GPUBindGroupLayout;
  byEntry: Map<string, Promise<GPUComputePipeline>>;
}

const pipelines = new WeakMap<GPUDevice, Map<string, KernelPipelines>>();

function kernelPipelines(device: GPUDevice, k: KernelInfo): KernelPipelines {
  let byKey = pipelines.get(device);
  if (!byKey) pipelines.set(device, (byKey = new Map()));
  let kp = byKey.get(k.key);
  if (!kp) {
    const missing = k.requiredFeatures.filter((f) => !device.features.has(f));
    if (missing.length > 0) {
      throw new Error(`${k.id}: the device lacks ${missing.map((f) => `'${f}'`).join(', ')}; emit the kernels for this device's features or request them`);
    }
    const group0 = device.createBindGroupLayout({
      label: k.id,
      entries: [
        { binding: k.paramsBinding, visibility: STAGE_COMPUTE, buffer: { type: 'uniform' } },
        ...k.bindings.map((b) => ({ binding: b.binding, visibility: STAGE_COMPUTE, buffer: { type: b.access === 'read' ? ('read-only-storage' as const) : ('storage' as const) } })),
      ],
    });
    const scratch = k.split
      ? device.createBindGroupLayout({ label: `${k.id}.scratch`, entries: [{ binding: 0, visibility: STAGE_COMPUTE, buffer: { type: 'storage' } }] })
      : undefined;
    kp = { module: device.createShaderModule({ label: k.id, code: k.source }), group0, scratch, byEntry: new Map() };
    byKey.set(k.key, kp);
  }
  return kp;
}

function pipelineFor(device: GPUDevice, k: KernelInfo, entryPoint: string): Promise<GPUComputePipeline> {
  let kp: KernelPipelines;
  try {
    kp = kernelPipelines(device, k);
  } catch (e) {
    return Promise.reject(e);
  }
  let p = kp.byEntry.get(entryPoint);
  if (!p) {
    // `main` binds group 0 only; the split path's entry points also the scratch group.
    const groups = [kp.group0];
    if (entryPoint !== k.entryPoint) groups[SCRATCH_GROUP] = kp.scratch!;
    const layout = device.createPipelineLayout({ label: `${k.id}.${entryPoint}`, bindGroupLayouts: groups });
    p = device.createComputePipelineAsync({ label: `${k.id}.${entryPoint}`, layout, compute: { module: kp.module, entryPoint } });
    // A failed build is not cached: the next run tries again and reports the error again.
    p.catch(() => kp.byEntry.delete(entryPoint));
    kp.byEntry.set(entryPoint, p);
  }
  return p;
}

interface Slot {
  buffer?: GPUBuffer;
  readback?: GPUBuffer;
  /** The array last uploaded into a vector (gamma/beta/bias) buffer. */
  uploaded?: TensorData;
}

/** Buffers and bind groups of one kernel on one device, shared by every node using the kernel. */
interface KernelState {
  params: GPUBuffer;
  slots: Map<number, Slot>;
  bindGroup?: GPUBindGroup;
  /** The split path's partials and their bind group (made on its first use). */
  scratch: Slot;
  scratchBindGroup?: GPUBindGroup;
  /** Tail of the run queue: runs of one kernel on one device go one after another. */
  queue: Promise<unknown>;
}

const states = new WeakMap<GPUDevice, Map<string, KernelState>>();

function stateFor(device: GPUDevice, k: KernelInfo): KernelState {
  let byKey = states.get(device);
  if (!byKey) states.set(device, (byKey = new Map()));
  let s = byKey.get(k.key);
  if (!s) {
    s = {
      params: device.createBuffer({ label: `${k.id}.params`, size: PARAMS_BYTES, usage: USAGE_UNIFORM | USAGE_COPY_DST }),
      slots: new Map(),
      scratch: {},
      queue: Promise.resolve(),
    };
    byKey.set(k.key, s);
  }
  return s;
}

/** Grow-only buffer of a slot; returns true when a new buffer was made (the bind group is stale). */
function ensureBuffer(device: GPUDevice, slot: Slot, label: string, size: number): boolean {
  if (slot.buffer && slot.buffer.size >= size) return false;
  slot.buffer?.destroy();
  slot.buffer = device.createBuffer({ label, size, usage: USAGE_STORAGE | USAGE_COPY_DST | USAGE_COPY_SRC });
  slot.uploaded = undefined;
  return true;
}

function ensureReadback(device: GPUDevice, slot: Slot, label: string, size: number): GPUBuffer {
  if (!slot.readback || slot.readback.size < size) {
    slot.readback?.destroy();
    slot.readback = device.createBuffer({ label, size, usage: USAGE_MAP_READ | USAGE_COPY_DST });
  }
  return slot.readback;
}

// ------------------------------------------------------------------------------------------

interface Prepared {
  rows: number;
  /** Rows per dispatch (the last one may have fewer). */
  chunkRows: number;
  /** Input arrays by role. */
  data: Map<string, TensorData>;
  scale: number;
  offset: number;
}

/** Bytes a binding needs for `rows` rows. */
function bindingBytes(k: KernelInfo, b: KernelBinding, rows: number): number {
  const n = b.extent === 'rows' ? rows * k.H : b.extent === 'vector' ? k.H : rows;
  return align4(Math.max(1, n) * elementBytes(b));
}

export function createKernelLauncher(k: KernelInfo, names: TensorNames, options: LauncherOptions = {}): Launcher {
  if (names.inputs.length > k.inputRoles.length) {
    throw new Error(`${k.id}: ${names.inputs.length} input names for ${k.inputRoles.length} inputs (${k.inputRoles.join(', ')})`);
  }
  if (names.outputs.length !== k.outputRoles.length) {
    throw new Error(`${k.id}: ${names.outputs.length} output names for outputs ${k.outputRoles.join(', ')}`);
  }
  const inputName = (role: string): string => names.inputs[k.inputRoles.indexOf(role)] ?? '';
  const outputName = (role: string): string => names.outputs[k.outputRoles.indexOf(role)] ?? '';
  let lastPlan: DispatchPlan | undefined;

  /** Rows per dispatch: as many as every binding (and the split path's scratch) allows. */
  function chunkRowsFor(device: GPUDevice, rows: number): number {
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, options.maxBindingBytes ?? Infinity);
    let rowBytes = k.split ? k.split.partialsPerRow * 4 : 0;
    for (const b of k.bindings) if (b.extent !== 'vector') rowBytes = Math.max(rowBytes, (b.extent === 'rows' ? k.H : 1) * elementBytes(b));
    // -3: a chunk's byte size is rounded up to a word.
    const maxRows = Math.floor((limit - 3) / rowBytes);
    if (maxRows < 1) throw new Error(`${k.id}: one row (${rowBytes} bytes) exceeds the storage binding limit of ${limit} bytes`);
    const chunks = Math.max(1, Math.ceil(rows / maxRows));
    return Math.ceil(rows / chunks);
  }

  function prepare(device: GPUDevice, inputs: Record<string, TensorData>): Prepared {
    const data = new Map<string, TensorData>();
    k.inputRoles.forEach((role, i) => {
      const name = names.inputs[i] ?? '';
      if (name === '') return;
      const a = inputs[name];
      if (!a) throw new Error(`${k.id}: missing input '${name}' (${role})`);
      data.set(role, a);
    });
    const x = data.get('x');
    if (!x) throw new Error(`${k.id}: missing input x`);
    if (x.length % k.H !== 0) throw new Error(`${k.id}: x has ${x.length} elements, not a multiple of H = ${k.H}`);
    const rows = x.length / k.H;
    for (const b of k.bindings) {
      const a = data.get(b.role);
      if (b.access !== 'read' || !a) continue;
      const want = b.extent === 'vector' ? k.H : rows * k.H;
      if (a.length !== want) throw new Error(`${k.id}: input '${inputName(b.role)}' (${b.role}) has ${a.length} elements, expected ${want}`);
    }
    return {
      rows,
      chunkRows: chunkRowsFor(device, rows),
      data,
      scale: scalarValue(data.get('scale'), k.inputDTypes.scale ?? 'float32', 1),
      offset: scalarValue(data.get('offset'), k.inputDTypes.offset ?? 'int8', 0),
    };
  }

  function grid(device: GPUDevice, groups: number): [number, number] {
    const maxDim = Math.min(device.limits.maxComputeWorkgroupsPerDimension, options.maxWorkgroupsPerDimension ?? Infinity);
    const x = Math.min(groups, maxDim);
    return [x, Math.ceil(groups / x)];
  }

  function plan(device: GPUDevice, rows: number): DispatchPlan {
    const mode = options.splitRow ?? 'auto';
    // A CPU (fallback) adapter such as SwiftShader runs each workgroup on one thread: spreading a
    // row over workgroups there only adds dispatches (4-30x slower measured), so 'auto' stays one-pass.
    const cpuAdapter = device.adapterInfo?.isFallbackAdapter === true;
    const auto = mode === 'auto' && !cpuAdapter && rows <= (k.split?.maxRows ?? 0);
    const split = k.split && rows > 0 && (mode === 'always' || auto) ? k.split : undefined;
    const chunkRows = chunkRowsFor(device, rows);
    const chunks: DispatchPlan['chunks'] = [];
    for (let startRow = 0; startRow < rows; startRow += chunkRows) {
      const n = Math.min(chunkRows, rows - startRow);
      const dispatches = split
        ? split.entryPoints.map((entryPoint) => ({ entryPoint, workgroups: grid(device, n * split.workgroupsPerRow) }))
        : [{ entryPoint: k.entryPoint, workgroups: grid(device, Math.ceil(n / k.rowsPerWorkgroup)) }];
      chunks.push({ startRow, rows: n, dispatches });
    }
    return { path: split ? 'split' : 'rows', chunks };
  }

  /** The pipelines of the plan's entry points, by name. */
  async function pipelinesOf(device: GPUDevice, pl: DispatchPlan): Promise<Map<string, GPUComputePipeline>> {
    const entries = [...new Set(pl.chunks.flatMap((c) => c.dispatches.map((d) => d.entryPoint)))];
    const built = await Promise.all(entries.map((e) => pipelineFor(device, k, e)));
    return new Map(entries.map((e, i) => [e, built[i]!]));
  }

  /** Buffers for chunks of `chunkRows` rows, vector inputs uploaded; returns the bind group(s). */
  function bind(device: GPUDevice, s: KernelState, p: Prepared, split: boolean): GPUBindGroup[] {
    const kp = kernelPipelines(device, k);
    let stale = !s.bindGroup;
    for (const b of k.bindings) {
      let slot = s.slots.get(b.binding);
      if (!slot) s.slots.set(b.binding, (slot = {}));
      stale = ensureBuffer(device, slot, `${k.id}.${b.role}`, bindingBytes(k, b, p.chunkRows)) || stale;
      const a = p.data.get(b.role);
      if (b.extent === 'vector' && a && slot.uploaded !== a) {
        device.queue.writeBuffer(slot.buffer!, 0, uploadView(a));
        slot.uploaded = a;
      }
    }
    if (stale) {
      s.bindGroup = device.createBindGroup({
        label: k.id,
        layout: kp.group0,
        entries: [
          { binding: k.paramsBinding, resource: { buffer: s.params } },
          ...k.bindings.map((b) => ({ binding: b.binding, resource: { buffer: s.slots.get(b.binding)!.buffer! } })),
        ],
      });
    }
    if (!split) return [s.bindGroup!];
    if (ensureBuffer(device, s.scratch, `${k.id}.scratch`, p.chunkRows * k.split!.partialsPerRow * 4) || !s.scratchBindGroup) {
      s.scratchBindGroup = device.createBindGroup({ label: `${k.id}.scratch`, layout: kp.scratch!, entries: [{ binding: 0, resource: { buffer: s.scratch.buffer! } }] });
    }
    return [s.bindGroup!, s.scratchBindGroup];
  }

  /** Uploads the row inputs and Params of rows [start, start + n). */
  function upload(device: GPUDevice, s: KernelState, p: Prepared, start: number, n: number): void {
    for (const b of k.bindings) {
      const a = p.data.get(b.role);
      if (b.access !== 'read' || b.extent !== 'rows' || !a) continue;
      device.queue.writeBuffer(s.slots.get(b.binding)!.buffer!, 0, uploadView(a.subarray(start * k.H, (start + n) * k.H)));
    }
    const params = new ArrayBuffer(PARAMS_BYTES);
    new Uint32Array(params, 0, 1)[0] = n;
    new Float32Array(params, 4, 2).set([p.scale, p.offset]);
    device.queue.writeBuffer(s.params, 0, params);
  }

  /** Records one chunk's dispatches: one compute pass, so each dispatch sees the previous one's writes. */
  function record(pass: GPUComputePassEncoder, chunk: DispatchPlan['chunks'][number], pipes: Map<string, GPUComputePipeline>, groups: GPUBindGroup[]): void {
    pass.setBindGroup(0, groups[0]!);
    if (groups[1]) pass.setBindGroup(SCRATCH_GROUP, groups[1]);
    for (const d of chunk.dispatches) {
      pass.setPipeline(pipes.get(d.entryPoint)!);
      pass.dispatchWorkgroups(...d.workgroups);
    }
  }

  function clearAtomics(encoder: GPUCommandEncoder, s: KernelState, n: number): void {
    for (const b of k.bindings) if (b.atomic) encoder.clearBuffer(s.slots.get(b.binding)!.buffer!, 0, bindingBytes(k, b, n));
  }

  /** Queue a run behind the previous ones of this kernel on this device. */
  function serialised<T>(s: KernelState, f: () => Promise<T>): Promise<T> {
    const result = s.queue.then(f);
    s.queue = result.catch(() => undefined);
    return result;
  }

  async function run(device: GPUDevice, inputs: Record<string, TensorData>, outputs?: string[]): Promise<Record<string, TensorData>> {
    const wanted = outputs ?? names.outputs.filter((n) => n !== '');
    for (const n of wanted) if (n === '' || !names.outputs.includes(n)) throw new Error(`${k.id}: '${n}' is not an output (${names.outputs.join(', ')})`);
    const p = prepare(device, inputs);
    const pl = plan(device, p.rows);
    const s = stateFor(device, k);
    const pipes = await pipelinesOf(device, pl);
    return serialised(s, async () => {
      lastPlan = pl;
      const result: Record<string, TensorData> = {};
      const reads = k.bindings.filter((b) => b.access === 'read_write' && wanted.includes(outputName(b.role)));
      for (const b of reads) result[outputName(b.role)] = newArray(b.dtype, b.extent === 'perRow' ? p.rows : p.rows * k.H);
      if (p.rows === 0) return result;
      const groups = bind(device, s, p, pl.path === 'split');
      for (const chunk of pl.chunks) {
        const { startRow: start, rows: n } = chunk;
        upload(device, s, p, start, n);
        const encoder = device.createCommandEncoder({ label: k.id });
        clearAtomics(encoder, s, n);
        const pass = encoder.beginComputePass({ label: k.id });
        record(pass, chunk, pipes, groups);
        pass.end();
        const copies = reads.map((b) => {
          const slot = s.slots.get(b.binding)!;
          const bytes = bindingBytes(k, b, n);
          const rb = ensureReadback(device, slot, `${k.id}.${b.role}.readback`, bindingBytes(k, b, p.chunkRows));
          encoder.copyBufferToBuffer(slot.buffer!, 0, rb, 0, bytes);
          return { b, rb, bytes };
        });
        device.queue.submit([encoder.finish()]);
        await Promise.all(copies.map((c) => c.rb.mapAsync(MAP_READ, 0, c.bytes)));
        for (const { b, rb, bytes } of copies) {
          const out = result[outputName(b.role)]!;
          const per = b.extent === 'perRow' ? 1 : k.H;
          const src = new Uint8Array(rb.getMappedRange(0, bytes), 0, n * per * out.BYTES_PER_ELEMENT);
          new Uint8Array(out.buffer, start * per * out.BYTES_PER_ELEMENT, src.byteLength).set(src);
          rb.unmap();
        }
      }
      return result;
    });
  }

  async function gpuTime(device: GPUDevice, inputs: Record<string, TensorData>, iterations: number): Promise<number | undefined> {
    if (!device.features.has('timestamp-query')) return undefined;
    const p = prepare(device, inputs);
    if (p.chunkRows < p.rows) throw new Error(`${k.id}: gpuTime needs the tensors to fit one dispatch`);
    const pl = plan(device, p.rows);
    const s = stateFor(device, k);
    const pipes = await pipelinesOf(device, pl);
    return serialised(s, async () => {
      lastPlan = pl;
      const groups = bind(device, s, p, pl.path === 'split');
      upload(device, s, p, 0, p.rows);
      return timeDispatches(device, iterations, (pass) => record(pass, pl.chunks[0]!, pipes, groups));
    });
  }

  return {
    run,
    gpuTime,
    plan,
    get lastPlan() {
      return lastPlan;
    },
  };
}

/**
 * GPU nanoseconds per call of `record`, measured with timestamps around one compute pass that
 * calls it `iterations` times (after one untimed warm-up pass). Needs 'timestamp-query'.
 */
export async function timeDispatches(device: GPUDevice, iterations: number, record: (pass: GPUComputePassEncoder) => void): Promise<number> {
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
  const resolve = device.createBuffer({ size: 16, usage: USAGE_QUERY_RESOLVE | USAGE_COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: USAGE_COPY_DST | USAGE_MAP_READ });
  try {
    const warm = device.createCommandEncoder();
    const wp = warm.beginComputePass();
    record(wp);
    wp.end();
    device.queue.submit([warm.finish()]);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
    for (let i = 0; i < iterations; i++) record(pass);
    pass.end();
    encoder.resolveQuerySet(querySet, 0, 2, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, read, 0, 16);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(MAP_READ);
    const [t0, t1] = new BigUint64Array(read.getMappedRange());
    read.unmap();
    return Number(t1! - t0!) / iterations;
  } finally {
    querySet.destroy();
    resolve.destroy();
    read.destroy();
  }
}
