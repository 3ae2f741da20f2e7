/**
 * The fusion pass: staged rules over every graph (the pass manager calls it for the main graph
 * and each If/Loop/Scan body). Stage 1 fuses plain norms; later stages grow the nodes stage 1
 * made (residual Add in front, quantization behind). Every candidate left unfused gets a remark.
 *
 * Debugging: with ctx.debug (or RMSFUSE_DEBUG=1) each rule prints attempts, matches and hits per
 * graph and the best partial match of every failed root; ctx.explain (node names) prints the
 * best partial match for those roots and candidates only.
 */
import type { NodeProto } from 'onnx-buf';
import type { Graph, Node } from '../compiler/ir/graph.js';
import { RMSFUSE_DOMAIN } from '../compiler/op/param.js';
import { graphPath, type Pass, type PassContext } from '../compiler/pass-manager.js';
import { FusionBuilder, FusionState, finishModel } from './fuse.js';
import { describePartial, isNoOp, matchAt, rootOps, Tracer, type PartialMatch } from './matcher/index.js';
import type { RuleContext } from './plan.js';
import type { Rule } from './rule.js';
import { diagnoseCandidate, isNormCandidate, rmsNormRule } from './rules/rms-norm.js';
import { quantDynamicRule } from './rules/quant-dynamic.js';
import { quantStaticRule } from './rules/quant-static.js';
import { residualRule } from './rules/residual.js';

/** The stages, in order: the plain norm first, then the rules that grow it. */
export const STAGES: readonly Rule[] = [rmsNormRule, residualRule, quantStaticRule, quantDynamicRule];

/** Rank of check() failures above any matcher failure: the pattern matched completely. */
const CHECK_FAILED = 1_000_000;

interface Attempt extends PartialMatch {
  anchor: Node;
  quiet?: boolean;
  partial?: boolean;
}

interface RuleStats {
  attempts: number;
  matches: number;
  hits: number;
}

export function fuseRmsNormPass(): Pass {
  let state = new FusionState();
  return {
    name: 'fuse-rms-norm',
    run(graph, ctx) {
      const opset = ctx.model.opset('') ?? 0;
      const cx: RuleContext = {
        model: ctx.model,
        target: ctx.target,
        opset,
        fresh: (n) => state.created.get(n.proto),
      };
      const b = new FusionBuilder(graph, state, ctx, opset);
      const debug = ctx.debug || process.env.RMSFUSE_DEBUG === '1';
      const where = graphPath(graph) || 'main graph';
      // Best failure seen per stage-1 candidate (ReduceMean/ReduceSum of a square).
      const candidates = new Map<Node, Attempt>();
      // Growth rules that matched but could not fuse, by anchor; reported if the anchor survives
      // (a later rule may still take it, e.g. dynamic quantization after the static rule).
      const growthFailures = new Map<Node, Attempt>();
      const counts: Record<string, number> = {};
      for (const rule of STAGES) {
        const before = new Set(state.created.keys());
        const stats = runRule(rule, graph, cx, b, ctx, candidates, growthFailures, debug);
        orderNames(graph, state, before);
        counts[rule.name] = stats.hits;
        if (debug) ctx.log(`[rmsfuse] ${where}: rule ${rule.name}: ${stats.attempts} attempts, ${stats.matches} matches, ${stats.hits} fused`);
      }
      const alive = new Set(graph.proto.node);
      for (const [anchor, f] of growthFailures) {
        if (!alive.has(anchor.proto)) continue;
        if (f.partial) {
          // A norm site the validator refused as a whole: reported where a smaller part fused
          // without this root (otherwise its candidate's remark says it all).
          if (f.site.every((n) => alive.has(n.proto))) continue;
          ctx.report.remarks.push({ node: anchor.label, reason: `not fused with the norm before it: ${reasonText(f)}`, graph: graphPath(graph) });
          continue;
        }
        ctx.report.remarks.push({ node: anchor.label, reason: reasonText(f), graph: graphPath(graph) });
      }
      for (const n of graph.nodes) {
        if (!alive.has(n.proto) || !isNormCandidate(graph, n)) continue;
        const best = candidates.get(n);
        const reason = diagnoseCandidate(graph, n) ?? (best ? reasonText(best) : 'no RMSNorm pattern reaches it (the mean of squares is not followed by + epsilon, a square root and a multiply with x)');
        ctx.report.remarks.push({ node: n.label, reason, graph: graphPath(graph) });
        if (ctx.explain.has(n.label) && best) ctx.log(`[rmsfuse] explain ${n.label}: ${describePartial(best)}`);
      }
      return counts;
    },
    finish(ctx) {
      finishModel(ctx.model, state);
      state = new FusionState();
    },
  };
}

