/**
 * WebGPU in Node through dawn.node (`webgpu` package), for tests and benchmarks.
 *
 * - `backend: 'null'` runs Tint only (validation, no execution; advertises shader-f16 and subgroups).
 * - `backend: 'swiftshader'` executes on the CPU through SwiftShader's Vulkan driver from Debian's
 *   chromium package (TOOLING.md).
 * - `backend: 'default'` takes the adapter dawn picks (a real GPU where there is one).
 * Everything `create()` returns is kept in module-level variables for the life of the process:
 * dawn.node destroys its instance when the GPU object is collected, and the process then dies at
 * random (TOOLING.md). Devices are cached per backend for the same reason.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
/** chromium ships its own Vulkan loader next to SwiftShader. */
const CHROMIUM_VULKAN_LOADER = '/usr/lib/chromium/libvulkan.so.1';
/** glibc's RTLD_NODELETE (Node's os.constants.dlopen lacks it): keep a library loaded after dlclose. */
const RTLD_NODELETE = 0x1000;

export type Backend = 'null' | 'swiftshader' | 'default';

export interface NodeGpu {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
}

// Module-level on purpose: see the file comment.
const live = new Map<Backend, Promise<NodeGpu>>();

/**
 * Environment for a child process that should reach the same Vulkan adapter (onnxruntime's
 * WebGPU EP must run in another process than dawn.node): the ICD, and chromium's loader on the
 * library path for machines without Debian's libvulkan1.
 */
export function childGpuEnv(backend: Backend): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
  if (backend === 'swiftshader') env.VK_ICD_FILENAMES ??= SWIFTSHADER_ICD;
  if (existsSync(CHROMIUM_VULKAN_LOADER)) {
    env.LD_LIBRARY_PATH = [env.LD_LIBRARY_PATH, '/usr/lib/chromium'].filter(Boolean).join(':');
  }
  return env;
}

/** Why SwiftShader cannot run here, or undefined when it can. */
export function swiftShaderUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `SwiftShader through chromium is set up for Linux only (platform ${process.platform})`;
  if (!existsSync(SWIFTSHADER_ICD)) return `${SWIFTSHADER_ICD} is absent (apt-get install chromium)`;
  return undefined;
}

/**
 * Make `libvulkan.so.1` loadable for Dawn. Debian's libvulkan1 provides it; without that package
 * chromium's copy is used. Dawn dlopens the loader by its soname, and glibc matches an already
 * loaded library by soname, so loading chromium's copy first (and keeping it loaded) suffices;
 * LD_LIBRARY_PATH cannot be changed after the process has started.
 */
function ensureVulkanLoader(): void {
  const flags = os.constants.dlopen.RTLD_NOW | os.constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE;
  const tryLoad = (path: string): boolean => {
    try {
      process.dlopen({ exports: {} }, path, flags);
      return true;
    } catch (e) {
      // Loaded fine but is no Node addon: exactly what we want (RTLD_NODELETE keeps it).
      return /did not self-register/.test((e as Error).message);
    }
  };
  if (tryLoad('libvulkan.so.1')) return;
  if (existsSync(CHROMIUM_VULKAN_LOADER)) tryLoad(CHROMIUM_VULKAN_LOADER);
}

async function open(backend: Backend): Promise<NodeGpu> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // silences dawn's warning, harmless
  if (backend === 'swiftshader') {
    const why = swiftShaderUnavailable();
    if (why) throw new Error(why);
    process.env.VK_ICD_FILENAMES ??= SWIFTSHADER_ICD;
  }
  if (backend !== 'null') ensureVulkanLoader();
  const { create } = await import('webgpu');
  // timestamp_quantization off: GPU timestamps at full resolution (TOOLING.md).
  const options = backend === 'null' ? ['backend=null'] : ['disable-dawn-features=timestamp_quantization'];
  const gpu = create(options);
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error(`no WebGPU adapter for backend ${backend}`);
  // Ask for what the adapter offers: SPEC 5 (request the adapter's maximum storage binding).
  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    },
  });
  device.addEventListener('uncapturederror', (ev) => {
    console.error(`WebGPU uncaptured error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
  return { gpu, adapter, device };
}

/** The process-wide device of a backend (created on first use, then kept alive). */
export function nodeGpu(backend: Backend): Promise<NodeGpu> {
  let p = live.get(backend);
  if (!p) {
    p = open(backend);
    live.set(backend, p);
  }
  return p;
}
