/**
 * Target-neutral helpers for emitting TypeScript launchers with ts-morph (structures, not string
 * concatenation) and type-checking what was emitted. Shared by the WebGPU emitter and the Ascend
 * one. ts-morph is heavy: this module is imported only by emitters, never on CLI start-up.
 */
import { IndentationText, Project, QuoteKind, ts, type SourceFile } from 'ts-morph';

/** An in-memory project whose printing settings fix the emitted text (2 spaces, single quotes). */
export function emitProject(): Project {
  return new Project({
    useInMemoryFileSystem: true,
    manipulationSettings: { indentationText: IndentationText.TwoSpaces, quoteKind: QuoteKind.Single, useTrailingCommas: true },
  });
}

/**
 * Builds one module with `build`, puts `header` (comment lines) on top, formats it with the
 * TypeScript formatter and returns its text, ending in exactly one newline.
 */
export function printModule(project: Project, path: string, header: string[], build: (file: SourceFile) => void): string {
  const file = project.createSourceFile(path, '', { overwrite: true });
  build(file);
  file.insertStatements(0, header.map((l) => `// ${l}`).join('\n'));
  file.formatText({ indentSize: 2, tabSize: 2, convertTabsToSpaces: true });
  return file.getFullText().trimEnd() + '\n';
}

/** Longest one-line object literal `literal` prints. */
const INLINE_OBJECT_MAX = 120;

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A property name as written in an object literal: bare when it is an identifier, quoted otherwise. */
export function propertyName(key: string): string {
  return IDENT.test(key) ? key : quote(key);
}

/** A single-quoted string literal. */
export function quote(s: string): string {
  return `'${JSON.stringify(s).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
}

/** A template literal holding `s` verbatim (for multi-line sources kept readable in the file). */
export function templateLiteral(s: string): string {
  return '`' + s.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${') + '`';
}

/** Text placed verbatim by `literal` (an identifier, a template literal, an expression). */
export class Raw {
  constructor(readonly text: string) {}
}
export const raw = (text: string): Raw => new Raw(text);

/**
 * TypeScript text of a JSON-like value (objects keep their key order; arrays of scalars stay on
 * one line). Deterministic: the same value always prints the same text.
 */
export function literal(value: unknown, indent = ''): string {
  if (value === null) return 'null';
  if (value instanceof Raw) return value.text;
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot emit non-finite number ${value}`);
    return Object.is(value, -0) ? '-0' : String(value);
  }
  if (typeof value === 'boolean') return String(value);
  const inner = indent + '  ';
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return `[${value.map((v) => literal(v)).join(', ')}]`;
    return `[\n${value.map((v) => `${inner}${literal(v, inner)},`).join('\n')}\n${indent}]`;
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return '{}';
    // A record of scalars fits on one line when short (table rows such as bindings).
    if (entries.every(([, v]) => v === null || typeof v !== 'object')) {
      const line = `{ ${entries.map(([k, v]) => `${propertyName(k)}: ${literal(v)}`).join(', ')} }`;
      if (line.length <= INLINE_OBJECT_MAX) return line;
    }
    return `{\n${entries.map(([k, v]) => `${inner}${propertyName(k)}: ${literal(v, inner)},`).join('\n')}\n${indent}}`;
  }
  throw new Error(`cannot emit a ${typeof value} as a literal`);
}

export interface TypeCheckOptions {
  /** Declaration files to add to the program (e.g. @webgpu/types' index.d.ts). */
  declarationFiles?: string[];
  /** Libraries, as compiler file names (default ES2022 and the DOM, which @webgpu/types builds on). */
  lib?: string[];
}

/**
 * Type-checks emitted TypeScript files (paths on disk) in strict mode with ts-morph's compiler
 * and returns the diagnostics as `file(line): message` strings (empty when clean).
 */
export function typeCheck(paths: string[], options: TypeCheckOptions = {}): string[] {
  const project = new Project({
    useInMemoryFileSystem: false,
    skipAddingFilesFromTsConfig: true,
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: options.lib ?? ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: [],
      // TypeScript 6's DOM library already declares WebGPU and clashes with @webgpu/types in a few
      // declarations; consumers skip library checks too. The emitted .ts files are checked fully.
      skipLibCheck: true,
    },
  });
  for (const f of options.declarationFiles ?? []) project.addSourceFileAtPath(f);
  for (const p of paths) project.addSourceFileAtPath(p);
  return project.getPreEmitDiagnostics().map((d) => {
    const file = d.getSourceFile();
    const where = file ? `${file.getFilePath()}(${d.getLineNumber() ?? '?'})` : '<global>';
    const m = d.getMessageText();
    return `${where}: ${typeof m === 'string' ? m : ts.flattenDiagnosticMessageText(m.compilerObject, '\n')}`;
  });
}