const reasonText = (a: PartialMatch): string => (a.at ? `${a.reason} (at ${a.at})` : a.reason);

function runRule(
  rule: Rule,
  graph: Graph,
  cx: RuleContext,
  b: FusionBuilder,
  ctx: PassContext,
  candidates: Map<Node, Attempt>,
  growthFailures: Map<Node, Attempt>,
  debug: boolean,
): RuleStats {
  const stats: RuleStats = { attempts: 0, matches: 0, hits: 0 };
  const ops = rootOps(rule.pattern);
  let alive = new Set(graph.proto.node);
  // Nodes of sites that must stay unfused as a whole (a final failure).
  const blocked = new Map<Node, Attempt>();
  // Outputs before inputs: the largest site at a root is tried before the smaller ones inside it.
  for (const root of [...graph.nodes].reverse()) {
    if (!alive.has(root.proto)) continue;
    if (rule.freshRootsOnly) {
      if (!cx.fresh(root)) continue;
    } else if (root.domain === RMSFUSE_DOMAIN || (ops && !ops.has(root.opType) && !isNoOp(graph, root))) {
      continue;
    }
    stats.attempts++;
    const tracer = new Tracer();
    let failed: Attempt | undefined;
    let fused = false;
    for (const m of matchAt(graph, root, rule.pattern, tracer)) {
      stats.matches++;
      const blocker = m.site.find((n) => blocked.has(n));
      if (blocker) {
        // Part of a site that stays unfused as a whole: keep its reason.
        failed ??= blocked.get(blocker);
        continue;
      }
      const r = rule.check(m, cx);
      if (r.ok) {
        rule.rewrite({ ...m, plan: r.value }, b);
        stats.hits++;
        fused = true;
        alive = new Set(graph.proto.node);
        break;
      }
      const attempt: Attempt = {
        reason: r.reason,
        ...(r.at !== undefined ? { at: r.at } : {}),
        site: [...m.site],
        progress: CHECK_FAILED + m.site.length,
        anchor: rule.anchor?.(m) ?? root,
        ...(r.final ? { final: true } : {}),
        ...(r.quiet ? { quiet: true } : {}),
        ...(r.partial ? { partial: true } : {}),
      };
      if (!failed || attempt.progress > failed.progress) failed = attempt;
      if (r.final) {
        for (const n of m.site) blocked.set(n, attempt);
        failed = attempt;
        break;
      }
    }
    if (fused) continue;
    const best: Attempt | undefined = failed ?? (tracer.best && { ...tracer.best, anchor: root });
    if (!best) continue;
    if (rule === rmsNormRule) {
      if (failed?.partial && !growthFailures.has(root)) growthFailures.set(root, { ...failed, anchor: root, partial: true });
      for (const n of best.site) {
        if (!isNormCandidate(graph, n)) continue;
        const prev = candidates.get(n);
        if (!prev || best.progress > prev.progress || (best.final && !prev.final)) candidates.set(n, best);
      }
    } else if (failed && !failed.quiet && !growthFailures.has(failed.anchor)) {
      // A growth that matched but cannot be fused: the smaller fused node stays; say why.
      growthFailures.set(failed.anchor, failed);
    }
    if ((debug && best.site.length > 1) || ctx.explain.has(root.label)) {
      ctx.log(`[rmsfuse]   ${rule.name} at ${root.label}: ${describePartial(best)}`);
    }
  }
  return stats;
}

/**
 * Rules visit roots from the graph's end (the largest site first), so fresh names come out in
 * reverse: `/same/RmsNorm_1` before `/same/RmsNorm`. Among the nodes a stage made with the same
 * base name, hand the names out again in graph order (the set of names stays the same).
 */
function orderNames(graph: Graph, state: FusionState, before: ReadonlySet<unknown>): void {
  const index = new Map(graph.proto.node.map((p, i) => [p, i]));
  const groups = new Map<string, NodeProto[]>();
  for (const proto of state.created.keys()) {
    if (before.has(proto) || !index.has(proto)) continue;
    const base = proto.name.replace(/_\d+$/, '');
    (groups.get(base) ?? groups.set(base, []).get(base)!).push(proto);
  }
  const suffix = (name: string): number => Number(/_(\d+)$/.exec(name)?.[1] ?? 0);
  for (const protos of groups.values()) {
    if (protos.length < 2) continue;
    const names = protos.map((p) => p.name).sort((a, b) => suffix(a) - suffix(b));
    protos.sort((a, b) => index.get(a)! - index.get(b)!);
    protos.forEach((p, i) => {
      p.name = names[i]!;
      state.created.get(p)!.site.node = p.name;
    });
  }
}
