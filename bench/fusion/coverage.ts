/**
 * Coverage: which RMSNorm sites rmsfuse fuses versus onnxruntime's own optimizer.
 *
 *   npx tsx bench/fusion/coverage.ts [model.onnx ...]   (default: every model in examples/)
 *
 * onnxruntime-node (CPU provider, graphOptimizationLevel 'extended') writes its optimized graph
 * to a file (session option optimizedModelFilePath); its SimplifiedLayerNormalization and
 * SkipSimplifiedLayerNormalization nodes are its fused sites. A site is identified by the tensor
 * its norm produces in the original graph: ORT's fused node keeps that output name, and rmsfuse's
 * report lists the nodes it replaced, among them the producer of that tensor. Goal: rmsfuse fuses
 * every site ORT fuses, plus the rest.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { ModelProto } from 'onnx-buf';
import { loadModel, optimizeModel } from '../../compiler/api.js';
import { decodeModel, encodeModel } from '../../compiler/onnx/model.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ORT_FUSED = new Set(['SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'RMSNormalization']);

export interface CoverageRow {
  model: string;
  /** rmsfuse's fused sites by op type. */
  rmsfuse: Record<string, number>;
  /** onnxruntime's fused nodes by op type. */
  ort: Record<string, number>;
  /** ORT sites that rmsfuse also fused, out of all ORT sites. */
  covered: number;
  ortSites: number;
  /** ORT sites rmsfuse missed (output tensor names). */
  missed: string[];
  /** Sites rmsfuse fused that ORT did not. */
  rmsfuseOnly: number;
  /** The rmsfuse-optimized model loads in onnxruntime. */
  valid: boolean;
}

/** onnxruntime's optimized graph for a model (CPU provider, 'extended'). */
async function ortOptimized(file: string): Promise<ModelProto> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-cov-')), 'ort.onnx');
  const session = await ort.InferenceSession.create(file, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'extended',
    optimizedModelFilePath: out,
    logSeverityLevel: 3,
  });
  await session.release();
  const m = decodeModel(fs.readFileSync(out), out);
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return m;
}

export async function coverage(file: string): Promise<CoverageRow> {
  const original = loadModel(file).proto;
  const producer = new Map<string, string>();
  for (const n of original.graph!.node) for (const o of n.output) producer.set(o, n.name);

  const model = loadModel(file);
  const report = optimizeModel(model, { format: 'rmsfuse' });
  const rmsfuse: Record<string, number> = {};
  const replaced = new Map<string, number>();
  report.fused.forEach((f, i) => {
    const q = f.attributes.quant_type === 'int8' ? (f.attributes.dynamic_quant === 'symmetric' ? '+dyn' : '+int8') : '';
    rmsfuse[f.op_type + q] = (rmsfuse[f.op_type + q] ?? 0) + 1;
    for (const r of f.replaced) replaced.set(r, i);
  });

  // The optimized model must still load in onnxruntime (a broken rewrite would show up here).
  let valid = true;
  try {
    await (await ort.InferenceSession.create(encodeModel(model.proto), { logSeverityLevel: 3 })).release();
  } catch {
    valid = false;
  }
  const ortModel = await ortOptimized(file);
  const ortCounts: Record<string, number> = {};
  const matched = new Set<number>();
  const missed: string[] = [];
  let ortSites = 0;
  for (const n of ortModel.graph!.node) {
    if (!ORT_FUSED.has(n.opType)) continue;
    ortCounts[n.opType] = (ortCounts[n.opType] ?? 0) + 1;
    ortSites++;
    const site = replaced.get(producer.get(n.output[0]!) ?? '');
    if (site === undefined) missed.push(n.output[0]!);
    else matched.add(site);
  }
  return {
    model: path.relative(ROOT, file),
    rmsfuse,
    ort: ortCounts,
    covered: ortSites - missed.length,
    ortSites,
    missed,
    rmsfuseOnly: report.fused.length - matched.size,
    valid,
  };
}

const fmt = (c: Record<string, number>): string =>
  Object.entries(c)
    .map(([k, v]) => `${v} ${k.replace('SimplifiedLayerNormalization', 'SLN')}`)
    .join(', ') || '-';

export function table(rows: CoverageRow[]): string {
  const head = ['model', 'rmsfuse fused', 'ORT fused (CPU, extended)', 'ORT sites also fused by rmsfuse', 'rmsfuse only'];
  const lines = rows.map((r) => [r.model, fmt(r.rmsfuse) + (r.valid ? '' : ' (INVALID model)'), fmt(r.ort), `${r.covered}/${r.ortSites}${r.missed.length ? ` (missed: ${r.missed.join(', ')})` : ''}`, String(r.rmsfuseOnly)]);
  const all = [head, ...lines];
  const w = head.map((_, i) => Math.max(...all.map((l) => l[i]!.length)));
  const row = (l: string[]) => `| ${l.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
  return [row(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...lines.map(row)].join('\n');
}

function defaultModels(): string[] {
  const dirs = [path.join(ROOT, 'examples'), path.join(ROOT, 'examples/exporters')];
  return dirs.flatMap((d) => fs.readdirSync(d).filter((f) => f.endsWith('.onnx')).sort().map((f) => path.join(d, f)));
}

async function main(): Promise<void> {
  const files = process.argv.length > 2 ? process.argv.slice(2) : defaultModels();
  const rows: CoverageRow[] = [];
  for (const f of files) rows.push(await coverage(f));
  console.log(table(rows));
  const missed = rows.filter((r) => r.missed.length > 0 || !r.valid);
  console.log(
    missed.length === 0
      ? `\nrmsfuse fuses every site onnxruntime fuses (${rows.reduce((a, r) => a + r.ortSites, 0)}), ` +
          `plus ${rows.reduce((a, r) => a + r.rmsfuseOnly, 0)} more.`
      : `\nrmsfuse misses ${missed.reduce((a, r) => a + r.missed.length, 0)} site(s) that onnxruntime fuses` +
          `${rows.some((r) => !r.valid) ? '; some optimized models do not load in onnxruntime' : ''}.`,
  );
  process.exitCode = missed.length === 0 ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
