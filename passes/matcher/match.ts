/**
 * The matching engine: walks a pattern from a root value back through producers and yields
 * every consistent way it matches (backtracking over alternatives, commutative operand orders
 * and optional nodes). A failed branch reports why to a Tracer, which keeps the best partial
 * match (the one that got furthest) for remarks and debugging.
 */
import type { Graph, Node } from '../../compiler/ir/graph.js';
import type { Pattern } from './pattern.js';

/** A successful match: captured values, nodes and constants, and the nodes it covers. */
export interface Match {
  graph: Graph;
  root: Node;
  /** Captured value names (vars, constants, `.as()` captures). */
  values: Readonly<Record<string, string>>;
  /** Captured nodes (`.as()` on op patterns, and opt tags). */
  nodes: Readonly<Record<string, Node>>;
  /** Elements of captured constants. */
  consts: Readonly<Record<string, number[]>>;
  /** Every op node matched, root first: the nodes a rewrite replaces. */
  site: readonly Node[];
  /** Constant producers (Constant nodes, Casts of constants) read by the site; removed when dead. */
  constNodes: readonly Node[];
}

export interface Failure {
  ok: false;
  reason: string;
  /** Label of the offending node or value. */
  at?: string;
  /**
   * The candidate site must stay unfused as a whole: no smaller alternative at this root may
   * fuse instead (e.g. gemma + rstd: fusing the norm without its gamma would hide the reason).
   */
  final?: boolean;
  /** No remark: the candidate is not worth reporting (e.g. a fused node from an earlier run). */
  quiet?: boolean;
  /**
   * The site is fine but not allowed as a whole (validator): a smaller part may still fuse, and
   * then this reason is reported at the root that stayed outside.
   */
  partial?: boolean;
}
export type MatchResult<T> = { ok: true; value: T } | Failure;

export function fail(reason: string, at?: Node | string, opts: { final?: boolean; quiet?: boolean; partial?: boolean } = {}): Failure {
  const label = at === undefined ? undefined : typeof at === 'string' ? at : at.label;
  return {
    ok: false,
    reason,
    ...(label !== undefined ? { at: label } : {}),
    ...(opts.final ? { final: true } : {}),
    ...(opts.quiet ? { quiet: true } : {}),
    ...(opts.partial ? { partial: true } : {}),
  };
}
export function ok<T>(value: T): MatchResult<T> {
  return { ok: true, value };
}

/** How far a failed attempt got. */
export interface PartialMatch {
  reason: string;
  at?: string;
  /** Nodes matched before the failure. */
  site: Node[];
  /** Larger is further: matched nodes and bindings; check() failures rank above all matcher failures. */
  progress: number;
  final?: boolean;
}

/** Collects failures of one attempt and keeps the best partial match. */
export class Tracer {
  best?: PartialMatch;
  note(p: PartialMatch): void {
    if (!this.best || p.progress > this.best.progress) this.best = p;
  }
}

interface State {
  values: Record<string, string>;
  nodes: Record<string, Node>;
  consts: Record<string, number[]>;
  site: Node[];
  constNodes: Node[];
}

interface Cx {
  graph: Graph;
  tracer: Tracer;
}

const progressOf = (s: State): number => s.site.length * 4 + Object.keys(s.values).length + Object.keys(s.consts).length;

function failAt(cx: Cx, s: State, reason: string, at?: Node | string): void {
  const label = at === undefined ? undefined : typeof at === 'string' ? at : at.label;
  cx.tracer.note({ reason, ...(label !== undefined ? { at: label } : {}), site: s.site, progress: progressOf(s) });
}

const isDefaultDomain = (n: Node): boolean => n.domain === '' || n.domain === 'ai.onnx';

/** Identity, or a Cast to the dtype its input already has: no effect on the math. */
export function isNoOp(g: Graph, n: Node): boolean {
  if (!isDefaultDomain(n)) return false;
  if (n.opType === 'Identity') return true;
  if (n.opType !== 'Cast') return false;
  const from = g.type(n.inputs[0] ?? '')?.dtype;
  return from !== undefined && from === n.attrInt('to');
}

function withNodes(s: State, nodes: Node[]): State {
  const add = nodes.filter((n) => !s.site.includes(n));
  return add.length ? { ...s, site: [...s.site, ...add] } : s;
}

