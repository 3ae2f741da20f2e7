/** Runs the real `rmsfuse` launcher as a child process, and makes scratch folders. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(REPO, 'bin', 'rmsfuse.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/rmsfuse.js ...args` (or another command with `command`). */
export function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; command?: string[] } = {}): Promise<CliResult> {
  const [cmd, ...pre] = opts.command ?? [process.execPath, BIN];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, [...pre, ...args], {
      cwd: opts.cwd ?? REPO,
      env: { ...process.env, RMSFUSE_DEBUG: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A fresh folder under the system temp dir; `cleanup()` removes every folder made. */
export function scratch(): { dir: (name?: string) => string; cleanup: () => void } {
  const made: string[] = [];
  return {
    dir: (name = 'rmsfuse-test-') => {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), name));
      made.push(d);
      return d;
    },
    cleanup: () => {
      for (const d of made) fs.rmSync(d, { recursive: true, force: true });
    },
  };
}
