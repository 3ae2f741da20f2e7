/**
 * The pass manager: runs an ordered list of passes over the main graph and every subgraph
 * (If/Loop/Scan bodies), and collects one report: what fused, why candidates did not
 * (remarks, like compiler remarks), and the time each pass took.
 */
import type { Graph, Model } from './ir/graph.js';
import type { FusedAttributes } from './op/param.js';
import type { Target } from './op/target.js';

/** One node of a site as it was before the rewrite (for the report's before/after diagrams). */
export interface SiteNode {
  name: string;
  op_type: string;
  inputs: string[];
  outputs: string[];
}

export interface FusedSite {
  /** Name of the new fused node. */
  node: string;
  op_type: string;
  attributes: FusedAttributes;
  /** Names (or labels) of the nodes it replaced. */
  replaced: string[];
  /** The graph it lives in ('' for the main graph, else the owning node's label path). */
  graph: string;
  /** Notes, e.g. constants converted to another dtype for the target. */
  notes?: string[];
  /** The replaced nodes as they were (every stage of a grown node), in `replaced` order. */
  before?: { nodes: SiteNode[] };
  /** The fused node's inputs ('' = absent optional) and outputs as the fusion wrote them. */
  after?: { inputs: string[]; outputs: string[] };
}

export interface Remark {
  /** The node the candidate was anchored at (a ReduceMean, Pow, ...). */
  node: string;
  reason: string;
  graph: string;
}

export interface PassTiming {
  pass: string;
  ms: number;
  /** Hits per rule, e.g. { 'rms-norm': 32, 'residual': 31 }. */
  counts: Record<string, number>;
}

export interface Report {
  input?: string;
  output?: string;
  target: string;
  format: string;
  fused: FusedSite[];
  remarks: Remark[];
  passes: PassTiming[];
  totalMs?: number;
  emitted?: { dir: string; kernels: number; nodes: Record<string, string> };
}

export interface PassContext {
  model: Model;
  target: Target;
  report: Report;
  /** Print per-rule attempts and best partial matches (RMSFUSE_DEBUG / --debug). */
  debug: boolean;
  /** Node names to explain (best partial match printed), from --explain. */
  explain: Set<string>;
  log: (line: string) => void;
}

export interface Pass {
  name: string;
  /** Runs on one graph; returns hits per rule. The manager calls it for every (sub)graph. */
  run(graph: Graph, ctx: PassContext): Record<string, number>;
  /** Runs once per model after every graph was processed (e.g. adding model-level functions). */
  finish?(ctx: PassContext): void;
}

/** Human-readable path of a graph: '' for the main graph, `node/attr...` for subgraphs. */
export function graphPath(g: Graph): string {
  const parts: string[] = [];
  for (let x: Graph | undefined = g; x?.owner; x = x.parent) parts.unshift(`${x.owner.label}.${x.proto.name || 'body'}`);
  return parts.join('/');
}

export function runPasses(passes: Pass[], ctx: PassContext): void {
  for (const pass of passes) {
    const t0 = performance.now();
    const counts: Record<string, number> = {};
    // Collect graphs first: a pass may rebuild a graph's node list while it runs.
    for (const g of [...ctx.model.graph.allGraphs()]) {
      for (const [rule, n] of Object.entries(pass.run(g, ctx))) counts[rule] = (counts[rule] ?? 0) + n;
    }
    pass.finish?.(ctx);
    ctx.report.passes.push({ pass: pass.name, ms: performance.now() - t0, counts });
  }
}
