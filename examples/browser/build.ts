/**
 * Builds the browser demo for one emitted folder:
 *
 *   npx tsx examples/browser/build.ts EMIT_DIR OUT_DIR
 *
 * EMIT_DIR is the output of `rmsfuse optimize ... --target webgpu --emit EMIT_DIR`. OUT_DIR gets
 * `index.html`, `demo.js` (esbuild bundle of main.ts + EMIT_DIR/index.ts + EMIT_DIR/manifest.json,
 * the launchers, the runtime and the CPU reference) and a copy of `manifest.json`: a static folder
 * that any web server can serve (`serve.ts` is a small one). Nothing is written into EMIT_DIR.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

export interface BuildResult {
  outDir: string;
  /** Files written, relative to outDir. */
  files: string[];
  /** Size of demo.js in bytes. */
  bundleBytes: number;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** A module specifier for an absolute path that esbuild resolves the same way on every OS. */
const spec = (file: string): string => JSON.stringify(file.split(path.sep).join('/'));

export async function buildDemo(emitDir: string, outDir: string): Promise<BuildResult> {
  const emit = path.resolve(emitDir);
  const index = path.join(emit, 'index.ts');
  const manifest = path.join(emit, 'manifest.json');
  for (const f of [index, manifest]) {
    if (!fs.existsSync(f)) throw new Error(`${f} not found: pass the folder of an \`--target webgpu --emit DIR\` run`);
  }
  const target = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { target?: string }).target;
  if (target !== 'webgpu') throw new Error(`${manifest} is for target '${target}', not webgpu`);

  const out = path.resolve(outDir);
  fs.mkdirSync(out, { recursive: true });
  // The entry is generated: it binds this emitted folder to the page code.
  const entry = [
    `import { launchers } from ${spec(index)};`,
    `import manifest from ${spec(manifest)};`,
    `import { start } from ${spec(path.join(HERE, 'main.ts'))};`,
    `void start(launchers, manifest);`,
  ].join('\n');
  const result = await esbuild.build({
    stdin: { contents: entry, resolveDir: emit, sourcefile: 'demo-entry.ts', loader: 'ts' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: path.join(out, 'demo.js'),
    legalComments: 'none',
    logLevel: 'silent',
    write: true,
  });
  if (result.errors.length > 0) throw new Error(result.errors.map((e) => e.text).join('\n'));
  fs.copyFileSync(path.join(HERE, 'index.html'), path.join(out, 'index.html'));
  fs.copyFileSync(manifest, path.join(out, 'manifest.json'));
  return { outDir: out, files: ['index.html', 'demo.js', 'manifest.json'], bundleBytes: fs.statSync(path.join(out, 'demo.js')).size };
}

async function main(argv: string[]): Promise<number> {
  if (argv.length !== 2 || argv.some((a) => a.startsWith('-'))) {
    process.stderr.write('usage: npx tsx examples/browser/build.ts EMIT_DIR OUT_DIR\n');
    return 2;
  }
  try {
    const r = await buildDemo(argv[0]!, argv[1]!);
    process.stdout.write(`built ${r.outDir} (${r.files.join(', ')}; demo.js ${(r.bundleBytes / 1024).toFixed(0)} KiB)\n`);
    process.stdout.write(`serve it: npx tsx examples/browser/serve.ts ${path.relative(process.cwd(), r.outDir) || '.'}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
