/**
 * The page side of the demo: request a WebGPU device, run every fused node (demo.ts), and show
 * a table of node, kernel, max error and pass/fail. `build.ts` bundles this module together with an
 * emitted folder's `index.ts` and `manifest.json` through a generated entry that calls `start()`.
 *
 * For automation the page ends with `#status` reading `N/N nodes match` (or an error) and
 * `window.__rmsfuseResult` holding the DemoResult; `document.body.dataset.done` is set last.
 * Query parameters: `?seed=N` (input seed, default 1).
 */
import type { Manifest } from '../../codegen/manifest.js';
import type { Launcher } from '../../runtime/webgpu/runtime.js';
import { requiredFeatures, runDemo, type DemoResult, type NodeResult } from './demo.js';

declare global {
  interface Window {
    __rmsfuseResult?: DemoResult;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

const formatError = (v: number): string => (Number.isNaN(v) ? '—' : v === 0 ? '0' : v.toExponential(2));

function shapeText(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}

function row(r: NodeResult): HTMLTableRowElement {
  const tr = el('tr', undefined, r.ok ? 'pass' : 'fail');
  tr.append(
    el('td', r.node, 'node'),
    el('td', r.opType),
    el('td', r.kernel, 'kernel'),
    el('td', shapeText(r.shape), 'num'),
    el('td', r.outputs.map((o) => `${o.role} (${o.dtype})`).join(', ')),
    el('td', formatError(r.maxError), 'num'),
    el('td', Number.isNaN(r.runMs) ? '—' : r.runMs.toFixed(1), 'num'),
    el('td', r.ok ? 'pass' : 'FAIL', 'verdict'),
  );
  tr.title = r.error ?? r.outputs.map((o) => o.message).join('\n');
  return tr;
}

function finish(status: HTMLElement, result: DemoResult): void {
  status.textContent = result.error ? `error: ${result.error}` : `${result.passed}/${result.total} nodes match`;
  status.className = result.ok ? 'pass' : 'fail';
  window.__rmsfuseResult = result;
  document.body.dataset.done = result.ok ? 'pass' : 'fail';
}

/** Runs the demo on this page for the given launchers and manifest. */
export async function start(launchers: Record<string, Launcher>, manifest: Manifest): Promise<DemoResult> {
  const status = document.getElementById('status') ?? document.body.appendChild(el('p'));
  const info = document.getElementById('adapter') ?? document.body.appendChild(el('p'));
  const tbody = document.querySelector('#results tbody') ?? document.body.appendChild(el('tbody'));
  const seed = Number(new URLSearchParams(location.search).get('seed') ?? '1') || 1;
  const failed = (error: string): DemoResult => {
    const result: DemoResult = { ok: false, passed: 0, total: Object.keys(manifest.nodes).length, nodes: [], seed, error };
    finish(status, result);
    return result;
  };

  if (!('gpu' in navigator) || !navigator.gpu) return failed('WebGPU is not available in this browser (navigator.gpu is missing)');
  status.textContent = 'requesting a WebGPU adapter…';
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return failed('navigator.gpu.requestAdapter() returned no adapter');
  const needed = requiredFeatures(manifest);
  const missing = needed.filter((f) => !adapter.features.has(f));
  if (missing.length > 0) return failed(`the adapter lacks ${missing.join(', ')}, which the emitted kernels need`);
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: needed as GPUFeatureName[] });
  } catch (e) {
    return failed(`requestDevice failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const a = adapter.info;
  const adapterInfo = { vendor: a.vendor, architecture: a.architecture, description: a.description };
  info.textContent = `adapter: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' / ') || 'unknown'} · rmsfuse ${manifest.rmsfuse} · seed ${seed}`;

  let uncaptured = '';
  device.addEventListener('uncapturederror', (ev) => {
    uncaptured ||= (ev as GPUUncapturedErrorEvent).error.message;
  });

  const result = await runDemo(device, launchers, manifest, {
    seed,
    onNode: (r, i, total) => {
      tbody.appendChild(row(r));
      status.textContent = `ran ${i + 1}/${total} nodes…`;
    },
  });
  result.adapter = adapterInfo;
  if (uncaptured) {
    result.ok = false;
    result.error = `WebGPU error: ${uncaptured}`;
  }
  finish(status, result);
  device.destroy();
  return result;
}
