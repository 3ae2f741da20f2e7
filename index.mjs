// Package entry for plain Node: rmsfuse ships TypeScript sources, loaded here through tsx's
// scoped loader (it does not change how the importing application loads its own files).
import { tsImport } from 'tsx/esm/api';

const api = await tsImport('./compiler/index.ts', import.meta.url);

export const {
  loadModel,
  saveModel,
  optimize,
  optimizeModel,
  inspectModel,
  writeReport,
  renderMarkdownReport,
  renderJsonReport,
  selectPasses,
  FORMATS,
  TARGETS,
  RmsfuseError,
  Model,
  Graph,
  Node,
  decodeModel,
  encodeModel,
} = api;
