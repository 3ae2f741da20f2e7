/**
 * Bad models: each is a clear exit-1 error from the real CLI (`error: ...` naming the problem,
 * no stack trace) and OUT is not created. The child processes run in parallel.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GraphProto } from 'onnx-buf';
import { DT, externalTensor, graph, model, modelBytes, node, tinyModel, valueInfo } from '../helpers/model-builder.js';
import { runCli, scratch, type CliResult } from './cli-runner.js';

interface BadCase {
  name: string;
  /** Writes the bad input into `dir` and returns its path. */
  make: (dir: string, outside: string) => string;
  message: RegExp;
}

/** A deterministic byte soup (xorshift). */
function pseudoRandomBytes(n: number, seed = 12345): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function writeModel(dir: string, name: string, m: ReturnType<typeof model>): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, modelBytes(m));
  return file;
}

/** Y = Relu(W) with W external at (location, offset, length); writes an 80-byte weights.bin. */
function externalModel(dir: string, location: string, offset = 0, length = 16): string {
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.alloc(80));
  return writeModel(
    dir,
    'model.onnx',
    model({
      graph: graph({
        nodes: [node('Relu', ['W'], ['Y'])],
        outputs: [valueInfo('Y', DT.FLOAT, [length / 4])],
        initializers: [externalTensor('W', DT.FLOAT, [length / 4], location, offset, length)],
      }),
    }),
  );
}

/** If nodes nested `levels` deep (each level is 3 protobuf message levels). */
function nestedIfModel(levels: number) {
  const leaf = (): GraphProto => graph({ name: 'leaf', nodes: [node('Identity', ['c'], ['leaf_out'])], outputs: [valueInfo('leaf_out', DT.BOOL, [])] });
  let body = leaf();
  for (let i = 0; i < levels; i++) {
    const out = `out_${i}`;
    body = graph({
      name: `level_${i}`,
      nodes: [node('If', ['c'], [out], { attrs: { then_branch: { g: body }, else_branch: { g: leaf() } } })],
      outputs: [valueInfo(out, DT.BOOL, [])],
    });
  }
  return model({ graph: graph({ name: 'main', nodes: body.node, inputs: [valueInfo('c', DT.BOOL, [])], outputs: body.output }) });
}

