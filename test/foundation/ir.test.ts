/** Graph IR: validation on load (each error names the node), ordering and editing. */
import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { SparseTensorProtoSchema } from 'onnx-buf';
import { loadModel, RmsfuseError } from '../../compiler/index.js';
import { newNode } from '../../compiler/ir/graph.js';
import { DT, floatTensor, graph, int64Tensor, model, modelBytes, node, valueInfo, type GraphInit } from '../helpers/model-builder.js';

const x = valueInfo('x', DT.FLOAT, [2, 4]);
const load = (g: GraphInit) => loadModel(modelBytes(model({ graph: graph(g) })));
const fails = (g: GraphInit, message: RegExp) => expect(() => load(g)).to.throw(RmsfuseError, message);

describe('foundation: graph IR validation', () => {
  it('names the nodes on a cycle, in data-flow order', () => {
    fails(
      {
        nodes: [node('Relu', ['x'], ['a'], { name: 'n0' }), node('Add', ['a', 'd'], ['b'], { name: 'n1' }), node('Relu', ['b'], ['c'], { name: 'n2' }), node('Neg', ['c'], ['d'], { name: 'n3' }), node('Relu', ['d'], ['y'], { name: 'downstream' })],
        inputs: [x],
        outputs: [valueInfo('y', DT.FLOAT, [2, 4])],
      },
      /graph 'main' has a cycle: n1 -> n2 -> n3 -> n1$/,
    );
  });

  it('a node reading its own output is a cycle', () => {
    fails({ nodes: [node('Add', ['x', 'y'], ['y'], { name: 'selfish' })], inputs: [x], outputs: [valueInfo('y', DT.FLOAT, [2, 4])] }, /has a cycle: node selfish reads its own output 'y'/);
  });

  it('an input that nothing produces names the node and the tensor', () => {
    fails({ nodes: [node('Add', ['x', 'nowhere'], ['y'], { name: 'adder' })], inputs: [x], outputs: [valueInfo('y', DT.FLOAT, [2, 4])] }, /node adder reads 'nowhere', which no node/);
  });

  it('a graph output that nothing produces', () => {
    fails({ nodes: [node('Relu', ['x'], ['y'])], inputs: [x], outputs: [valueInfo('z', DT.FLOAT, [2, 4])] }, /output 'z' is not produced/);
  });

  it('duplicate producers, a node listing an output twice, producing an input or an initializer', () => {
    fails({ nodes: [node('Relu', ['x'], ['y'], { name: 'p1' }), node('Neg', ['x'], ['y'], { name: 'p2' })], inputs: [x], outputs: [] }, /tensor 'y' is produced twice, by p1 and by p2/);
    fails({ nodes: [node('Split', ['x'], ['y', 'y'], { name: 'twice' })], inputs: [x] }, /node twice lists output 'y' twice/);
    fails({ nodes: [node('Relu', ['x'], ['x'], { name: 'overwriter' })], inputs: [x] }, /tensor 'x' is a graph input and also produced by node overwriter/);
    fails({ nodes: [node('Relu', ['x'], ['w'], { name: 'shadow' })], inputs: [x], initializers: [floatTensor('w', [1], [1])] }, /tensor 'w' is an initializer and also produced by node shadow/);
  });

  it('duplicate graph inputs, outputs and initializers', () => {
    fails({ nodes: [], inputs: [x, x] }, /input 'x' is listed twice/);
    fails({ nodes: [node('Relu', ['x'], ['y'])], inputs: [x], outputs: [valueInfo('y', DT.FLOAT, []), valueInfo('y', DT.FLOAT, [])] }, /output 'y' is listed twice/);
    fails({ nodes: [], initializers: [floatTensor('w', [1], [1]), floatTensor('w', [1], [2])] }, /initializer 'w' is defined twice/);
  });

  it('errors inside a subgraph say where the subgraph is', () => {
    const body = graph({ name: 'then', nodes: [node('Add', ['x', 'lost'], ['t'], { name: 'inner' })], outputs: [valueInfo('t', DT.FLOAT, [2, 4])] });
    const els = graph({ name: 'else', nodes: [node('Relu', ['x'], ['e'])], outputs: [valueInfo('e', DT.FLOAT, [2, 4])] });
    fails(
      {
        nodes: [node('If', ['c'], ['y'], { name: 'branch', attrs: { then_branch: { g: body }, else_branch: { g: els } } })],
        inputs: [x, valueInfo('c', DT.BOOL, [])],
        outputs: [valueInfo('y', DT.FLOAT, [2, 4])],
      },
      /subgraph 'then_branch' of node branch \(graph 'main'\): node inner reads 'lost'/,
    );
  });

  it('accepts outer-scope reads from subgraphs, and orders the producer before the If', () => {
    const body = graph({ name: 'then', nodes: [node('Add', ['x', 'late'], ['t'])], outputs: [valueInfo('t', DT.FLOAT, [2, 4])] });
    const els = graph({ name: 'else', nodes: [node('Relu', ['x'], ['e'])], outputs: [valueInfo('e', DT.FLOAT, [2, 4])] });
    const m = load({
      nodes: [
        node('If', ['c'], ['y'], { name: 'branch', attrs: { then_branch: { g: body }, else_branch: { g: els } } }),
        node('Neg', ['x'], ['late'], { name: 'producer' }),
      ],
      inputs: [x, valueInfo('c', DT.BOOL, [])],
      outputs: [valueInfo('y', DT.FLOAT, [2, 4])],
    });
    expect(m.graph.nodes.map((n) => n.name)).to.deep.equal(['producer', 'branch']);
    expect(m.graph.consumers('late').map((n) => n.name)).to.deep.equal(['branch']);
    expect(m.graph.nodes[1]!.subgraphs[0]!.lookup('late')?.producer?.name).to.equal('producer');
  });

  it('sorts out-of-order nodes stably (valid order kept where possible)', () => {
    const m = load({
      nodes: [node('Relu', ['a'], ['b'], { name: 'second' }), node('Neg', ['x'], ['a'], { name: 'first' }), node('Abs', ['x'], ['c'], { name: 'independent' })],
      inputs: [x],
      outputs: [valueInfo('b', DT.FLOAT, [2, 4]), valueInfo('c', DT.FLOAT, [2, 4])],
    });
    expect(m.graph.nodes.map((n) => n.name)).to.deep.equal(['first', 'second', 'independent']);
    expect(m.proto.graph!.node.map((n) => n.name)).to.deep.equal(['first', 'second', 'independent']);
  });

  it('a sparse initializer defines its name', () => {
    const g = graph({ nodes: [node('Identity', ['sp'], ['y'])], outputs: [valueInfo('y', DT.FLOAT, [4])] });
    g.sparseInitializer = [create(SparseTensorProtoSchema, { values: floatTensor('sp', [1], [3]), indices: int64Tensor('sp_i', [1], [2n]), dims: [4n] })];
    const m = loadModel(modelBytes(model({ graph: g })));
    expect(m.graph.type('sp')).to.deep.equal({ dtype: DT.FLOAT, shape: [4] });
  });

  it('validate: false skips the graph checks (for tools that repair models)', () => {
    const bytes = modelBytes(model({ graph: graph({ nodes: [node('Add', ['x', 'nowhere'], ['y'])], inputs: [x] }) }));
    expect(() => loadModel(bytes, { validate: false })).not.to.throw();
  });
});

