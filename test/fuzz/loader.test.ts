/**
 * Fuzzing the loader, the passes and the writer through the public API and the CLI.
 *
 * Inputs: the seed models (examples/*.onnx and generated ones, seeds.ts) with 1-3 mutations
 * each (mutators.ts). Property (check.ts): `optimize` succeeds with a valid OUT, or fails with
 * an RmsfuseError (exit 1) and a clear `error:` message, without OUT, temp files or a changed
 * IN, within a time bound; the CLI exits 0 or 1, never with a stack trace, within time and a
 * 256 MiB heap.
 *
 * CI: every mutator on every seed once, ~300 random combinations in process, a handful through
 * the CLI. RMSFUSE_LONG=1: thousands (RMSFUSE_FC_RUNS to choose).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { assertValidModel } from '../property/harness.js';
import { LONG, fcParams, runConfig } from '../property/config.js';
import { checkOptimize, messageProblem, saveArtifact, type Outcome } from './check.js';
import { HEAVY, MUTATOR_NAMES, mutate } from './mutators.js';
import { REPO, seedModels, type Seed } from './seeds.js';

const BIN = path.join(REPO, 'bin', 'rmsfuse.js');

interface FuzzCase {
  seed: number;
  mutations: { name: string; seed: number }[];
}

function applyCase(seeds: Seed[], c: FuzzCase): { bytes: Uint8Array; label: string } {
  const s = seeds[c.seed % seeds.length]!;
  let bytes = s.bytes;
  for (const m of c.mutations) bytes = mutate(bytes, m.name, m.seed);
  return { bytes, label: `${s.name} + ${c.mutations.map((m) => `${m.name}#${m.seed}`).join(' + ')}` };
}

const light = MUTATOR_NAMES.filter((n) => !HEAVY.has(n));
const mutationArb = fc.record({
  name: fc.oneof({ weight: 20, arbitrary: fc.constantFrom(...light) }, { weight: 1, arbitrary: fc.constantFrom(...HEAVY) }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});
const caseArb = (nSeeds: number) =>
  fc.record({ seed: fc.nat({ max: nSeeds - 1 }), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) });

describe('fuzz: loader and optimize through the API', function () {
  this.timeout(0);
  let seeds: Seed[];
  let dir: string;
  const tally = { ok: 0, error: 0 };
  const messages = new Map<string, number>();
  const count = (o: Outcome) => {
    tally[o.kind]++;
    if (o.kind === 'error') {
      const key = o.message.replace(/'[^']*'/g, "'…'").replace(/\d+/g, 'N').slice(0, 80);
      messages.set(key, (messages.get(key) ?? 0) + 1);
    }
  };

  before(function () {
    seeds = seedModels();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-fuzz-'));
  });
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`      outcomes: ${tally.ok} optimized, ${tally.error} refused with error:`);
    for (const [m, n] of [...messages].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`        ${n} x ${m}`);
  });

  it('every seed optimizes unmutated, to a valid model', async function () {
    for (const s of seeds) {
      const o = await checkOptimize(s.bytes, dir, s.name);
      expect(o.kind, `${s.name}: ${o.kind === 'error' ? o.message : ''}`).to.equal('ok');
    }
  });

  it('every mutator on every seed (CI: on two seeds each, rotating): ok or a clear error, never a crash', async function () {
    let k = 0;
    for (const [i, name] of MUTATOR_NAMES.entries()) {
      const on = LONG ? seeds : [seeds[i % seeds.length]!, seeds[(i + 5) % seeds.length]!];
      for (const s of on) {
        const bytes = mutate(s.bytes, name, 1000 + k++);
        count(await checkOptimize(bytes, dir, `${s.name} + ${name}`));
      }
    }
  });

  it('random mutation combinations (fast-check)', async function () {
    const cfg = runConfig(300, 5000);
    const current = path.join(REPO, 'test', 'artifacts', 'fuzz', 'current.onnx');
    await fc.assert(
      fc.asyncProperty(caseArb(seeds.length), async (c) => {
        const { bytes, label } = applyCase(seeds, c);
        // In long runs, the input being checked is on disk: a hang can be examined afterwards.
        if (LONG) {
          fs.mkdirSync(path.dirname(current), { recursive: true });
          fs.writeFileSync(current, bytes);
        }
        count(await checkOptimize(bytes, dir, label));
      }),
      fcParams('fuzz-api', cfg),
    );
  });
});

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

/** The CLI as a user runs it, with a 256 MiB heap and a time limit (killed after). */
function runCli(args: string[], timeoutMs: number): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--max-old-space-size=256', BIN, ...args], {
      cwd: REPO,
      env: { ...process.env, RMSFUSE_DEBUG: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, ms: performance.now() - t0 });
    });
  });
}

