/**
 * The CLI's output for people and for tools: no escape sequences off a terminal, colour and
 * progress on one (a pseudo-terminal from util-linux `script`, or an injected TTY stream), NO_COLOR,
 * `--json`, examples in --help, inspect's would-fuse list, and the Markdown report.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { colorEnabled, main, PLAIN, styleFor, summary, type CliIO } from '../../compiler/cli.js';
import type { OptimizeReport } from '../../compiler/index.js';
import { renderMarkdownReport, mermaidText } from '../../compiler/report.js';
import type { FusedSite, SiteNode } from '../../compiler/pass-manager.js';
import { BIN, REPO, runCli, scratch, type CliResult } from '../foundation/cli-runner.js';

const ESC = '\x1b';
/** SGR sequences (colour, bold, dim); cursor moves of the progress bar are not colour. */
const SGR = /\x1b\[[0-9;]*m/;
const LLAMA = path.join(REPO, 'examples', 'mini-llama-fp32.onnx');
const F16 = path.join(REPO, 'examples', 'mini-llama-fp16.onnx');
/** ascend310b fuses the five norms of the fp16 model as RmsNorm and leaves one residual Add: a near miss. */
const NEAR_MISS = /the residual Add \/layers\.0\/Add is not fused into \/layers\.0\/post_attention_layernorm\/RmsNorm: ascend310b runs only Norm/;
const LLAMA_SITES = ['/norm/PostNorm', '/layers.1/post_attention_layernorm/PreNorm', '/layers.1/input_layernorm/PreNorm', '/layers.0/post_attention_layernorm/PreNorm', '/layers.0/input_layernorm/RmsNorm'];

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** `rmsfuse ...args` on a pseudo-terminal (stdout and stderr both arrive on the terminal). */
function runPty(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const cmd = [process.execPath, BIN, ...args].map(quote).join(' ');
  // `script` gives the child a pseudo-terminal; NO_COLOR is cleared unless the case sets it.
  return runCli([], { command: ['script', '-qfec', cmd, '/dev/null'], env: { NO_COLOR: '', ...env } });
}

/** An injected CliIO whose streams say they are terminals. */
function ttyIO(env: Record<string, string | undefined> = {}): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { isTTY: true, write: (s: string) => ((out += s), true) },
    stderr: { isTTY: true, columns: 120, write: (s: string) => ((err += s), true) },
    env,
    out: () => out,
    err: () => err,
  };
}

