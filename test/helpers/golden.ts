/**
 * Golden-file comparison shared by the generators' tests (TypeScript-baseline style): generated
 * text is compared with a committed file; a mismatch fails with a unified diff and the command
 * that accepts it. With RMSFUSE_ACCEPT_GOLDEN=1 (`npm run golden:accept`) the files are rewritten
 * and the change is reviewed as an ordinary git diff.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { unifiedDiff } from './unified-diff.js';

export const ACCEPT_GOLDEN = process.env.RMSFUSE_ACCEPT_GOLDEN === '1';

/** A checker for the golden files under `dir`: `check(file, generatedText)`. */
export function goldenChecker(dir: string): (file: string, actual: string) => void {
  return (file, actual) => {
    const full = path.join(dir, file);
    if (ACCEPT_GOLDEN) {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(full, actual);
      return;
    }
    if (!fs.existsSync(full)) throw new Error(`golden file ${path.relative(process.cwd(), full)} is missing; run \`npm run golden:accept\``);
    const expected = fs.readFileSync(full, 'utf8');
    if (expected !== actual) {
      expect.fail(`${file} differs from its golden file; review the diff and run \`npm run golden:accept\` to accept it:\n${unifiedDiff(expected, actual, file)}`);
    }
  };
}
