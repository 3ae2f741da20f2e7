/**
 * End to end on Ascend: optimize shipped fp16 models with `--target ascend910b --emit DIR`
 * (ATB's 910B takes fp16 and bf16 norms, not fp32 ones), then `npm run ascendc:check -- DIR`
 * compiles every emitted kernel against the CPU model of the Ascend C API, runs it through its
 * launcher's tiling and compares with the CPU reference (ATB's tolerances, SPEC section 2).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { optimize } from '../../compiler/api.js';

const MODELS = ['examples/mini-llama-fp16.onnx', 'examples/exporters/llama-fp16.onnx'];

describe('end to end: optimize --target ascend910b --emit, then npm run ascendc:check', function () {
  this.timeout(300_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-e2e-ascend-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const model of MODELS) {
    it(model, async () => {
      const base = path.basename(model, '.onnx');
      const emit = path.join(tmp, `${base}.kernels`);
      const report = await optimize(model, path.join(tmp, `${base}.onnx`), { target: 'ascend910b', emit });
      const manifest = JSON.parse(fs.readFileSync(path.join(emit, 'manifest.json'), 'utf8'));
      const kernels = Object.keys(manifest.kernels).length;
      expect(report.fused.length, 'fused sites').to.be.greaterThan(0);
      expect(kernels, 'kernels emitted').to.be.greaterThan(0);
      expect(Object.keys(manifest.nodes)).to.have.length(report.fused.length);

      const run = spawnSync('npm', ['run', '-s', 'ascendc:check', '--', emit], { encoding: 'utf8' });
      const lines = run.stdout.trim().split('\n');
      expect(lines.at(-1), run.stdout + run.stderr).to.equal(`${kernels}/${kernels} kernels pass`);
      expect(run.status, run.stderr).to.equal(0);
      // One line per kernel before the summary, each a pass with its GM traffic figure.
      const perKernel = lines.filter((l) => /^(pass|FAIL)\s/.test(l));
      expect(perKernel).to.have.length(kernels);
      for (const l of perKernel) expect(l).to.match(/^pass .*GM [\d.]+ B\/elem vs minimum [\d.]+ \(x1\.00\)/);
    });
  }
});
