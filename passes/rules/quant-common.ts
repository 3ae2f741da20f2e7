/**
 * What the two quantization rules share: the value the quantizer reads (the fused norm's y,
 * optionally plus a beta, optionally cast up to fp32) and its checks.
 */
import type { Node } from '../../compiler/ir/graph.js';
import type { Dim } from '../../compiler/ir/types.js';
import type { DecomposeIO } from '../../compiler/op/decompose.js';
import type { FloatDType, RmsNormParam } from '../../compiler/op/param.js';
import { fail, p, type Failure, type Match, type Pattern } from '../matcher/index.js';
import { castTo, dtypeText, FLOAT_CODES, floatOf, reshapedConstant, shapeText, weightProblem, type RuleContext } from '../plan.js';
import type { TensorProto } from 'onnx-buf';

/** y of a fused norm made by this stage (output 0 of every unquantized variant). */
const y = p.Fused(['RmsNorm', 'PreNorm', 'PostNorm']).as('norm');
/** v = y or y + beta, each possibly cast up to fp32 before the quantizer. */
export const quantInput: Pattern = p.optCast(p.oneOf(p.Add(p.optCast(y, 'castY'), p.var('beta')).as('betaAdd'), y), 'castV');

export interface QuantSource {
  norm: Node;
  old: RmsNormParam;
  io: DecomposeIO;
  /** The norm's x shape. */
  xShape: readonly Dim[];
  beta?: string;
  betaDType?: FloatDType;
  newInitializers: TensorProto[];
  notes: string[];
}

/** Checks the norm and the value the quantizer reads; `what` starts every reason. */
export function checkQuantSource(m: Match, cx: RuleContext, what: string): QuantSource | Failure {
  const g = m.graph;
  const norm = m.nodes.norm!;
  const fused = cx.fresh(norm);
  if (!fused) return fail(`${norm.label} was fused by an earlier run and is not rewritten`, norm, { quiet: true });
  const { param: old, io } = fused;
  if (old.quantType !== 'none') return fail(`${norm.label} is already quantized`, norm, { quiet: true });
  const xShape = g.type(norm.inputs[0]!)?.shape;
  if (!xShape) return fail(`${what}: the shape of x is unknown`, norm);

  // Casts may only widen to fp32 (exact), or be no-ops.
  for (const tag of ['castY', 'castV'] as const) {
    const c = m.nodes[tag];
    if (!c) continue;
    const from = floatOf(g.type(c.inputs[0]!));
    const to = FLOAT_CODES[castTo(c) ?? -1];
    if (!to || (to !== 'float32' && to !== from)) return fail(`${what}: ${c.label} casts to ${dtypeText(castTo(c))}, not float32`, c);
  }

  const newInitializers: TensorProto[] = [];
  const notes: string[] = [];
  let beta = m.values.beta;
  let betaDType: FloatDType | undefined;
  if (beta !== undefined) {
    const bt = g.type(beta);
    betaDType = floatOf(bt);
    if (!betaDType) return fail(`${what}: beta is ${dtypeText(bt?.dtype)}`, m.nodes.betaAdd);
    const k = io.normalizedAxes ?? 1;
    const shape = weightProblem('beta', bt, xShape, k, beta);
    if ('ok' in shape) return fail(`${what}: ${shape.reason}`, m.nodes.betaAdd, { quiet: !g.isConstant(beta) });
    if (shape.drop > 0) {
      const t = reshapedConstant(g, beta, k);
      if (!t) return fail(`${what}: beta ${shapeText(bt?.shape)} is not a constant`, m.nodes.betaAdd);
      newInitializers.push(t);
      notes.push(`beta ${shapeText(bt?.shape)} stored as ${t.name}`);
      beta = t.name;
    }
  }
  return { norm, old, io, xShape, ...(beta !== undefined ? { beta, betaDType } : {}), newInitializers, notes };
}