describe('fuzz: the CLI as a child process', function () {
  this.timeout(0);
  const CLI_MS = 60_000;

  it('exits 0 with a valid OUT or 1 with `error:`, no stack trace, no OUT, within time and heap', async function () {
    const seeds = seedModels();
    const cfg = runConfig(6, 200, 'RMSFUSE_FC_CLI_RUNS');
    console.log(`      [fuzz-cli] seed ${cfg.seed}, ${cfg.numRuns} runs`);
    const cases = fc.sample(caseArb(seeds.length), { seed: cfg.seed, numRuns: cfg.numRuns });
    // Always include the cases that stress the limits: a decode bomb, nesting, a huge dim.
    cases.push(
      { seed: 0, mutations: [{ name: 'many-empty-nodes', seed: 1 }] },
      { seed: 1, mutations: [{ name: 'nest', seed: 3 }] },
      { seed: 2, mutations: [{ name: 'dims-huge', seed: 5 }] },
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-fuzz-cli-'));
    try {
      // Two at a time: the launcher's start-up (tsx) dominates.
      for (let i = 0; i < cases.length; i += 2) {
        await Promise.all(
          cases.slice(i, i + 2).map(async (c, j) => {
            const { bytes, label } = applyCase(seeds, c);
            const sub = path.join(dir, String(i + j));
            fs.mkdirSync(sub);
            const input = path.join(sub, 'in.onnx');
            const output = path.join(sub, 'out.onnx');
            fs.writeFileSync(input, bytes);
            const r = await runCli(['optimize', input, '-o', output], CLI_MS);
            const problem = cliProblem(r, sub, output, CLI_MS);
            if (problem) throw new Error(`${label}: ${problem}\n  stderr: ${r.stderr.slice(0, 2000)}\n  input saved as ${saveArtifact(bytes, 'cli')}`);
          }),
        );
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function cliProblem(r: CliRun, dir: string, output: string, limitMs: number): string | undefined {
  if (r.signal) return `killed by ${r.signal} after ${r.ms.toFixed(0)} ms (time limit ${limitMs} ms, heap 256 MiB)`;
  if (r.code !== 0 && r.code !== 1) return `exit code ${r.code}`;
  if (/^\s+at .+:\d+:\d+\)?$/m.test(r.stderr)) return 'stack trace on stderr';
  if (/internal error|FATAL ERROR|heap out of memory/i.test(r.stderr)) return 'internal error on stderr';
  const left = fs.readdirSync(dir).filter((f) => f !== 'in.onnx' && f !== 'out.onnx');
  if (left.length) return `left files behind: ${left.join(', ')}`;
  if (r.code === 1) {
    if (!r.stderr.startsWith('error: ')) return 'exit 1 without `error: ` at the start of stderr';
    const problem = messageProblem(r.stderr.slice('error: '.length));
    if (problem) return `unclear error: ${problem}`;
    if (fs.existsSync(output)) return 'exit 1 but OUT exists';
  } else {
    if (!fs.existsSync(output)) return 'exit 0 but no OUT';
    try {
      assertValidModel(fs.readFileSync(output), 'OUT');
    } catch (e) {
      return (e as Error).message;
    }
  }
  return undefined;
}