describe('foundation: graph IR editing', () => {
  const chain = () =>
    load({
      nodes: [node('Mul', ['x', 'x'], ['sq'], { name: 'square' }), node('ReduceMean', ['sq'], ['ms'], { name: 'mean', attrs: { axes: { ints: [-1] } } }), node('Add', ['ms', 'eps'], ['y'], { name: 'add_eps' }), node('Relu', ['x'], ['unused'], { name: 'dead' })],
      inputs: [x],
      outputs: [valueInfo('y', DT.FLOAT, [2, 1])],
      initializers: [floatTensor('eps', [], [1e-6])],
    });

  it('infers types, replaces a set of nodes, keeps inferred types across the edit', () => {
    const m = chain();
    m.inferTypes();
    expect(m.graph.type('sq')).to.deep.equal({ dtype: DT.FLOAT, shape: [2, 4] });
    expect(m.graph.type('ms')).to.deep.equal({ dtype: DT.FLOAT, shape: [2, 1] });
    const g = m.graph;
    const [fused] = g.replace([g.producer('sq')!, g.producer('ms')!], [newNode({ name: 'fused_ms', opType: 'MeanSquare', domain: 'test', input: ['x'], output: ['ms'] })]);
    expect(fused!.name).to.equal('fused_ms');
    expect(g.nodes.map((n) => n.name)).to.deep.equal(['fused_ms', 'add_eps', 'dead']);
    expect(g.producer('ms')!.name).to.equal('fused_ms');
    expect(g.consumers('x').map((n) => n.name).sort()).to.deep.equal(['dead', 'fused_ms']);
    expect(g.type('ms')).to.deep.equal({ dtype: DT.FLOAT, shape: [2, 1] });
    expect(g.values.has('sq')).to.equal(false);
  });

  it('a declared shape stays unless the op contradicts it (other rank or size); symbolic dims are no contradiction', () => {
    const m = load({
      nodes: [node('Add', ['x', 'b'], ['wide'], { name: 'broadcast' }), node('Relu', ['x'], ['named'], { name: 'relu' })],
      inputs: [x],
      // Stale: Add of [2, 4] and [2, 1, 4] is [2, 2, 4]. Symbolic: 'batch' may well be 2.
      outputs: [valueInfo('wide', DT.FLOAT, [2, 4]), valueInfo('named', DT.FLOAT, ['batch', 4])],
      initializers: [floatTensor('b', [2, 1, 4], new Array(8).fill(0.5))],
    });
    m.inferTypes();
    expect(m.graph.type('wide')).to.deep.equal({ dtype: DT.FLOAT, shape: [2, 2, 4] });
    expect(m.graph.type('named')).to.deep.equal({ dtype: DT.FLOAT, shape: ['batch', 4] });
  });

  it('removes dead nodes, never graph outputs', () => {
    const m = chain();
    expect(m.graph.removeDeadNodes()).to.equal(1);
    expect(m.graph.nodes.map((n) => n.name)).to.deep.equal(['square', 'mean', 'add_eps']);
  });

  it('constants: initializer and Constant node values; fresh names are unique', () => {
    const m = load({
      nodes: [node('Constant', [], ['two'], { attrs: { value_float: { f: 2 } } }), node('Pow', ['x', 'two'], ['y'])],
      inputs: [x],
      outputs: [valueInfo('y', DT.FLOAT, [2, 4])],
    });
    expect(m.graph.constantValues('two')).to.deep.equal([2]);
    expect(m.graph.isConstant('x')).to.equal(false);
    expect(m.graph.freshName('y')).to.equal('y_1');
    expect(m.graph.freshName('y')).to.equal('y_2');
  });
});

