/**
 * Declarative patterns over ONNX graphs, read from a value backwards to its producers.
 *
 * A pattern is plain data built with `p`:
 *
 *   p.Mul(p.x, p.Reciprocal(p.Sqrt(p.Add(p.ReduceMean(p.Pow(p.x, p.const(2))), p.constAny('eps')))))
 *
 * - `p.var(name)` binds any value; the same name appearing twice must bind the same tensor.
 * - `p.const(v)` matches a constant whose elements all equal v (exactly, or within `rel`);
 *   `p.constAny(name)` matches any small constant and captures its values.
 * - Add and Mul are commutative: both operand orders are tried.
 * - `p.oneOf(a, b, ...)` tries alternatives in order; `p.opt(ops, inner)` matches zero or one
 *   node of those op types in front of inner (`p.optCast` for Casts).
 * - `.as(name)` captures the matched value (and node, for op patterns).
 * - No-op Casts (to the dtype the value already has) and Identity are looked through
 *   everywhere; they become part of the site.
 * The engine (match.ts) yields every way a pattern matches, so a rule's check can reject one
 * candidate and take the next (e.g. x inside or outside an fp16 -> fp32 Cast).
 */

/** What a value pattern is about, for failure messages ("epsilon is not a constant"). */
export type What = string;

abstract class PatternBase {
  /** Capture name for the matched value (and node). */
  capture?: string;
  abstract readonly kind: string;
  /** A copy of this pattern that captures what it matches under `name`. */
  as(name: string): this {
    const copy = Object.create(Object.getPrototypeOf(this)) as this;
    Object.assign(copy, this, { capture: name });
    return copy;
  }
}

/** A node of one of `ops` producing the value, with its leading inputs matching `inputs`. */
export class OpPattern extends PatternBase {
  readonly kind = 'op';
  constructor(
    readonly ops: readonly string[],
    readonly inputs: readonly Pattern[],
    readonly opts: {
      commutative?: boolean;
      /** Node domain ('' = default ONNX domain). */
      domain?: string;
      /** Which output of the node the value must be (default 0). */
      output?: number;
    } = {},
  ) {
    super();
  }
  get domain(): string { return this.opts.domain ?? ''; }
}

/** Any value; binds `name`. */
export class VarPattern extends PatternBase {
  readonly kind = 'var';
  constructor(readonly name: string, readonly what: What = name) {
    super();
  }
}

/** A constant whose elements all equal `value` within relative tolerance `rel`. */
export class ConstPattern extends PatternBase {
  readonly kind = 'const';
  constructor(readonly value: number, readonly what: What, readonly rel: number) {
    super();
  }
}

/** Any small constant; binds its value name and elements under `name`. */
export class ConstAnyPattern extends PatternBase {
  readonly kind = 'constAny';
  constructor(readonly name: string, readonly what: What) {
    super();
  }
}

/** The first alternative that matches (all of them, lazily, on backtracking). */
export class OneOfPattern extends PatternBase {
  readonly kind = 'oneOf';
  constructor(readonly alts: readonly Pattern[]) {
    super();
  }
}

/** Zero or one node of `ops` (first input = inner) in front of `inner`; the node is captured as `tag`. */
export class OptPattern extends PatternBase {
  readonly kind = 'opt';
  constructor(readonly ops: readonly string[], readonly inner: Pattern, readonly tag: string) {
    super();
  }
}

export type Pattern = OpPattern | VarPattern | ConstPattern | ConstAnyPattern | OneOfPattern | OptPattern;

type Operand = Pattern;
const op = (ops: string | readonly string[], inputs: Operand[], opts: OpPattern['opts'] = {}): OpPattern =>
  new OpPattern(typeof ops === 'string' ? [ops] : ops, inputs, opts);

/** The pattern builder. */
export const p = {
  op,
  var: (name: string, what?: What) => new VarPattern(name, what),
  /** A constant equal to `value`; `rel` is the relative tolerance (default 1e-6, fp16 constants of 2 or 1 are exact). */
  /**
   * Exact by default: 2, -0.5, 1, 127 and -128 are exact in every float type, and a near miss
   * changes the math (Pow(x, 2.000002) is NaN for negative x). Pass `rel` for constants that
   * are rounded to their dtype (1/127).
   */
  const: (value: number, what: What = `constant ${value}`, rel = 0) => new ConstPattern(value, what, rel),
  constAny: (name: string, what: What = name) => new ConstAnyPattern(name, what),
  oneOf: (...alts: Pattern[]) => new OneOfPattern(alts),
  opt: (ops: string | string[], inner: Pattern, tag: string) => new OptPattern(typeof ops === 'string' ? [ops] : ops, inner, tag),
  /** Zero or one Cast in front of inner (no-op Casts are looked through anyway); the Cast is captured as `tag`. */
  optCast: (inner: Pattern, tag: string) => new OptPattern(['Cast'], inner, tag),

  Add: (a: Operand, b: Operand) => op('Add', [a, b], { commutative: true }),
  Mul: (a: Operand, b: Operand) => op('Mul', [a, b], { commutative: true }),
  Sub: (a: Operand, b: Operand) => op('Sub', [a, b]),
  Div: (a: Operand, b: Operand) => op('Div', [a, b]),
  Pow: (a: Operand, b: Operand) => op('Pow', [a, b]),
  Sqrt: (a: Operand) => op('Sqrt', [a]),
  Reciprocal: (a: Operand) => op('Reciprocal', [a]),
  Abs: (a: Operand) => op('Abs', [a]),
  Round: (a: Operand) => op('Round', [a]),
  Cast: (a: Operand) => op('Cast', [a]),
  Clip: (a: Operand, lo: Operand, hi: Operand) => op('Clip', [a, lo, hi]),
  /** Axes (attribute or constant second input) and keepdims are for the rule's check. */
  ReduceMean: (a: Operand) => op('ReduceMean', [a]),
  ReduceSum: (a: Operand) => op('ReduceSum', [a]),
  ReduceSumSquare: (a: Operand) => op('ReduceSumSquare', [a]),
  ReduceMax: (a: Operand) => op('ReduceMax', [a]),
  /** scale is the second input; the zero point (third) is for the rule's check. */
  QuantizeLinear: (a: Operand, scale: Operand) => op('QuantizeLinear', [a, scale]),
  /** A fused node of the rmsfuse domain; `output` picks which of its outputs the value is. */
  Fused: (ops: string[], inputs: Operand[] = [], output = 0) => op(ops, inputs, { domain: 'rmsfuse', output }),
} as const;

/** Op types a pattern's root node may have (cheap pre-filter); undefined = any (a var at the root). */
export function rootOps(pat: Pattern): Set<string> | undefined {
  switch (pat.kind) {
    case 'op': return new Set(pat.ops);
    case 'oneOf': {
      const all = new Set<string>();
      for (const a of pat.alts) {
        const r = rootOps(a);
        if (!r) return undefined;
        for (const o of r) all.add(o);
      }
      return all;
    }
    case 'opt': {
      const inner = rootOps(pat.inner);
      return inner && new Set([...inner, ...pat.ops]);
    }
    default: return undefined;
  }
}
