/** The declarative pattern matcher used by every fusion rule. */
export { p, rootOps, type Pattern, OpPattern, VarPattern, ConstPattern, ConstAnyPattern, OneOfPattern, OptPattern } from './pattern.js';
export { matchAt, fail, ok, isNoOp, describePartial, Tracer, type Match, type MatchResult, type Failure, type PartialMatch } from './match.js';
