/**
 * The regression corpus: every failure the property tests and fuzzers found, as a small model
 * (NAME.onnx) with its expectation beside it (NAME.json):
 *
 *   {
 *     "found": "how it was found (fuzzer, mutators, seed) and what went wrong",
 *     "expect": {
 *       "exit": 0 | 1,               // optimize succeeds (0) or fails as a bad model (1)
 *       "message": "fragment",       // exit 1: a fragment of the error message
 *       "maxMessageLength": 600,     // exit 1: the message stays readable
 *       "fused": 2,                  // exit 0: fused node count
 *       "keeps": ["QuantizeLinear"], // exit 0: op types the optimized graph still has
 *       "cli": true                  // also run the CLI as a child process and check its exit code
 *     }
 *   }
 *
 * Every model runs through `optimize` (the API, with files); exit 0 also checks OUT is a valid
 * model and that optimizing it again changes nothing.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { optimize } from '../../compiler/api.js';
import { RmsfuseError } from '../../compiler/errors.js';
import { assertValidModel, fusedNodes } from '../property/harness.js';

const DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(DIR, '../..');

interface Expectation {
  exit: 0 | 1;
  message?: string;
  maxMessageLength?: number;
  fused?: number;
  keeps?: string[];
  cli?: boolean;
}

const entries = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f.slice(0, -5), spec: JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as { found: string; expect: Expectation } }));

describe('regressions (test/regressions/*.onnx)', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-regress-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('every .json has its .onnx and every .onnx its .json', function () {
    const onnx = fs.readdirSync(DIR).filter((f) => f.endsWith('.onnx')).map((f) => f.slice(0, -5)).sort();
    expect(onnx).to.deep.equal(entries.map((e) => e.name));
  });

  for (const { name, spec } of entries) {
    it(`${name}: ${spec.expect.exit === 0 ? `optimizes${spec.expect.fused !== undefined ? ` (${spec.expect.fused} fused)` : ''}` : `refused: ${spec.expect.message ?? 'error'}`}`, async function () {
      const want = spec.expect;
      const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
      const input = path.join(dir, `${name}.onnx`);
      const output = path.join(dir, 'out.onnx');
      fs.copyFileSync(path.join(DIR, `${name}.onnx`), input);
      let error: RmsfuseError | undefined;
      try {
        await optimize(input, output, { log: () => {} });
      } catch (e) {
        if (!(e instanceof RmsfuseError)) throw new Error(`${name}: crash: ${(e as Error).stack}`);
        error = e;
      }
      if (want.exit === 1) {
        expect(error, `${name} should be refused`).to.not.equal(undefined);
        expect(error!.exitCode).to.equal(1);
        if (want.message) expect(error!.message).to.include(want.message);
        if (want.maxMessageLength) expect(error!.message.length, error!.message).to.be.at.most(want.maxMessageLength);
        expect(fs.existsSync(output), 'OUT must not exist after an error').to.equal(false);
      } else {
        expect(error?.message).to.equal(undefined);
        const bytes = fs.readFileSync(output);
        const model = assertValidModel(bytes, `${name} OUT`);
        if (want.fused !== undefined) expect(fusedNodes(model).length).to.equal(want.fused);
        const ops = new Set(model.graph.nodes.map((n) => n.opType));
        for (const op of want.keeps ?? []) expect(ops.has(op), `${name}: ${op} stays unfused`).to.equal(true);
        const again = path.join(dir, 'again.onnx');
        await optimize(output, again, { log: () => {} });
        expect(Buffer.compare(fs.readFileSync(again), bytes), 'optimizing OUT again changes it').to.equal(0);
      }
      if (want.cli) {
        fs.rmSync(output, { force: true });
        const r = spawnSync(process.execPath, [path.join(REPO, 'bin', 'rmsfuse.js'), 'optimize', input, '-o', output], {
          encoding: 'utf8',
          env: { ...process.env, RMSFUSE_DEBUG: '' },
        });
        expect(r.status, r.stderr).to.equal(want.exit);
        if (want.exit === 1) expect(r.stderr.startsWith('error: '), r.stderr).to.equal(true);
      }
    });
  }
});
