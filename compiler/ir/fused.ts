/**
 * Reading fused nodes (domain rmsfuse) back from a graph: their attributes, parameters and
 * output types. Shared by type inference, format lowering and kernel emission.
 */
import { ATTR, type Node } from './graph.js';
import {
  fromAttributes,
  LAYER_TYPE_OF_OP,
  RMSFUSE_DOMAIN,
  type FusedAttributes,
  type RmsNormParam,
} from '../op/param.js';

export const isFusedNode = (n: Node): boolean => n.domain === RMSFUSE_DOMAIN && n.opType in LAYER_TYPE_OF_OP;

/** The fused node's attributes, or a sentence naming the first missing or mistyped one. */
export function readFusedAttributes(n: Node): FusedAttributes | string {
  const str = (name: string) => {
    const a = n.attribute(name);
    return a && a.type === ATTR.STRING ? new TextDecoder().decode(a.s) : undefined;
  };
  const epsilon = n.attrFloat('epsilon');
  if (epsilon === undefined) return `fused node ${n.label} lacks the FLOAT attribute 'epsilon'`;
  const strings = ['quant_type', 'dynamic_quant', 'precision_mode', 'model_type'] as const;
  const values: Record<string, string> = {};
  for (const name of strings) {
    const v = str(name);
    if (v === undefined) return `fused node ${n.label} lacks the STRING attribute '${name}'`;
    values[name] = v;
  }
  const ints: Record<string, 0 | 1> = {};
  for (const name of ['rstd', 'has_bias'] as const) {
    const v = n.attrInt(name);
    if (v === undefined) return `fused node ${n.label} lacks the INT attribute '${name}'`;
    ints[name] = v ? 1 : 0;
  }
  return {
    epsilon,
    quant_type: values.quant_type as FusedAttributes['quant_type'],
    dynamic_quant: values.dynamic_quant as FusedAttributes['dynamic_quant'],
    precision_mode: values.precision_mode as FusedAttributes['precision_mode'],
    model_type: values.model_type as FusedAttributes['model_type'],
    rstd: ints.rstd!,
    has_bias: ints.has_bias!,
  };
}

/** The RmsNormParam of a fused node, or a sentence saying why it cannot be read. */
export function fusedParam(n: Node): RmsNormParam | string {
  const a = readFusedAttributes(n);
  return typeof a === 'string' ? a : fromAttributes(n.opType, a);
}
