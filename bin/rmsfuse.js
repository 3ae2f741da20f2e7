#!/usr/bin/env node
// Launcher for the `rmsfuse` command: rmsfuse ships TypeScript sources, which tsx compiles on
// the fly (also from an installed tarball). The project's own tsconfig.json is used where it is
// present, so the launcher never picks up settings from the user's working directory.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

const tsconfig = fileURLToPath(new URL('../tsconfig.json', import.meta.url));
register({ tsconfig: existsSync(tsconfig) ? tsconfig : false });

// `rmsfuse inspect --json | head`: a closed pipe ends the output, not the process with a trace.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const { main } = await import('../compiler/cli.ts');
process.exitCode = await main(process.argv.slice(2));