const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('cli: output for people and tools', function () {
  this.timeout(120_000);
  const tmp = scratch();
  after(() => tmp.cleanup());

  it('off a terminal: no escape sequences and no progress on stdout or stderr', async () => {
    const dir = tmp.dir();
    const [opt, insp] = await Promise.all([
      runCli(['optimize', F16, '-o', path.join(dir, 'o.onnx'), '--target', 'ascend310b', '--report', path.join(dir, 'r.md')]),
      runCli(['inspect', F16, '--target', 'ascend310b']),
    ]);
    for (const r of [opt, insp]) {
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout + r.stderr).not.to.include(ESC);
      expect(r.stderr).not.to.match(/loading|\[=+-*\]/);
    }
    expect(opt.stdout).to.equal('');
    expect(opt.stderr).to.match(/^rmsfuse: .* in \d+ ms\n  fused: 5 site\(s\): RmsNorm 5\n  remarks: 1\n/);
    expect(opt.stderr).to.match(NEAR_MISS);
  });

  (hasScript ? it : it.skip)('on a terminal (script): colour and progress; NO_COLOR=1 keeps the progress, drops the colour', async () => {
    const dir = tmp.dir();
    const args = (name: string) => ['optimize', F16, '-o', path.join(dir, `${name}.onnx`), '--target', 'ascend310b'];
    const [colour, noColour, emptyNoColour, insp] = await Promise.all([
      runPty(args('a')),
      runPty(args('b'), { NO_COLOR: '1' }),
      runPty(args('c'), { NO_COLOR: '' }),
      runPty(['inspect', LLAMA]),
    ]);
    for (const r of [colour, noColour, emptyNoColour, insp]) expect(r.code, r.stdout).to.equal(0);
    expect(colour.stdout).to.match(SGR);
    expect(colour.stdout).to.match(/\d\/4 loading .*mini-llama-fp16\.onnx/).and.to.include('fusing (102 nodes)');
    expect(colour.stdout).to.include('5 site(s)');
    expect(emptyNoColour.stdout).to.match(SGR); // NO_COLOR counts only with a value
    expect(noColour.stdout).not.to.match(SGR);
    expect(noColour.stdout).to.include('loading').and.to.include('fused: 5 site(s): RmsNorm 5');
    expect(insp.stdout).to.match(SGR).and.to.include('5 site(s)');
  });

  it('an injected terminal: colour and steps through main(); NO_COLOR in its environment turns colour off', async () => {
    const dir = tmp.dir();
    const tty = ttyIO();
    expect(await main(['optimize', LLAMA, '-o', path.join(dir, 'a.onnx')], tty)).to.equal(0);
    expect(tty.err()).to.match(SGR);
    for (const step of ['1/4 loading', '2/4 checking the graph', '3/4 fusing (96 nodes)', '4/4 writing']) expect(tty.err()).to.include(step);
    const plain = ttyIO({ NO_COLOR: 'yes' });
    expect(await main(['inspect', LLAMA], plain)).to.equal(0);
    expect(plain.out()).not.to.match(SGR);
    expect(plain.out()).to.include('would fuse (target none): 5 site(s)');
  });

  it('colour decisions: a terminal and NO_COLOR unset or empty; the summary without colour is plain text', () => {
    expect(colorEnabled({ isTTY: true }, {})).to.equal(true);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '' })).to.equal(true);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '0' })).to.equal(false);
    expect(colorEnabled({ isTTY: false }, {})).to.equal(false);
    expect(colorEnabled({}, {})).to.equal(false);
    expect(styleFor({ isTTY: false }, {})).to.equal(PLAIN);
    expect(styleFor({ isTTY: true }, {}).green('x')).to.match(SGR);
    const report = {
      target: 'none',
      format: 'rmsfuse',
      fused: [{ node: 'n', op_type: 'RmsNorm', attributes: {}, replaced: [], graph: '' }],
      remarks: [{ node: 'r', reason: 'why', graph: '' }],
      passes: [],
      timings: { loadMs: 1, validateMs: 1, optimizeMs: 1, saveMs: 1, totalMs: 4 },
      externalData: [],
    } as unknown as OptimizeReport;
    const plain = summary(report, 'in.onnx', 'out.onnx');
    const coloured = summary(report, 'in.onnx', 'out.onnx', undefined, styleFor({ isTTY: true }, {}));
    expect(plain).not.to.include(ESC);
    expect(coloured.replace(/\x1b\[[0-9;]*m/g, '')).to.equal(plain);
  });

  it('--json: the report on stdout and nothing else, equal to the report file; errors stay on stderr', async () => {
    const dir = tmp.dir();
    const file = path.join(dir, 'r.json');
    const missing = path.join(dir, 'missing.onnx');
    const [r, bad] = await Promise.all([
      runCli(['optimize', LLAMA, '-o', path.join(dir, 'o.onnx'), '--report', file, '--json']),
      runCli(['optimize', missing, '-o', path.join(dir, 'x.onnx'), '--json']),
    ]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.equal('');
    const printed = JSON.parse(r.stdout) as OptimizeReport;
    expect(printed).to.deep.equal(JSON.parse(fs.readFileSync(file, 'utf8')));
    expect(r.stdout).to.equal(fs.readFileSync(file, 'utf8'));
    expect(printed.fused.map((f) => f.node)).to.deep.equal(LLAMA_SITES);
    expect(bad.code).to.equal(1);
    expect(bad.stdout).to.equal('');
    expect(bad.stderr).to.equal(`error: ${missing}: no such file\n`);
    // On a terminal too: no progress and no summary with --json.
    const tty = ttyIO();
    expect(await main(['optimize', LLAMA, '-o', path.join(dir, 'p.onnx'), '--json'], tty)).to.equal(0);
    expect(tty.err()).to.equal('');
    expect(JSON.parse(tty.out()).fused).to.have.length(5);
  });

  it('JSON report: before lists the replaced nodes with op types and edges, after the fused node inputs and outputs', async () => {
    const dir = tmp.dir();
    const r = await runCli(['optimize', F16, '-o', path.join(dir, 'o.onnx'), '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as OptimizeReport;
    for (const f of report.fused) {
      expect(f.before!.nodes.map((n) => n.name)).to.deep.equal(f.replaced);
      expect(f.before!.nodes.map((n) => n.op_type)).to.include.members(['Pow', 'ReduceMean', 'Sqrt', 'Div', 'Mul']);
      const produced = new Set(f.before!.nodes.flatMap((n) => n.outputs));
      // The fused node keeps the names of the tensors the site produced, and reads what the site read.
      for (const o of f.after!.outputs.filter(Boolean)) expect(produced.has(o), o).to.equal(true);
      const read = new Set(f.before!.nodes.flatMap((n) => n.inputs));
      for (const i of f.after!.inputs.filter(Boolean)) expect(read.has(i), i).to.equal(true);
    }
    // A grown node (PreNorm: the residual Add joined the norm) records both stages.
    const pre = report.fused.find((f) => f.op_type === 'PreNorm')!;
    expect(pre.before!.nodes.filter((n) => n.op_type === 'Add')).to.have.length(2);
  });

  it('--help of every command shows examples', async () => {
    const runs = await Promise.all([runCli(['--help']), runCli(['optimize', '--help']), runCli(['inspect', '--help']), runCli(['help', 'optimize'])]);
    const [top, opt, insp, helpOpt] = runs;
    for (const r of runs) {
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include('Examples:');
      expect(r.stdout).not.to.include(ESC);
    }
    expect(top.stdout).to.match(/\$ rmsfuse optimize \S+ -o /).and.to.match(/\$ rmsfuse inspect /);
    expect(opt.stdout).to.match(/\$ rmsfuse optimize .*--report report\.md/).and.to.match(/--json/).and.to.include('NO_COLOR');
    expect(insp.stdout).to.match(/\$ rmsfuse inspect model\.onnx --target/);
    expect(helpOpt.stdout).to.equal(opt.stdout);
  });

  it('inspect lists the sites optimize would fuse and the near misses, and writes nothing', async () => {
    const dir = tmp.dir();
    const copy = path.join(dir, 'llama.onnx');
    fs.copyFileSync(LLAMA, copy);
    const before = sha(copy);
    const [text, json, opt, f16, fp32Ascend] = await Promise.all([
      runCli(['inspect', copy]),
      runCli(['inspect', copy, '--json']),
      runCli(['optimize', LLAMA, '-o', path.join(tmp.dir(), 'o.onnx'), '--json']),
      runCli(['inspect', F16, '--target', 'ascend310b', '--json']),
      runCli(['inspect', LLAMA, '--target', 'ascend910b']),
    ]);
    for (const r of [text, json, opt, f16, fp32Ascend]) expect(r.code, r.stderr).to.equal(0);
    expect(text.stdout).to.include('would fuse (target none): 5 site(s): PostNorm 1, PreNorm 3, RmsNorm 1\n');
    for (const site of LLAMA_SITES) expect(text.stdout).to.include(site);
    expect(text.stdout).to.include('would not fuse (near misses): 0\n');
    expect(text.stdout).to.match(/\nops:\n/);

    const info = JSON.parse(json.stdout);
    const report = JSON.parse(opt.stdout) as OptimizeReport;
    // The same sites, names and attributes as optimize.
    expect(info.fusion.fused.map((f: FusedSite) => [f.node, f.op_type, f.attributes])).to.deep.equal(report.fused.map((f) => [f.node, f.op_type, f.attributes]));
    expect(info.ops.ReduceMean).to.equal(5); // the histogram is of the model as it is, not as fused

    const near = JSON.parse(f16.stdout).fusion;
    expect(near.target).to.equal('ascend310b');
    expect(near.fused).to.have.length(5);
    expect(near.remarks).to.have.length(1);
    expect(near.remarks[0].reason).to.match(NEAR_MISS);
    expect(fp32Ascend.stdout).to.include('would fuse (target ascend910b): nothing');
    expect(fp32Ascend.stdout).to.include('would not fuse (near misses): 5');
    expect(fp32Ascend.stdout).to.match(/Norm takes \(x, gamma\) as \(float16, float16\)/);

    expect(sha(copy)).to.equal(before);
    expect(fs.readdirSync(dir)).to.deep.equal(['llama.onnx']);
  });

  it('Markdown report: a mermaid diagram per fused site, the near misses with reasons, emitted kernels by node', async () => {
    const dir = tmp.dir();
    const [near, emitted] = await Promise.all([
      runCli(['optimize', F16, '-o', path.join(dir, 'a.onnx'), '--target', 'ascend310b', '--report', path.join(dir, 'a.md')]),
      runCli(['optimize', LLAMA, '-o', path.join(dir, 'b.onnx'), '--target', 'webgpu', '--emit', path.join(dir, 'k'), '--report', path.join(dir, 'b.md')]),
    ]);
    expect(near.code, near.stderr).to.equal(0);
    expect(emitted.code, emitted.stderr).to.equal(0);
    const a = fs.readFileSync(path.join(dir, 'a.md'), 'utf8');
    expect(a.match(/^```mermaid\nflowchart LR\n/gm)).to.have.length(5);
    expect(a.match(/^```$/gm)).to.have.length(5);
    expect(a).to.include('## Fused sites (5)').and.to.include('## Remarks (1)').and.to.include('- near misses: 1');
    expect(a).to.match(NEAR_MISS);
    expect(a).to.include('subgraph before["before: 12 node(s)"]').and.to.include('subgraph after["after: RmsNorm"]');

    const b = fs.readFileSync(path.join(dir, 'b.md'), 'utf8');
    expect(b.match(/^```mermaid$/gm)).to.have.length(5);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'k', 'manifest.json'), 'utf8')) as { nodes: Record<string, { kernel: string }> };
    const section = b.slice(b.indexOf('## Emitted kernels'));
    expect(section).to.match(/\d+ kernel\(s\) for 5 node\(s\)/);
    for (const [node, { kernel }] of Object.entries(manifest.nodes)) expect(section).to.include(`| \`${node}\` | \`${kernel}\` |`);
  });

  it('Markdown report: names that look like Mermaid or Markdown syntax stay text', () => {
    const names = ['a"b', 'x[0]', 'p/q', '#hash;', '<script>', '`tick`', 'pipe|x', '%% c', 'end', '{b}', '(p)', 'a&amp;b', 'two\nlines', '-->', '```'];
    const nodes: SiteNode[] = names.map((n, i) => ({ name: `/s/${n}`, op_type: 'Mul', inputs: [i ? `t${i - 1} ${names[i - 1]}` : `in ${n}`], outputs: [`t${i} ${n}`] }));
    const site: FusedSite = {
      node: 'fused"[x]/`y`',
      op_type: 'RmsNorm',
      attributes: { epsilon: 1e-6 } as FusedSite['attributes'],
      replaced: nodes.map((n) => n.name),
      graph: '',
      before: { nodes },
      after: { inputs: [`in ${names[0]}`, ''], outputs: [`t${names.length - 1} ${names[names.length - 1]}`] },
    };
    const md = renderMarkdownReport({ target: 'none', format: 'rmsfuse', fused: [site], remarks: [{ node: 'r|<b>', reason: 'why *not* | y', graph: '' }], passes: [] });
    const block = md.match(/```mermaid\n([\s\S]*?)\n```\n/)![1]!;
    expect(md.match(/^```/gm)).to.have.length(2); // no name closes the fence
    for (const line of block.split('\n').slice(1)) {
      // Every line is a subgraph, direction, end, classDef, an edge between generated ids, or a node with one quoted label.
      expect(line, line).to.match(/^ {2}(subgraph (before|after)\["[^"]*"\]|end|classDef \w+ .*)$|^ {4}(direction TB|[a-z]+\d+ --> [a-z]+\d+|[a-z]+\d+(\["[^"]*"\]|\(\["[^"]*"\]\))(:::\w+)?)$/);
      const labels = line.match(/"([^"]*)"/g) ?? [];
      for (const l of labels) expect(l.replace(/<br\/>/g, '')).not.to.match(/[<>`\n]/);
    }
    expect(block).to.include('#60;script#62;').and.to.include('a#34;b').and.to.include('#96;tick#96;');
    expect(mermaidText('a#b"c')).to.equal('a#35;b#34;c');
    // Table cells: Markdown and HTML punctuation escaped, one line.
    expect(md).to.include('| r\\|\\<b\\> | main | why \\*not\\* \\| y |');
    expect(md).to.include('| fused"\\[x\\]/\\`y\\` | RmsNorm | main |');
  });
});