function withConstNodes(s: State, nodes: Node[]): State {
  const add = nodes.filter((n) => !s.constNodes.includes(n));
  return add.length ? { ...s, constNodes: [...s.constNodes, ...add] } : s;
}

/** Binds a value capture; undefined on a conflict (the same name bound to another tensor). */
function bindValue(s: State, name: string | undefined, value: string): State | undefined {
  if (name === undefined) return s;
  const old = s.values[name];
  if (old !== undefined) return old === value ? s : undefined;
  return { ...s, values: { ...s.values, [name]: value } };
}

function bindNode(s: State, name: string | undefined, node: Node): State | undefined {
  if (name === undefined) return s;
  const old = s.nodes[name];
  if (old !== undefined) return old === node ? s : undefined;
  return { ...s, nodes: { ...s.nodes, [name]: node } };
}

function fmt(vals: number[]): string {
  const shown = vals.slice(0, 4).map((v) => String(Number(v.toPrecision(6))));
  return vals.length === 1 ? shown[0]! : `[${shown.join(', ')}${vals.length > 4 ? ', ...' : ''}]`;
}

/** A constant behind a value, looking through Casts and Identity; its producer chain. */
function resolveConstant(g: Graph, value: string): { values: number[]; chain: Node[] } | { error: string; at: Node | string } {
  const chain: Node[] = [];
  let v = value;
  for (let depth = 0; depth < 4; depth++) {
    let vals: number[] | undefined;
    try {
      vals = g.constantValues(v);
    } catch (e) {
      return { error: `cannot be read (${(e as Error).message})`, at: v };
    }
    if (vals) {
      const prod = g.lookup(v)?.producer;
      if (prod) chain.push(prod);
      return { values: vals, chain };
    }
    if (g.isConstant(v)) return { error: 'is a constant too large to inspect', at: v };
    const prod = g.producer(v);
    if (!prod || !isDefaultDomain(prod) || (prod.opType !== 'Cast' && prod.opType !== 'Identity')) {
      return { error: 'is not a constant', at: prod ?? v };
    }
    chain.push(prod);
    v = prod.inputs[0] ?? '';
  }
  return { error: 'is not a constant', at: value };
}

function* matchSeq(pats: readonly Pattern[], values: string[], s: State, cx: Cx): Generator<State> {
  if (pats.length === 0) {
    yield s;
    return;
  }
  for (const s1 of matchValue(pats[0]!, values[0]!, s, cx)) yield* matchSeq(pats.slice(1), values.slice(1), s1, cx);
}

