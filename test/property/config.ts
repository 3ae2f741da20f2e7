/**
 * Seeds and run counts of the property and fuzz tests.
 *
 *   RMSFUSE_FC_SEED=n   seed (default: a fixed seed in CI, a fresh one with RMSFUSE_LONG=1)
 *   RMSFUSE_FC_RUNS=n   cases per property (default: the CI count, or the long count)
 *   RMSFUSE_FC_CLI_RUNS=n  CLI child-process runs of the fuzzer (default 6, long 200)
 *   RMSFUSE_LONG=1      long run (npm run test:long)
 *
 * Every suite prints its seed and count, so a failure in CI reproduces with
 * `RMSFUSE_FC_SEED=<seed> npx mocha <file>`; fast-check's message also gives the `path` of
 * the shrunk counterexample.
 */
import type { Parameters } from 'fast-check';

export const LONG = process.env.RMSFUSE_LONG === '1' || process.env.RMSFUSE_LONG === 'true';

/** The fixed CI seed: CI is reproducible; long runs explore. */
const CI_SEED = 20261204;

export interface RunConfig {
  seed: number;
  numRuns: number;
}

/** `runsVar` names the environment variable that sets the count (RMSFUSE_FC_RUNS by default). */
export function runConfig(ciRuns: number, longRuns: number, runsVar = 'RMSFUSE_FC_RUNS'): RunConfig {
  const envSeed = process.env.RMSFUSE_FC_SEED;
  const envRuns = process.env[runsVar];
  const seed = envSeed ? Number(envSeed) : LONG ? (Date.now() ^ (process.pid << 10)) >>> 0 : CI_SEED;
  const numRuns = envRuns ? Number(envRuns) : LONG ? longRuns : ciRuns;
  if (!Number.isInteger(seed) || !Number.isInteger(numRuns) || numRuns < 1) {
    throw new Error(`RMSFUSE_FC_SEED / RMSFUSE_FC_RUNS must be integers (got '${envSeed}', '${envRuns}')`);
  }
  return { seed, numRuns };
}

/** fast-check parameters from a run config; prints how to reproduce. */
export function fcParams<T>(what: string, cfg: RunConfig, extra: Parameters<T> = {}): Parameters<T> {
  console.log(`      [${what}] seed ${cfg.seed}, ${cfg.numRuns} runs (reproduce: RMSFUSE_FC_SEED=${cfg.seed} RMSFUSE_FC_RUNS=${cfg.numRuns})`);
  return { seed: cfg.seed, numRuns: cfg.numRuns, includeErrorInReport: true, ...extra };
}
