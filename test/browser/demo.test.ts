/**
 * The browser demo (examples/browser) in a real browser: optimize an example with
 * `--target webgpu --emit`, bundle the page for the emitted folder, serve it on 127.0.0.1 and open
 * it in Debian's Chromium (headless, SwiftShader's WebGPU adapter) through playwright-core. Every
 * fused node's launcher must match the CPU reference; a screenshot of the fp32 page is saved to
 * test/artifacts/browser-demo.png (the others beside it).
 *
 * Skipped, with the reason printed, only when Chromium is missing (RMSFUSE_CHROMIUM overrides
 * the path; CI installs /usr/bin/chromium).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser } from 'playwright-core';
import { optimize } from '../../compiler/api.js';
import { buildDemo } from '../../examples/browser/build.js';
import type { DemoResult } from '../../examples/browser/demo.js';
import { serveStatic, type StaticServer } from '../../examples/browser/serve.js';

const CHROMIUM = process.env.RMSFUSE_CHROMIUM ?? '/usr/bin/chromium';
/** TOOLING.md: what exposes navigator.gpu (SwiftShader) in headless Debian Chromium. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const ARTIFACTS = path.resolve('test/artifacts');

const CASES = [
  { example: 'mini-llama-fp32.onnx', screenshot: 'browser-demo.png' },
  { example: 'mini-llama-fp16.onnx', screenshot: 'browser-demo-fp16.png' },
  { example: 'mini-gemma.onnx', screenshot: 'browser-demo-gemma.png' },
  { example: 'mini-w8a8.onnx', screenshot: 'browser-demo-w8a8.png' },
];

describe('browser demo: emitted WebGPU launchers in headless Chromium vs the CPU reference', function () {
  this.timeout(60_000);
  let browser: Browser | undefined;
  let server: StaticServer | undefined;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-browser-'));
  const site = path.join(tmp, 'site');

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.warn(`    skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set RMSFUSE_CHROMIUM)`);
      this.skip();
    }
    fs.mkdirSync(site);
    server = await serveStatic(site);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Opens a built demo folder, waits until it is done, screenshots it, returns what it shows. */
  async function openDemo(name: string, screenshot?: string) {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 480 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    try {
      await page.goto(`${server!.url}${name}/`);
      await page.waitForFunction(() => document.body.dataset.done !== undefined, null, { timeout: 45_000 }).catch(async (e: unknown) => {
        const status = await page.textContent('#status').catch(() => '?');
        throw new Error(`the page did not finish (status '${status}'; ${problems.join('; ') || 'no page errors'}): ${String(e)}`);
      });
      if (screenshot) {
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, screenshot), fullPage: true });
      }
      const result = (await page.evaluate(() => window.__rmsfuseResult)) as DemoResult | undefined;
      if (!result) throw new Error('the page set no window.__rmsfuseResult');
      return { result, status: await page.textContent('#status'), rows: await page.locator('#results tbody tr').count(), problems };
    } finally {
      await page.close();
    }
  }

  for (const { example, screenshot } of CASES) {
    it(`${example}: every fused node matches`, async function () {
      const name = path.basename(example, '.onnx');
      const emit = path.join(tmp, `${name}.emit`);
      const report = await optimize(path.join('examples', example), path.join(tmp, example), { target: 'webgpu', emit });
      expect(report.fused.length, 'fused sites').to.be.greaterThan(0);
      await buildDemo(emit, path.join(site, name));

      const { result, status, rows, problems } = await openDemo(name, screenshot);
      const failures = result.nodes.filter((n) => !n.ok).map((n) => `${n.node}: ${n.error ?? n.outputs.filter((o) => !o.ok).map((o) => o.message).join('; ')}`);
      expect(result.error, 'demo error').to.equal(undefined);
      expect(failures, 'nodes that do not match').to.deep.equal([]);
      expect(result.total, 'nodes run').to.equal(report.fused.length);
      expect(result.ok).to.equal(true);
      expect(status).to.equal(`${result.total}/${result.total} nodes match`);
      expect(rows, 'table rows').to.equal(result.total);
      expect(problems, 'page errors').to.deep.equal([]);
    });
  }

  it('reports a mismatch: a manifest whose epsilon disagrees with the kernel fails that node', async function () {
    const emit = path.join(tmp, 'wrong.emit');
    await optimize('examples/mini-llama-fp32.onnx', path.join(tmp, 'wrong.onnx'), { target: 'webgpu', emit });
    // The kernel keeps its epsilon (1e-6); the reference reads 0.5 from the manifest for one node.
    const file = path.join(emit, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: Record<string, { attributes: { epsilon: number } }> };
    const victim = Object.keys(manifest.nodes)[0]!;
    manifest.nodes[victim]!.attributes.epsilon = 0.5;
    fs.writeFileSync(file, JSON.stringify(manifest));
    await buildDemo(emit, path.join(site, 'wrong'));

    const { result, status } = await openDemo('wrong');
    expect(result.ok).to.equal(false);
    expect(result.nodes.filter((n) => !n.ok).map((n) => n.node)).to.deep.equal([victim]);
    expect(status).to.equal(`${result.total - 1}/${result.total} nodes match`);
  });
});
