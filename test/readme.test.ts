/**
 * The commands the READMEs show work as written: every command in a ```sh block of README.md and
 * examples/README.md that starts with `npx rmsfuse`, `npx tsx examples/` or `npm run` runs as a
 * child process from the repository root and exits 0, with its /tmp paths moved into a scratch
 * folder; each of those paths exists afterwards. Commands that take long or change the checkout
 * are skipped, each with its reason below; any other command fails the test until it is
 * classified here.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, scratch } from './foundation/cli-runner.js';

const FILES = ['README.md', 'examples/README.md'];
const RUN = [/^npx rmsfuse /, /^npx tsx examples\//, /^npm run /];
const SKIP: { command: RegExp; reason: string }[] = [
  { command: /^(ONNXRUNTIME_NODE_INSTALL=\S+ )?npm ci\b/, reason: 'reinstalls node_modules (minutes, network)' },
  { command: /^bash \.ci\/run\b/, reason: 'the whole CI: apt packages, npm ci, npm test' },
  { command: /^npm test\b/, reason: 'the whole suite, this file included' },
  { command: /^npx tsx examples\/make-examples\.ts\b/, reason: 'rewrites the shipped examples/*.onnx in the checkout (test/passes/exporters checks them)' },
  { command: /^\/usr\/bin\/python3 examples\/exporters\/export\.py\b/, reason: 'needs python3-torch and rewrites examples/exporters/*.onnx in the checkout' },
];

interface Command {
  file: string;
  line: number;
  text: string;
}

/** Commands of the ```sh blocks: comments dropped, `\` continuations joined, `a && b` split. */
function shellCommands(file: string, markdown: string): Command[] {
  const out: Command[] = [];
  let inSh = false;
  let pending = '';
  let start = 0;
  markdown.split('\n').forEach((raw, i) => {
    if (/^```/.test(raw)) {
      inSh = !inSh && /^```(sh|bash|shell)\s*$/.test(raw);
      return;
    }
    if (!inSh) return;
    if (!pending) start = i + 1;
    const line = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      return;
    }
    const text = (pending + line).trim();
    pending = '';
    for (const part of text.split('&&')) if (part.trim()) out.push({ file, line: start, text: part.trim() });
  });
  return out;
}

/** The command with every /tmp/... path moved under `dir`, and those paths. */
function relocate(text: string, dir: string): { text: string; outputs: string[] } {
  const outputs: string[] = [];
  const moved = text.replace(/(^|[\s=>])\/tmp\/([^\s'";|&)]+)/g, (_m, pre: string, rest: string) => {
    const p = path.join(dir, rest);
    outputs.push(p);
    return `${pre}${p}`;
  });
  return { text: moved, outputs };
}

function run(command: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { cwd: REPO, env: { ...process.env, RMSFUSE_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

const commands = FILES.flatMap((f) => shellCommands(f, fs.readFileSync(path.join(REPO, f), 'utf8')));

describe('README commands', function () {
  this.timeout(60_000);
  const tmp = scratch();
  after(() => tmp.cleanup());
  // One scratch folder per README: a command may read what an earlier one in the same file wrote
  // (e.g. `ascendc:check` on the kernels the line before emitted), as a reader running them would.
  const dirs = new Map<string, string>();
  const dirFor = (file: string) => dirs.get(file) ?? dirs.set(file, tmp.dir('rmsfuse-readme-')).get(file)!;

  it('the READMEs show commands, and each is run here or skipped with a reason', () => {
    expect(commands.filter((c) => RUN.some((r) => r.test(c.text))).length).to.be.greaterThan(5);
    const unclassified = commands.filter((c) => !RUN.some((r) => r.test(c.text)) && !SKIP.some((s) => s.command.test(c.text)));
    expect(unclassified.map((c) => `${c.file}:${c.line}: ${c.text}`), 'add these to RUN or SKIP in test/readme.test.ts').to.deep.equal([]);
  });

  for (const c of commands) {
    const skip = SKIP.find((s) => s.command.test(c.text));
    if (skip) {
      it.skip(`${c.file}:${c.line}: ${c.text} (skipped: ${skip.reason})`);
      continue;
    }
    if (!RUN.some((r) => r.test(c.text))) continue;
    it(`${c.file}:${c.line}: ${c.text}`, async () => {
      const { text, outputs } = relocate(c.text, dirFor(c.file));
      const r = await run(text);
      expect(r.code, `${text}\n${r.output}`).to.equal(0);
      for (const o of outputs) expect(fs.existsSync(o), `${o} (from ${c.text})`).to.equal(true);
    });
  }
});