describe('foundation: incremental graph edits agree with a full re-index', () => {
  /** A random DAG: each node reads one or two earlier values (or the input / a weight). */
  function randomGraph(seed: number, size: number) {
    let state = seed;
    const rand = (n: number) => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state % n;
    };
    const names = ['x', 'w'];
    const nodes = [];
    for (let i = 0; i < size; i++) {
      const a = names[rand(names.length)]!;
      const b = names[rand(names.length)]!;
      const op = rand(3) === 0 ? 'Relu' : 'Add';
      nodes.push(node(op, op === 'Relu' ? [a] : [a, b], [`v${i}`], { name: `n${i}` }));
      names.push(`v${i}`);
    }
    const outputs = [valueInfo(`v${size - 1}`, DT.FLOAT, [2, 4]), valueInfo(`v${size >> 1}`, DT.FLOAT, [2, 4])];
    return { m: load({ nodes, inputs: [x], outputs, initializers: [floatTensor('w', [2, 4], [0, 1, 2, 3, 4, 5, 6, 7])] }), rand };
  }

  for (const seed of [1, 2, 3, 4, 5]) {
    it(`random replaces, removals and dead-node sweeps (seed ${seed})`, () => {
      const { m, rand } = randomGraph(seed, 60);
      const g = m.graph;
      m.inferTypes();
      for (let step = 0; step < 25; step++) {
        const candidates = g.nodes.filter((n) => n.is('Add') || n.is('Relu'));
        const n = candidates[rand(candidates.length)];
        if (!n) break;
        const input = n.inputs[0]!;
        const p = g.producer(input);
        const kind = rand(4);
        if (kind === 0 && p && g.consumers(input).length === 1 && !g.isGraphOutput(input)) {
          // Fuse producer and node into one node that keeps the node's output name (and type).
          const reads = [...new Set([...p.inputs, ...n.inputs.filter((i) => i !== input)])];
          const newInit = floatTensor(`fused_w${step}`, [1], [step]);
          g.proto.initializer.push(newInit);
          const [f] = g.replace([p, n], [newNode({ name: `fused${step}`, opType: 'Fused', domain: 'test', input: [...reads, newInit.name], output: n.outputs.slice() })]);
          expect(g.constantTensor(newInit.name)?.tensor).to.equal(newInit);
          expect(g.producer(n.outputs[0]!)).to.equal(f);
        } else if (kind === 1) {
          // Insert a node after n, reading n's output (order stays valid).
          g.replace([n], [n.proto, newNode({ name: `extra${step}`, opType: 'Neg', input: [n.outputs[0]!], output: [`extra_out${step}`] })]);
        } else if (kind === 2) {
          g.removeDeadNodes();
        } else {
          // A replacement placed before what it reads forces a re-sort.
          const first = g.nodes[0]!;
          if (first !== n && !g.isGraphOutput(n.outputs[0]!)) {
            g.replace([first, n], [n.proto, first.proto]);
          }
        }
        g.checkIndex();
        expect(g.nodes.every((node, i) => node.inputs.every((name) => !g.producer(name) || g.producer(name)!.position < i))).to.equal(true);
      }
      g.removeDeadNodes();
      g.checkIndex();
      g.removeInitializers(['w']);
      g.checkIndex();
    });
  }

  it('types survive an incremental replace', () => {
    const { m } = randomGraph(9, 20);
    m.inferTypes();
    const g = m.graph;
    const last = g.producer('v19')!;
    g.replace([last], [newNode({ name: 'again', opType: last.opType, input: last.inputs.slice(), output: ['v19'] })]);
    expect(g.type('v19')).to.deep.equal({ dtype: DT.FLOAT, shape: [2, 4] });
  });

  it('2000 single-node replaces on a 4000-node graph re-index nothing in full (under 5 s even on a busy machine)', () => {
    const { m } = randomGraph(7, 4000);
    const g = m.graph;
    const t0 = performance.now();
    for (let i = 0; i < 2000; i++) {
      const n = g.nodes[(i * 7919) % g.nodes.length]!;
      g.replace([n], [newNode({ name: `r${i}`, opType: n.opType, input: n.inputs.slice(), output: n.outputs.slice() })]);
    }
    const ms = performance.now() - t0;
    g.checkIndex();
    expect(ms).to.be.below(5000);
  });
});
