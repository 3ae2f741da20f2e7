/**
 * Reports (SPEC section 6): JSON for tools, Markdown for people. The format follows the file's
 * extension. The Markdown report has a table of fused sites, a before/after Mermaid diagram of
 * each, the near misses (remarks) with their reasons, the emitted kernels by node, and timings.
 */
import * as path from 'node:path';
import { RmsfuseError } from './errors.js';
import { writeFileAtomic } from './onnx/model.js';
import type { FusedSite, Report, SiteNode } from './pass-manager.js';
import type { OptimizeReport } from './api.js';

export type ReportKind = 'json' | 'md';

/** The report format a file name asks for; anything but .json/.md/.markdown is a usage error. */
export function reportKind(file: string): ReportKind {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.md' || ext === '.markdown') return 'md';
  throw new RmsfuseError(`--report ${file}: the file name must end in .json or .md (the format follows the extension)`, 2);
}

/** The JSON report: what `--report R.json` writes and `optimize --json` prints. */
export function renderJsonReport(report: Report): string {
  return JSON.stringify(report, null, 2) + '\n';
}

/** Writes the report as JSON or Markdown, chosen by the file's extension. */
export function writeReport(report: Report, file: string): void {
  const text = reportKind(file) === 'json' ? renderJsonReport(report) : renderMarkdownReport(report);
  writeFileAtomic(file, new TextEncoder().encode(text));
}

/** Sites fused per op type, in first-seen order. */
export function countByOpType(fused: readonly FusedSite[]): Map<string, number> {
  const byOp = new Map<string, number>();
  for (const f of fused) byOp.set(f.op_type, (byOp.get(f.op_type) ?? 0) + 1);
  return byOp;
}

// ---------------------------------------------------------------------------------------------
// Markdown

/** Sites drawn as diagrams; past this many the table still lists every site. */
export const MAX_DIAGRAMS = 200;

