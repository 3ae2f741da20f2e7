/**
 * The fuzz property for one input: `optimize(IN, OUT)` either succeeds with a valid OUT, or
 * throws an RmsfuseError with exit code 1 and a clear message, leaving no OUT and no temp file;
 * anything else (another exception, exit code 2 for a model, a half-written OUT, too slow) is a
 * failure. The failing input is saved under test/artifacts/fuzz/ for a regression file.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { optimize } from '../../compiler/api.js';
import { RmsfuseError } from '../../compiler/errors.js';
import { assertValidModel } from '../property/harness.js';
import { REPO } from './seeds.js';

/** Limits for in-process fuzzing: small, so a "huge" input is refused quickly. */
export const FUZZ_LIMITS = { maxTensorBytes: 64 << 20, maxDecodedBytes: 64 << 20 };
/**
 * Per-case bound on the CPU time of this process (not wall time: a shared CI machine under
 * load stretches wall time several-fold). A hang shows as mocha's timeout.
 */
export const CASE_CPU_MS = 10_000;

export type Outcome = { kind: 'ok'; fused: number } | { kind: 'error'; message: string };

/** A message a user can act on: one line-ish, no JS internals. */
export function messageProblem(message: string): string | undefined {
  if (message.trim() === '') return 'empty message';
  if (message.length > 1000) return `message of ${message.length} characters`;
  if (/\[object Object\]|\bundefined\b|Cannot read propert|is not a function|is not iterable|Maximum call stack/.test(message)) {
    return 'message shows JavaScript internals';
  }
  return undefined;
}

export function saveArtifact(bytes: Uint8Array, tag: string): string {
  const dir = path.join(REPO, 'test', 'artifacts', 'fuzz');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${tag}-${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}.onnx`);
  fs.writeFileSync(file, bytes);
  return path.relative(REPO, file);
}

/**
 * Runs the property for `bytes` in `dir` (a scratch folder of its own). Throws with the reason
 * (and the saved input) when the property does not hold.
 */
export async function checkOptimize(bytes: Uint8Array, dir: string, label: string): Promise<Outcome> {
  const input = path.join(dir, 'in.onnx');
  const output = path.join(dir, 'out.onnx');
  fs.rmSync(output, { force: true });
  fs.writeFileSync(input, bytes);
  const fail = (why: string): never => {
    const saved = saveArtifact(bytes, 'fuzz');
    throw new Error(`${label}: ${why}\n  input saved as ${saved} (${bytes.length} bytes)`);
  };
  const cpu0 = process.cpuUsage();
  let outcome: Outcome;
  try {
    const report = await optimize(input, output, { limits: FUZZ_LIMITS, log: () => {} });
    outcome = { kind: 'ok', fused: report.fused.length };
  } catch (e) {
    if (!(e instanceof RmsfuseError)) return fail(`crash (not an RmsfuseError): ${(e as Error)?.stack ?? String(e)}`);
    if (e.exitCode !== 1) return fail(`exit code ${e.exitCode} for a bad model (want 1): ${e.message}`);
    const problem = messageProblem(e.message);
    if (problem) return fail(`unclear error (${problem}): ${e.message}`);
    outcome = { kind: 'error', message: e.message };
  }
  const cpu = process.cpuUsage(cpu0);
  const ms = (cpu.user + cpu.system) / 1000;
  if (ms > CASE_CPU_MS) fail(`took ${ms.toFixed(0)} ms of CPU (bound ${CASE_CPU_MS} ms); outcome ${outcome.kind}`);
  const left = fs.readdirSync(dir).filter((f) => f !== 'in.onnx' && f !== 'out.onnx');
  if (left.length) fail(`left files behind: ${left.join(', ')}`);
  if (!fs.readFileSync(input).equals(Buffer.from(bytes))) fail('IN was modified');
  if (outcome.kind === 'error') {
    if (fs.existsSync(output)) fail(`failed with "${outcome.message}" but OUT exists`);
  } else {
    if (!fs.existsSync(output)) fail('succeeded but wrote no OUT');
    try {
      assertValidModel(fs.readFileSync(output), 'OUT');
    } catch (e) {
      fail(`succeeded but ${(e as Error).message}`);
    }
  }
  return outcome;
}
