/**
 * Writes the regression models of this folder from code, so each stays small and its origin is
 * readable. Run after adding one: `npx tsx test/regressions/make-regressions.ts`. Each model
 * has a sibling .json with what rmsfuse must do with it (see regressions.test.ts); the JSON
 * files are written by hand, this script only writes the .onnx files.
 *
 * Models found by the fuzzers are minimized by hand into a generator here; a model that cannot
 * be made small that way is committed as found.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphBuilder } from '../helpers/graph.js';
import { modelBytes } from '../helpers/ort.js';

const DIR = path.dirname(fileURLToPath(import.meta.url));

type Maker = () => Uint8Array;

/** A RMSNorm site without gamma (Pow, ReduceMean, Add, Sqrt, Div(1, .), Mul) over the last axis of x. */
function normWithoutGamma(g: GraphBuilder, x: string): string {
  const m = g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)])], { axes: [-1], keepdims: 1 });
  const r = g.op('Div', [g.scalar(1), g.op('Sqrt', [g.op('Add', [m, g.scalar(1e-6)])])]);
  return g.op('Mul', [x, r]);
}

export const MAKERS: Record<string, Maker> = {
  /**
   * fuzz (many-nodes + cycle): a cycle through 300 Identity nodes. The error listed every node
   * of the cycle: a 22 kB message. Now it shows the ends of the cycle.
   */
  'cycle-long': () => {
    const g = new GraphBuilder({ opset: 17, name: 'cycle' });
    g.input('x', 'float32', [2, 8]);
    const n = 300;
    for (let i = 0; i < n; i++) g.op('Identity', [`c${(i + n - 1) % n}`], {}, { name: `id_${i}`, outputs: [`c${i}`] });
    g.op('Add', ['x', 'c0'], {}, { name: 'add', outputs: ['y'] });
    g.output('y', 'float32', [2, 8]);
    return g.bytes();
  },
  /**
   * fuzz-api long run (seed 777: llama-fp32 + dims-many + bitflip): a tensor of rank 50000 with
   * raw_data of the wrong length gave a 150 kB error message listing every dim. Shapes in the
   * load checks' messages are now shortened.
   */
  'rank-50000': () => {
    const g = new GraphBuilder({ opset: 17, name: 'rank' });
    g.input('x', 'float32', [2, 8]);
    const w = g.init('one', 'float32', [1], [1]);
    g.initializers[0]!.dims = [...new Array<bigint>(50_000).fill(1n), 2n];
    g.output(g.op('Add', ['x', w], {}, { name: 'add' }), 'float32', [2, 8]);
    return g.bytes();
  },
  /**
   * fuzz-api long run (seed 4242: fp16-hf + value-info + fields): x declared [2, 2^31] and a
   * norm without gamma: the pass allocated its ones gamma (8 GiB) and crashed with a RangeError.
   */
  'ones-gamma-2e31': () => {
    const g = new GraphBuilder({ opset: 17, name: 'huge_h' });
    g.input('x', 'float32', [2, 2 ** 31]);
    g.output(normWithoutGamma(g, 'x'), 'float32', [2, 2 ** 31]);
    return g.bytes();
  },
  /** A Reshape to a negative dim (other than -1) in front of a norm without gamma: the inferred H is -5. */
  'ones-gamma-negative-h': () => {
    const g = new GraphBuilder({ opset: 17, name: 'negative_h' });
    g.input('x', 'float32', [2, 10]);
    const r = g.op('Reshape', ['x', g.init('shape', 'int64', [2], [2, -5])]);
    g.output(normWithoutGamma(g, r), 'float32');
    return g.bytes();
  },
  /**
   * fuzz (nest + drop-node): an error inside a subgraph 30 If levels deep named every enclosing
   * level, a message of about 2 kB. Now it names the innermost two and the outermost.
   */
  'nested-30-dangling': () => {
    let inner = new GraphBuilder({ opset: 17, name: 'level_0' });
    inner.output(inner.op('Identity', ['missing'], {}, { name: 'reads_missing' }), 'float32', [2]);
    for (let i = 1; i <= 30; i++) {
      const outer = new GraphBuilder({ opset: 17, name: `level_${i}` });
      const other = new GraphBuilder({ opset: 17, name: `else_${i}` });
      other.output(other.op('Identity', ['x'], {}, { name: `else_id_${i}` }), 'float32', [2]);
      outer.output(outer.op('If', ['cond'], { then_branch: inner.graph(), else_branch: other.graph() }, { name: `if_${i}` }), 'float32', [2]);
      inner = outer;
    }
    inner.input('x', 'float32', [2]);
    inner.input('cond', 'bool', []);
    return inner.bytes();
  },
  /**
   * fuzz-semantic (seed 31, const-value): Pow(x, 2.000002) was taken for the square (the
   * matcher compared constants within 1e-6). It is NaN for negative x, the fused node is not.
   * Exponents, the 1 of 1/sqrt and of Gemma, and the clip bounds now match exactly.
   */
  'pow-2.000002': () => {
    const g = new GraphBuilder({ opset: 13, name: 'pow' });
    g.input('x', 'float32', [2, 4]);
    const m = g.op('ReduceMean', [g.op('Pow', ['x', g.scalar(2 * (1 + 2 ** -20), 'float32', 'exp')])], { axes: [-1], keepdims: 1 });
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [m, g.scalar(1e-5)])])]);
    g.output(g.op('Mul', [g.op('Mul', ['x', r]), g.init('gamma', 'float32', [4], [1, 2, 3, 4])]), 'float32', [2, 4]);
    return g.bytes();
  },
  /**
   * fuzz-semantic (seed 20261204, rewire, the day ReduceSumSquare was added; ReduceSum(x^2) too): with rows == H the
   * norm's own keepdims=0 sum of squares has gamma's shape [H], and a rewired Gemma Add read it:
   * the fused node took it for gamma and the rewrite removed its producer (an invalid model).
   * Plans whose inputs the site computes are now refused; nothing fuses here.
   */
  'gamma-from-own-sum': () => {
    const g = new GraphBuilder({ opset: 13, name: 'own_sum' });
    g.input('x', 'float32', [4, 4]);
    const sumsq = g.op('ReduceSumSquare', ['x'], { axes: [-1], keepdims: 0 });
    const mean = g.op('Reshape', [g.op('Div', [sumsq, g.scalar(4, 'float32', 'H')]), g.init('shape', 'int64', [2], [0, 1])]);
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [mean, g.scalar(1e-5)])])]);
    g.output(g.op('Mul', [g.op('Mul', ['x', r]), g.op('Add', [g.scalar(1, 'float32', 'one'), sumsq])]), 'float32', [4, 4]);
    return g.bytes();
  },
  /**
   * fuzz-semantic (seed 18, weight-dims): a bias of shape [1, 4, 1] broadcast the residual sum of
   * [1, 4] to [1, 4, 4], while a stale value_info still declared [1, 4]: the norm over axis 1
   * looked like one over the last axis and was fused. Inferred shapes now replace declared ones
   * that contradict them, and the site stays unfused (axis 1 of a rank-3 input).
   */
  'stale-value-info-shape': () => {
    const g = new GraphBuilder({ opset: 13, name: 'stale_shape' });
    g.input('x', 'float32', [1, 4]);
    g.input('r', 'float32', [1, 4]);
    const sum = g.op('Add', [g.op('Add', ['x', g.init('bias', 'float32', [1, 4, 1], [0.25, -0.5, 0.75, -1])]), 'r']);
    const m = g.op('ReduceMean', [g.op('Pow', [sum, g.scalar(2)])], { axes: [1], keepdims: 1 });
    const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [m, g.scalar(1e-5)])])]);
    g.output(sum, 'float32', [1, 4]);
    g.output(g.op('Mul', [g.op('Mul', [sum, rstd]), g.init('gamma', 'float32', [4], [1, 2, 3, 4])]), 'float32', [1, 4]);
    return g.bytes();
  },
  /**
   * fuzz-semantic (seed 18, const-value): a QuantizeLinear scale of 0 makes v / scale infinite;
   * onnxruntime gave -128 where the fused node saturated to 127. A constant scale of 0 (or a
   * non-finite one) now leaves the quantization unfused; the norm itself still fuses.
   */
  'quant-scale-zero': () => {
    const g = new GraphBuilder({ opset: 13, name: 'scale_zero' });
    g.input('x', 'float32', [2, 4]);
    const m = g.op('ReduceMean', [g.op('Pow', ['x', g.scalar(2)])], { axes: [-1], keepdims: 1 });
    const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [m, g.scalar(1e-5)])])]);
    const y = g.op('Mul', [g.op('Mul', ['x', rstd]), g.init('gamma', 'float32', [4], [1, 2, 3, 4])]);
    g.output(g.op('QuantizeLinear', [y, g.scalar(0, 'float32', 'scale'), g.init('zp', 'int8', [], [0])]), 'int8', [2, 4]);
    return g.bytes();
  },
};

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [name, make] of Object.entries(MAKERS)) {
    fs.writeFileSync(path.join(DIR, `${name}.onnx`), make());
    console.log(`wrote test/regressions/${name}.onnx`);
  }
}

export { modelBytes, normWithoutGamma };