const CASES: BadCase[] = [
  { name: 'empty file', make: (d) => (fs.writeFileSync(path.join(d, 'm.onnx'), ''), path.join(d, 'm.onnx')), message: /is empty \(0 bytes\): not an ONNX model/ },
  {
    name: 'random bytes',
    make: (d) => (fs.writeFileSync(path.join(d, 'm.onnx'), pseudoRandomBytes(4096)), path.join(d, 'm.onnx')),
    message: /is not (a valid |a complete )?(an )?ONNX model/,
  },
  {
    name: 'a text file',
    make: (d) => (fs.writeFileSync(path.join(d, 'm.onnx'), 'hello, this is not a model\n'), path.join(d, 'm.onnx')),
    message: /is not (a valid |a complete )?(an )?ONNX model/,
  },
  {
    name: 'truncated model',
    make: (d) => {
      const bytes = modelBytes(nestedIfModel(3));
      fs.writeFileSync(path.join(d, 'm.onnx'), bytes.subarray(0, Math.floor(bytes.length / 2)));
      return path.join(d, 'm.onnx');
    },
    message: /is not a valid ONNX model \(truncated or not protobuf\)/,
  },
  { name: 'external data location ../../x', make: (d) => externalModel(d, '../../x'), message: /tensor 'W': external data location '..\/..\/x' escapes the model's folder/ },
  { name: 'absolute external data location', make: (d) => externalModel(d, '/etc/passwd'), message: /tensor 'W': external data location '\/etc\/passwd' is absolute/ },
  {
    name: 'external data through a symlink pointing outside',
    make: (d, outside) => {
      fs.writeFileSync(path.join(outside, 'secret.bin'), Buffer.alloc(64));
      fs.symlinkSync(path.join(outside, 'secret.bin'), path.join(d, 'link.bin'));
      return externalModel(d, 'link.bin');
    },
    message: /tensor 'W': external data location 'link.bin' points outside the model's folder \(through a symbolic link\)/,
  },
  {
    name: 'external data offset beyond the file end',
    make: (d) => externalModel(d, 'weights.bin', 72, 16),
    message: /tensor 'W': external data 'weights.bin' offset 72 \+ length 16 runs past the end of the file \(80 bytes\)/,
  },
  { name: 'missing external data file', make: (d) => externalModel(d, 'nothere.bin'), message: /external data file 'nothere.bin' does not exist/ },
  {
    name: 'cyclic graph',
    make: (d) =>
      writeModel(
        d,
        'm.onnx',
        model({
          graph: graph({
            nodes: [node('Relu', ['x'], ['a'], { name: 'entry' }), node('Add', ['a', 'c'], ['b'], { name: 'add_b' }), node('Relu', ['b'], ['c'], { name: 'relu_c' })],
            inputs: [valueInfo('x', DT.FLOAT, [1])],
            outputs: [valueInfo('c', DT.FLOAT, [1])],
          }),
        }),
      ),
    message: /graph 'main' has a cycle: add_b -> relu_c -> add_b/,
  },
  {
    name: 'dangling input',
    make: (d) =>
      writeModel(
        d,
        'm.onnx',
        model({ graph: graph({ nodes: [node('Add', ['x', 'ghost'], ['y'], { name: 'add_ghost' })], inputs: [valueInfo('x', DT.FLOAT, [1])], outputs: [valueInfo('y', DT.FLOAT, [1])] }) }),
      ),
    message: /node add_ghost reads 'ghost', which no node, initializer or graph input provides/,
  },
  {
    name: 'duplicate graph output names',
    make: (d) => {
      const m = tinyModel();
      m.graph!.output.push(m.graph!.output[0]!);
      return writeModel(d, 'm.onnx', m);
    },
    message: /graph 'main': output 'y' is listed twice/,
  },
  {
    name: 'two nodes producing the same output',
    make: (d) =>
      writeModel(
        d,
        'm.onnx',
        model({
          graph: graph({
            nodes: [node('Relu', ['x'], ['y'], { name: 'first' }), node('Neg', ['x'], ['y'], { name: 'second' })],
            inputs: [valueInfo('x', DT.FLOAT, [1])],
            outputs: [valueInfo('y', DT.FLOAT, [1])],
          }),
        }),
      ),
    message: /tensor 'y' is produced twice, by first and by second/,
  },
  { name: 'missing input path', make: (d) => path.join(d, 'does-not-exist.onnx'), message: /does-not-exist.onnx: no such file/ },
  { name: 'input is a folder', make: (d) => d, message: /is a directory, not an ONNX model/ },
  { name: 'nested too deep', make: (d) => writeModel(d, 'm.onnx', nestedIfModel(40)), message: /is nested too deeply/ },
];

describe('foundation: bad input models (CLI, exit 1, OUT not created)', function () {
  this.timeout(120_000);
  const tmp = scratch();
  const results = new Map<string, { r: CliResult; out: string; outside: string }>();

  before(async () => {
    await Promise.all(
      CASES.map(async (c) => {
        const dir = tmp.dir();
        const outside = tmp.dir('rmsfuse-outside-');
        const input = c.make(dir, outside);
        const outDir = tmp.dir();
        const out = path.join(outDir, 'out.onnx');
        const r = await runCli(['optimize', input, '-o', out]);
        results.set(c.name, { r, out, outside });
      }),
    );
  });
  after(() => tmp.cleanup());

  for (const c of CASES) {
    it(c.name, () => {
      const { r, out } = results.get(c.name)!;
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr).to.match(/^error: /);
      expect(r.stderr).to.match(c.message);
      expect(r.stderr, 'no stack trace').not.to.match(/\n\s+at /);
      expect(fs.existsSync(out), 'OUT must not be created').to.equal(false);
      expect(fs.readdirSync(path.dirname(out)), 'no temp files left').to.deep.equal([]);
    });
  }

  it('the symlink case did not touch the file outside', () => {
    const { outside } = results.get('external data through a symlink pointing outside')!;
    expect(fs.readFileSync(path.join(outside, 'secret.bin')).equals(Buffer.alloc(64))).to.equal(true);
  });

  it('a model nested 20 levels deep is fine (below the limit)', async () => {
    const dir = tmp.dir();
    const input = writeModel(dir, 'm.onnx', nestedIfModel(20));
    const r = await runCli(['optimize', input, '-o', path.join(dir, 'out.onnx')]);
    expect(r.code, r.stderr).to.equal(0);
  });
});
