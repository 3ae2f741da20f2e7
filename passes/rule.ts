/** A fusion rule: a declarative pattern, a check that turns a match into a plan, and a rewrite. */
import type { Node } from '../compiler/ir/graph.js';
import type { FusionBuilder } from './fuse.js';
import type { Match, MatchResult, Pattern } from './matcher/index.js';
import type { FusedPlan, RuleContext } from './plan.js';

export interface Rule {
  name: string;
  pattern: Pattern;
  /**
   * Only fused nodes made by this run as roots (growth rules whose pattern's root is the fused
   * node); otherwise every node whose op type the pattern's root allows.
   */
  freshRootsOnly?: boolean;
  /** The node a remark names when this rule's check fails (default: the root). */
  anchor?(m: Match): Node;
  /** Everything the rewrite needs travels in the plan; nothing is kept on the side. */
  check(m: Match, cx: RuleContext): MatchResult<FusedPlan>;
  rewrite(m: Match & { plan: FusedPlan }, b: FusionBuilder): Node;
}
