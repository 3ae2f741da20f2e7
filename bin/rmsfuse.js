#!/usr/bin/env node
// Launcher for the `rmsfuse` command: rmsfuse ships TypeScript sources, which tsx compiles on
// the fly (also from an installed tarball). The project's own tsconfig.json is used where it is
// present, so the launcher never picks up settings from the user's working directory.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

const tsconfig = fileURLToPath(new URL('../tsconfig.json', import.meta.url));
register({ tsconfig: existsSync(tsconfig) ? tsconfig : false });

const { main } = await import('../compiler/cli.ts');
process.exitCode = await main(process.argv.slice(2));
