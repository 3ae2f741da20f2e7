/** The CLI as users run it: exit codes, messages, reports, inspect; `node bin/rmsfuse.js` and `npx rmsfuse`. */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main, reportError, summary } from '../../compiler/cli.js';
import { RmsfuseError, type OptimizeReport } from '../../compiler/index.js';
import { DT, externalTensor, graph, model, modelBytes, node, tinyModel, valueInfo } from '../helpers/model-builder.js';
import { REPO, runCli, scratch, type CliResult } from './cli-runner.js';

interface UsageCase {
  name: string;
  args: (input: string, out: string, dir: string) => string[];
  env?: NodeJS.ProcessEnv;
  message: RegExp;
}

const USAGE: UsageCase[] = [
  { name: 'no command', args: () => [], message: /Usage: rmsfuse/ },
  { name: 'unknown command', args: () => ['frobnicate'], message: /error: unknown command 'frobnicate'/ },
  { name: 'missing -o', args: (i) => ['optimize', i], message: /error: required option '-o, --output <out>' not specified/ },
  { name: 'missing IN', args: (_i, o) => ['optimize', '-o', o], message: /error: missing required argument 'in'/ },
  { name: 'unknown option', args: (i, o) => ['optimize', i, '-o', o, '--bogus'], message: /error: unknown option '--bogus'/ },
  { name: 'unknown target', args: (i, o) => ['optimize', i, '-o', o, '--target', 'tpu'], message: /error: option '--target <target>' argument 'tpu' is invalid.*webgpu/ },
  { name: 'unknown format', args: (i, o) => ['optimize', i, '-o', o, '--format', 'tflite'], message: /error: option '--format <format>' argument 'tflite' is invalid.*rmsfuse, ort, onnx23/ },
  { name: '--emit without --target', args: (i, o, d) => ['optimize', i, '-o', o, '--emit', path.join(d, 'k')], message: /error: --emit needs --target/ },
  { name: 'report with another extension', args: (i, o, d) => ['optimize', i, '-o', o, '--report', path.join(d, 'r.txt')], message: /error: --report .*r.txt: the file name must end in .json or .md/ },
  { name: 'RMSFUSE_PASSES naming an unknown pass', args: (i, o) => ['optimize', i, '-o', o], env: { RMSFUSE_PASSES: 'no-such-pass' }, message: /error: RMSFUSE_PASSES names an unknown pass 'no-such-pass'/ },
];

/** Y = Relu(W) + X with W external, opset given. */
function writeModel(dir: string, opset = 17): string {
  fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.alloc(16));
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(
    file,
    modelBytes(
      model({
        opset,
        graph: graph({
          nodes: [node('Relu', ['W'], ['r'], { name: 'relu' }), node('Add', ['X', 'r'], ['Y'], { name: 'add' }), node('Add', ['Y', 'Y'], ['Z'], { name: 'add2' })],
          inputs: [valueInfo('X', DT.FLOAT, ['batch', 4])],
          outputs: [valueInfo('Y', DT.FLOAT, ['batch', 4]), valueInfo('Z', DT.FLOAT, undefined)],
          initializers: [externalTensor('W', DT.FLOAT, [4], 'w.bin', 0, 16)],
        }),
      }),
    ),
  );
  return file;
}