/** Plain text in a table cell: Markdown and HTML punctuation escaped, one line. */
const cell = (s: unknown): string =>
  String(s)
    .replace(/\r?\n/g, ' ')
    .replace(/[\\|`*[\]<>~]/g, (c) => `\\${c}`);

/** A name as an inline code span (any backticks inside fenced by a longer run), table-safe. */
function code(s: string): string {
  if (s === '') return '-';
  const text = s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

const ms = (x: number | undefined): string => (x === undefined ? '-' : `${x.toFixed(1)} ms`);

/** The report for people: summary, fused sites with diagrams, near misses, kernels, timings. */
export function renderMarkdownReport(report: Report): string {
  const lines: string[] = ['# rmsfuse report', ''];
  if (report.input) lines.push(`- input: ${code(report.input)}`);
  if (report.output) lines.push(`- output: ${code(report.output)}`);
  lines.push(`- target: ${report.target}`, `- format: ${report.format}`, `- time: ${ms(report.totalMs)}`, '');

  const byOp = countByOpType(report.fused);
  lines.push('## Summary', '');
  lines.push(
    report.fused.length === 0
      ? '- fused: nothing'
      : `- fused: ${report.fused.length} site(s): ${[...byOp].map(([op, n]) => `${op} ${n}`).join(', ')}`,
  );
  lines.push(`- near misses: ${report.remarks.length}${report.remarks.length ? ' (see Remarks)' : ''}`);
  if (report.emitted) lines.push(`- emitted: ${report.emitted.kernels} kernel(s) in ${code(report.emitted.dir)}`);
  lines.push('');

  lines.push(`## Fused sites (${report.fused.length})`, '');
  if (report.fused.length === 0) {
    lines.push('No site was fused.', '');
  } else {
    const kernels = report.emitted?.nodes;
    lines.push(
      '| node | op type | graph | epsilon | quant | dynamic quant | precision | model | rstd | bias | replaced nodes | notes |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const f of report.fused) {
      const a = f.attributes;
      const row = [f.node, f.op_type, f.graph || 'main', a.epsilon, a.quant_type, a.dynamic_quant, a.precision_mode, a.model_type, a.rstd, a.has_bias, f.replaced.join(', '), (f.notes ?? []).join('; ')];
      lines.push(`| ${row.map(cell).join(' | ')} |`);
    }
    lines.push('');
    const drawn = report.fused.slice(0, MAX_DIAGRAMS);
    drawn.forEach((f, i) => {
      lines.push(`### ${i + 1}. ${code(f.node)} (${cell(f.op_type)})`, '');
      const where = [f.graph ? `graph ${code(f.graph)}` : '', kernels?.[f.node] ? `kernel ${code(kernels[f.node]!)}` : ''].filter(Boolean);
      if (where.length) lines.push(where.join(', '), '');
      lines.push(`Replaces ${f.replaced.length} node(s): ${f.replaced.map(code).join(', ')}.`, '');
      for (const n of f.notes ?? []) lines.push(`- ${cell(n)}`);
      if (f.notes?.length) lines.push('');
      const diagram = mermaidSite(f);
      lines.push(...(diagram ? ['```mermaid', diagram, '```'] : ['(no diagram: this entry does not record the replaced nodes)']), '');
    });
    if (report.fused.length > drawn.length) lines.push(`Diagrams of the first ${drawn.length} of ${report.fused.length} sites only.`, '');
  }

  lines.push(`## Remarks (${report.remarks.length})`, '');
  if (report.remarks.length === 0) {
    lines.push('No near misses.', '');
  } else {
    lines.push('Near misses: candidates that were not fused, and why.', '', '| node | graph | reason |', '|---|---|---|');
    for (const r of report.remarks) lines.push(`| ${[r.node, r.graph || 'main', r.reason].map(cell).join(' | ')} |`);
    lines.push('');
  }

  if (report.emitted) {
    const nodes = Object.entries(report.emitted.nodes);
    lines.push('## Emitted kernels', '', `${report.emitted.kernels} kernel(s) for ${nodes.length} node(s) in ${code(report.emitted.dir)}.`, '');
    if (nodes.length > 0) {
      lines.push('| node | kernel |', '|---|---|');
      for (const [node, kernel] of nodes) lines.push(`| ${code(node)} | ${code(kernel)} |`);
      lines.push('');
    }
  }

  if (report.passes.length > 0) {
    lines.push('## Passes', '', '| pass | time | hits per rule |', '|---|---|---|');
    for (const p of report.passes) {
      const counts = Object.entries(p.counts).map(([k, v]) => `${k}: ${v}`).join(', ') || '-';
      lines.push(`| ${[p.pass, ms(p.ms), counts].map(cell).join(' | ')} |`);
    }
    lines.push('');
  }
  const timings = (report as Partial<OptimizeReport>).timings;
  if (timings) {
    lines.push('## Timings', '', '| phase | time |', '|---|---|');
    for (const [k, v] of Object.entries(timings)) lines.push(`| ${cell(k.replace(/Ms$/, ''))} | ${ms(v)} |`);
    lines.push('');
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Mermaid

const MERMAID_ENTITIES: Record<string, string> = { '"': '#34;', '#': '#35;', '&': '#38;', '<': '#60;', '>': '#62;', '`': '#96;' };

/**
 * Text inside a quoted Mermaid label: quotes, '#', '&', angle brackets and backticks as entity
 * codes (so no name can end the label, open HTML or a Markdown string), one line. Brackets,
 * parentheses, slashes and pipes are plain text inside quotes.
 */
export function mermaidText(s: string): string {
  return s.replace(/\r?\n|\r/g, ' ').replace(/["#&<>`]/g, (c) => MERMAID_ENTITIES[c]!);
}

/** A node's name for its box: the part after the last '/', left out where it is just the op type. */
function shortName(name: string, opType: string): string {
  const short = name.slice(name.lastIndexOf('/') + 1);
  return short === opType || short === '' ? '' : short;
}

const opLabel = (opType: string, name: string): string => {
  const short = shortName(name, opType);
  return `"${mermaidText(opType)}${short ? `<br/>${mermaidText(short)}` : ''}"`;
};

/** The site's nodes producers first (the recorded order is the matcher's, from the output back). */
function topologicalOrder(nodes: readonly SiteNode[]): SiteNode[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  const state = new Uint8Array(nodes.length); // 0 new, 1 on the stack, 2 placed
  const order: SiteNode[] = [];
  const visit = (i: number): void => {
    if (state[i] !== 0) return; // a cycle (never in a valid graph) is cut where it closes
    state[i] = 1;
    for (const input of nodes[i]!.inputs) {
      const p = producer.get(input);
      if (p !== undefined) visit(p);
    }
    state[i] = 2;
    order.push(nodes[i]!);
  };
  for (let i = nodes.length - 1; i >= 0; i--) visit(i);
  return order;
}

/**
 * One flowchart with two parts: before (the replaced nodes, the tensors they read from outside
 * the site, their edges, and the tensors the site produces) and after (the fused node between
 * the same inputs and outputs). Node ids are generated, never taken from names. Undefined when
 * the entry does not record the replaced nodes.
 */
export function mermaidSite(site: FusedSite): string | undefined {
  if (!site.before || site.before.nodes.length === 0) return undefined;
  const before = topologicalOrder(site.before.nodes);
  const out: string[] = ['flowchart LR'];
  const producer = new Map<string, number>();
  before.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  const outputs = (site.after?.outputs ?? []).filter((o) => o !== '' && producer.has(o));

  // before
  out.push(`  subgraph before["before: ${before.length} node(s)"]`, '    direction TB');
  const tensorIds = new Map<string, string>();
  const tensor = (name: string, prefix: string, ids: Map<string, string>, lines: string[]): string => {
    let id = ids.get(name);
    if (!id) {
      id = `${prefix}${ids.size}`;
      ids.set(name, id);
      lines.push(`    ${id}(["${mermaidText(name)}"]):::tensor`);
    }
    return id;
  };
  const edges: string[] = [];
  const nodeLines: string[] = [];
  before.forEach((n: SiteNode, i) => nodeLines.push(`    b${i}[${opLabel(n.op_type, n.name)}]`));
  before.forEach((n, i) => {
    for (const input of n.inputs) {
      if (input === '') continue;
      const p = producer.get(input);
      edges.push(`    ${p !== undefined ? `b${p}` : tensor(input, 'bt', tensorIds, nodeLines)} --> b${i}`);
    }
  });
  const outIds = new Map<string, string>();
  for (const o of outputs) edges.push(`    b${producer.get(o)} --> ${tensor(o, 'bo', outIds, nodeLines)}`);
  out.push(...nodeLines, ...edges, '  end');

  // after
  if (site.after) {
    out.push(`  subgraph after["after: ${mermaidText(site.op_type)}"]`, '    direction TB');
    const lines: string[] = [`    a0[${opLabel(site.op_type, site.node)}]:::fused`];
    const ids = new Map<string, string>();
    const links: string[] = [];
    for (const input of site.after.inputs) if (input !== '') links.push(`    ${tensor(input, 'at', ids, lines)} --> a0`);
    const aOut = new Map<string, string>();
    for (const o of site.after.outputs) if (o !== '') links.push(`    a0 --> ${tensor(o, 'ao', aOut, lines)}`);
    out.push(...lines, ...links, '  end');
  }
  out.push('  classDef tensor fill:#eef,stroke:#88a', '  classDef fused fill:#dfd,stroke:#393');
  return out.join('\n');
}
