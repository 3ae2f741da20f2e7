/**
 * Idempotence and determinism (issue item 4):
 *  - optimizing an optimized model changes nothing (byte-identical), on the examples, the fuzz
 *    seeds and generated graphs;
 *  - the same input gives the same bytes: twice in one process, and in a fresh process (with
 *    other V8 hash and random seeds);
 *  - the result does not depend on the order nodes are listed in: a random valid topological
 *    order of the same graph fuses the same sites into the same nodes (same names, attributes,
 *    inputs and outputs) and the same functions.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import fc from 'fast-check';
import { seedModels } from '../fuzz/seeds.js';
import { fcParams, runConfig } from './config.js';
import { optimizeBytes, renderForFailure } from './harness.js';
import { canonical, shuffleNodes } from './order.js';
import { buildCase, caseArb, describeCase } from './rmsnorm-gen.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('stability: idempotent and deterministic', function () {
  this.timeout(0);

  it('examples and fuzz seeds: optimizing the output again changes nothing; twice gives the same bytes', function () {
    for (const s of seedModels()) {
      const a = optimizeBytes(s.bytes);
      const b = optimizeBytes(a.bytes);
      const again = optimizeBytes(s.bytes);
      expect(sha(again.bytes), `${s.name}: second run differs`).to.equal(sha(a.bytes));
      if (sha(b.bytes) !== sha(a.bytes)) {
        throw new Error(`${s.name}: optimizing the optimized model changed it (${b.report.fused.length} more fusions)\n${renderForFailure('first', a.bytes)}\n${renderForFailure('second', b.bytes)}`);
      }
    }
  });

  it('examples and fuzz seeds: a fresh process (other V8 hash/random seeds) writes the same bytes', function () {
    const seeds = seedModels();
    const here = seeds.map((s) => sha(optimizeBytes(s.bytes).bytes));
    {
      const r = spawnSync(process.execPath, ['--hash-seed=4242', '--random-seed=99', '--import', 'tsx', path.join(HERE, 'stability-child.ts')], {
        encoding: 'utf8',
        env: { ...process.env, RMSFUSE_DEBUG: '' },
        maxBuffer: 16 << 20,
      });
      expect(r.status, r.stderr).to.equal(0);
      const there = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
      expect(there).to.deep.equal(here);
    }
  });

  it('generated graphs: idempotent, deterministic, independent of node order (fast-check)', function () {
    const cfg = runConfig(200, 3000);
    fc.assert(
      fc.property(caseArb(), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (c, orderSeed) => {
        const m = buildCase(c).model;
        const a = optimizeBytes(m);
        const b = optimizeBytes(a.bytes);
        const why = (msg: string, x: Uint8Array, y: Uint8Array) =>
          new Error(`${msg}\n${describeCase(c)}\n${renderForFailure('first', x)}\n${renderForFailure('second', y)}`);
        if (sha(b.bytes) !== sha(a.bytes)) throw why('optimizing the optimized model changed it', a.bytes, b.bytes);
        const again = optimizeBytes(m);
        if (sha(again.bytes) !== sha(a.bytes)) throw why('two runs on the same input differ', a.bytes, again.bytes);
        const shuffled = optimizeBytes(shuffleNodes(m, orderSeed));
        if (canonical(shuffled.proto) !== canonical(a.proto)) {
          throw why(`another node order (seed ${orderSeed}) gives a different result`, a.bytes, shuffled.bytes);
        }
      }),
      fcParams('stability', cfg),
    );
  });
});
