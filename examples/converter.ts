/**
 * A model converter using rmsfuse as a library: load a model, fuse its RMSNorm sites, look at
 * what happened, save it. This is the shape of an integration into a converter pipeline (run
 * rmsfuse after export and before quantization-aware tooling or a runtime-specific writer).
 *
 *   npx tsx examples/converter.ts examples/mini-llama-fp32.onnx /tmp/out.onnx [rmsfuse|ort|onnx23]
 *
 * In a project that depends on rmsfuse the import is `from 'rmsfuse'`.
 */
import { loadModel, optimizeModel, saveModel, RmsfuseError, type OutputFormat } from '../compiler/index.js';

function main(argv: string[]): number {
  const [input, output, format = 'rmsfuse'] = argv;
  if (!input || !output) {
    console.error('usage: converter.ts IN.onnx OUT.onnx [rmsfuse|ort|onnx23]');
    return 2;
  }
  try {
    // 1. Load: decodes losslessly and checks the graph; weights in external data stay on disk.
    const model = loadModel(input);

    // 2. Optimize in place. The report says what fused and why other candidates did not.
    const report = optimizeModel(model, { format: format as OutputFormat });
    const byOp = new Map<string, number>();
    for (const f of report.fused) byOp.set(f.op_type, (byOp.get(f.op_type) ?? 0) + 1);
    console.log(`fused ${report.fused.length} site(s): ${[...byOp].map(([op, n]) => `${n} ${op}`).join(', ') || 'none'}`);
    for (const f of report.fused) {
      const a = f.attributes;
      const notes = f.notes?.length ? ` (${f.notes.join('; ')})` : '';
      console.log(`  ${f.node}: ${f.op_type} eps=${a.epsilon} ${a.model_type} ${a.precision_mode} quant=${a.quant_type}/${a.dynamic_quant}${notes}`);
    }
    for (const r of report.remarks) console.log(`  not fused at ${r.node}: ${r.reason}`);
    for (const p of report.passes) console.log(`  pass ${p.pass}: ${p.ms.toFixed(1)} ms ${JSON.stringify(p.counts)}`);

    // 3. Save atomically (a temp file, then rename); external data is kept or copied beside OUT.
    const saved = saveModel(model, output);
    console.log(`wrote ${saved.path}`);
    return 0;
  } catch (e) {
    // User errors (bad model, refused format) carry an exit code and a one-line message.
    if (e instanceof RmsfuseError) {
      console.error(`error: ${e.message}`);
      return e.exitCode;
    }
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));