describe('foundation: CLI', function () {
  this.timeout(120_000);
  const tmp = scratch();
  after(() => tmp.cleanup());

  describe('usage errors exit 2 and create nothing', () => {
    const results = new Map<string, { r: CliResult; dir: string; out: string }>();
    before(async () => {
      await Promise.all(
        USAGE.map(async (c) => {
          const dir = tmp.dir();
          const input = path.join(dir, 'in.onnx');
          fs.writeFileSync(input, modelBytes(tinyModel()));
          const out = path.join(dir, 'out.onnx');
          results.set(c.name, { r: await runCli(c.args(input, out, dir), { env: c.env }), dir, out });
        }),
      );
    });
    for (const c of USAGE) {
      it(c.name, () => {
        const { r, dir } = results.get(c.name)!;
        expect(r.code, r.stderr).to.equal(2);
        expect(r.stderr).to.match(c.message);
        expect(r.stderr).not.to.match(/\n\s+at /);
        expect(fs.readdirSync(dir)).to.deep.equal(['in.onnx']);
      });
    }
  });

  it('--help and --version exit 0', async () => {
    const [help, version] = await Promise.all([runCli(['--help']), runCli(['--version'])]);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/optimize \[options\] <in>/).and.to.match(/inspect \[options\] <in>/);
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(version.code).to.equal(0);
    expect(version.stdout.trim()).to.equal(pkg.version);
  });

  it('optimize prints a summary on stderr and writes JSON and Markdown reports', async () => {
    const dir = tmp.dir();
    const input = writeModel(dir);
    const out = path.join(dir, 'out.onnx');
    const [json, md] = await Promise.all([
      runCli(['optimize', input, '-o', out, '--report', path.join(dir, 'r.json')]),
      runCli(['optimize', input, '-o', path.join(dir, 'out2.onnx'), '--report', path.join(dir, 'r.md')]),
    ]);
    expect(json.code, json.stderr).to.equal(0);
    expect(json.stdout).to.equal('');
    expect(json.stderr).to.match(/^rmsfuse: .*model.onnx -> .*out.onnx \(target none, format rmsfuse\) in \d+ ms\n  fused: /);
    expect(json.stderr).to.match(/remarks: \d+/).and.to.match(/time: load \d+ ms, validate \d+ ms, passes \d+ ms, save \d+ ms/);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')) as OptimizeReport;
    expect(report).to.include.keys('fused', 'remarks', 'passes', 'timings', 'target', 'format', 'input', 'output', 'externalData');
    expect(report.fused).to.be.an('array');
    expect(report.remarks).to.be.an('array');
    expect(report.target).to.equal('none');
    expect(report.externalData).to.deep.equal([{ location: 'w.bin', bytes: 16, action: 'kept' }]);
    expect(md.code, md.stderr).to.equal(0);
    const text = fs.readFileSync(path.join(dir, 'r.md'), 'utf8');
    expect(text).to.match(/^# rmsfuse report/).and.to.match(/## Fused sites \(\d+\)/).and.to.match(/## Remarks \(\d+\)/);
  });

  it('--format onnx23 refuses a model below opset 23 (exit 1) and accepts one at 23', async () => {
    const low = writeModel(tmp.dir(), 17);
    const high = writeModel(tmp.dir(), 23);
    const [a, b] = await Promise.all([
      runCli(['optimize', low, '-o', low + '.out.onnx', '--format', 'onnx23']),
      runCli(['optimize', high, '-o', high + '.out.onnx', '--format', 'onnx23']),
    ]);
    expect(a.code).to.equal(1);
    expect(a.stderr).to.match(/^error: --format onnx23 writes ONNX RMSNormalization, which needs opset 23, but this model imports opset 17/);
    expect(fs.existsSync(low + '.out.onnx')).to.equal(false);
    expect(b.code, b.stderr).to.equal(0);
  });

  it('--debug shows the stack of a user error; without it there is none', async () => {
    const missing = path.join(tmp.dir(), 'missing.onnx');
    const [plain, debug] = await Promise.all([
      runCli(['optimize', missing, '-o', missing + '.out']),
      runCli(['optimize', missing, '-o', missing + '.out', '--debug']),
    ]);
    expect(plain.code).to.equal(1);
    expect(plain.stderr).to.equal(`error: ${missing}: no such file\n`);
    expect(debug.code).to.equal(1);
    expect(debug.stderr).to.match(/^error: .*no such file\nRmsfuseError: .*\n\s+at /);
  });

  it('inspect: histogram, opsets, IR version, inputs/outputs with shapes, external data; --json', async () => {
    const input = writeModel(tmp.dir());
    const [text, json] = await Promise.all([runCli(['inspect', input]), runCli(['inspect', input, '--json'])]);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.include('ir_version: 8');
    expect(text.stdout).to.include('opsets: ai.onnx 17');
    expect(text.stdout).to.include('X: float32 [batch, 4]');
    expect(text.stdout).to.include('Z: float32 (unknown shape)');
    expect(text.stdout).to.include('external data: 1 tensor(s), 16 B in 1 file(s)');
    expect(text.stdout).to.match(/ops:\n {2}Add {3}2\n {2}Relu {2}1\n$/);
    expect(json.code).to.equal(0);
    const info = JSON.parse(json.stdout);
    expect(info.ops).to.deep.equal({ Add: 2, Relu: 1 });
    expect(info.inputs).to.deep.equal([{ name: 'X', dtype: 'float32', shape: ['batch', 4] }]);
    expect(info.externalData).to.deep.equal({ files: [{ location: 'w.bin', tensors: 1, bytes: 16 }], tensors: 1, bytes: 16 });
  });

  it('inspect of a bad model is exit 1 with error:', async () => {
    const dir = tmp.dir();
    fs.writeFileSync(path.join(dir, 'bad.onnx'), '');
    const r = await runCli(['inspect', path.join(dir, 'bad.onnx')]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/^error: .*is empty/);
  });

  it('`npx rmsfuse` runs the launcher from the checkout', async () => {
    const input = writeModel(tmp.dir());
    const r = await runCli(['rmsfuse', 'inspect', input, '--json'], { command: ['npx'] });
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).irVersion).to.equal(8);
  });

  it('copying data files shows progress on a TTY only', async () => {
    const src = tmp.dir();
    const input = writeModel(src);
    let tty = '';
    const io = { stdout: { write: () => true }, stderr: { isTTY: true, write: (s: string) => ((tty += s), true) } };
    expect(await main(['optimize', input, '-o', path.join(tmp.dir(), 'out.onnx')], io)).to.equal(0);
    // A cli-progress bar: drawn with cursor moves, cleared at the end.
    expect(tty).to.match(/copying w\.bin: 16 B \/ 16 B \(100%\)/);
    const piped = await runCli(['optimize', input, '-o', path.join(tmp.dir(), 'out.onnx')]);
    expect(piped.code, piped.stderr).to.equal(0);
    expect(piped.stderr).not.to.include('copying');
    expect(piped.stderr).to.include('external data copied beside the output: w.bin (16 B)');
  });

  it('internal errors: `internal error:` and exit 70, stack only with --debug', () => {
    let err = '';
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => ((err += s), true) } };
    expect(reportError(new TypeError('boom'), io, false)).to.equal(70);
    expect(err).to.match(/^internal error: boom\n/).and.not.to.match(/\n\s+at /);
    err = '';
    expect(reportError(new TypeError('boom'), io, true)).to.equal(70);
    expect(err).to.match(/^internal error: boom\nTypeError: boom\n\s+at /);
    err = '';
    expect(reportError(new RmsfuseError('bad flag', 2), io, false)).to.equal(2);
    expect(err).to.equal('error: bad flag\n');
  });

  it('the summary lists fused sites by op type and every remark', () => {
    const report = {
      target: 'webgpu',
      format: 'rmsfuse',
      fused: [
        { node: 'l0/norm', op_type: 'RmsNorm', attributes: {}, replaced: [], graph: '' },
        { node: 'l1/norm', op_type: 'PreNorm', attributes: {}, replaced: [], graph: '' },
        { node: 'l2/norm', op_type: 'PreNorm', attributes: {}, replaced: [], graph: '' },
      ],
      remarks: [{ node: 'ReduceMean_7', reason: 'epsilon is not a constant', graph: '' }],
      passes: [],
      timings: { loadMs: 1, validateMs: 1, optimizeMs: 1, saveMs: 1, totalMs: 4 },
      externalData: [],
    } as unknown as OptimizeReport;
    const text = summary(report, 'in.onnx', 'out.onnx');
    expect(text).to.include('fused: 3 site(s): RmsNorm 1, PreNorm 2');
    expect(text).to.include('remarks: 1\n    - ReduceMean_7: epsilon is not a constant');
  });
});