function* matchValue(pat: Pattern, value: string, s0: State, cx: Cx): Generator<State> {
  const g = cx.graph;
  const s = bindValue(s0, pat.capture, value);
  if (!s) {
    failAt(cx, s0, `'${pat.capture}' would bind two different tensors (${s0.values[pat.capture!]} and ${value})`, value);
    return;
  }
  switch (pat.kind) {
    case 'var': {
      const s1 = bindValue(s, pat.name, value);
      if (!s1) {
        failAt(cx, s, `${pat.what} must be the same tensor in both places (${s.values[pat.name]} vs ${value})`, value);
        return;
      }
      yield s1;
      return;
    }
    case 'const':
    case 'constAny': {
      const c = resolveConstant(g, value);
      if ('error' in c) {
        failAt(cx, s, `${pat.what} ${c.error}`, c.at);
        return;
      }
      if (pat.kind === 'const') {
        const tol = pat.rel * Math.abs(pat.value) || 1e-12;
        if (c.values.length === 0 || c.values.some((v) => !(Math.abs(v - pat.value) <= tol))) {
          failAt(cx, s, `${pat.what} is ${fmt(c.values)}, not ${pat.value}`, c.chain[0] ?? value);
          return;
        }
      }
      let s1: State | undefined = withConstNodes(s, c.chain);
      if (pat.kind === 'constAny') {
        s1 = bindValue(s1, pat.name, value);
        if (!s1) {
          failAt(cx, s, `${pat.what} must be the same constant in both places`, value);
          return;
        }
        s1 = { ...s1, consts: { ...s1.consts, [pat.name]: c.values } };
      } else if (pat.capture) {
        s1 = { ...s1, consts: { ...s1.consts, [pat.capture]: c.values } };
      }
      yield s1;
      return;
    }
    case 'oneOf':
      for (const alt of pat.alts) yield* matchValue(alt, value, s, cx);
      return;
    case 'opt': {
      // The optional node may sit behind no-op Casts too (unless it is such a Cast itself).
      const skipped: Node[] = [];
      let prod = g.producer(value);
      while (prod && !pat.ops.includes(prod.opType) && isNoOp(g, prod) && skipped.length < 4) {
        skipped.push(prod);
        prod = g.producer(prod.inputs[0] ?? '');
      }
      if (prod && isDefaultDomain(prod) && pat.ops.includes(prod.opType) && prod.inputs[0]) {
        const s1 = bindNode(withNodes(s, [...skipped, prod]), pat.tag, prod);
        if (s1) yield* matchValue(pat.inner, prod.inputs[0], s1, cx);
      }
      yield* matchValue(pat.inner, value, s, cx);
      return;
    }
    case 'op': {
      // Look through no-op Casts and Identity unless the pattern asks for that op itself.
      const skipped: Node[] = [];
      let v = value;
      let prod = g.producer(v);
      while (prod && !pat.ops.includes(prod.opType) && isNoOp(g, prod) && skipped.length < 4) {
        skipped.push(prod);
        v = prod.inputs[0] ?? '';
        prod = g.producer(v);
      }
      const want = pat.ops.join('|');
      if (!prod) {
        const v0 = g.lookup(v);
        const what = v0?.isGraphInput ? 'a graph input' : v0?.initializer || g.isConstant(v) ? 'a constant' : 'produced outside this graph';
        failAt(cx, withNodes(s, skipped), `expected ${want}, but '${v}' is ${what}`, v);
        return;
      }
      const domainOk = pat.domain === '' ? isDefaultDomain(prod) : prod.domain === pat.domain;
      if (!domainOk || !pat.ops.includes(prod.opType)) {
        failAt(cx, withNodes(s, skipped), `expected ${want}, found ${prod.domain ? `${prod.domain}.` : ''}${prod.opType}`, prod);
        return;
      }
      if (prod.outputs[pat.opts.output ?? 0] !== v) {
        failAt(cx, withNodes(s, skipped), `'${v}' is not output ${pat.opts.output ?? 0} of ${prod.label}`, prod);
        return;
      }
      if (prod.inputs.length < pat.inputs.length || prod.inputs.slice(0, pat.inputs.length).some((i) => i === '')) {
        failAt(cx, withNodes(s, skipped), `${prod.label} has fewer inputs than expected`, prod);
        return;
      }
      const s1 = bindNode(withNodes(s, [...skipped, prod]), pat.capture, prod);
      if (!s1) {
        failAt(cx, s, `'${pat.capture}' would bind two different nodes`, prod);
        return;
      }
      const ins = prod.inputs.slice(0, pat.inputs.length);
      yield* matchSeq(pat.inputs, ins, s1, cx);
      if (pat.opts.commutative && ins.length === 2 && ins[0] !== ins[1]) yield* matchSeq(pat.inputs, [ins[1]!, ins[0]!], s1, cx);
      return;
    }
  }
}

/** Every way `pattern` matches with `root` producing the site's output (root.outputs[0]). */
export function* matchAt(graph: Graph, root: Node, pattern: Pattern, tracer: Tracer): Generator<Match> {
  const s0: State = { values: {}, nodes: {}, consts: {}, site: [], constNodes: [] };
  const out = root.outputs[0];
  if (!out) return;
  for (const s of matchValue(pattern, out, s0, { graph, tracer })) {
    if (s.site[0] !== root) continue;
    yield { graph, root, values: s.values, nodes: s.nodes, consts: s.consts, site: s.site, constNodes: s.constNodes };
  }
}

/** A one-line description of a partial match, for debug output and remarks. */
export function describePartial(p: PartialMatch): string {
  const path = p.site.map((n) => n.opType).join(' <- ');
  return `${p.reason}${p.at ? ` (at ${p.at})` : ''}${path ? `; matched ${path}` : ''}`;
}
