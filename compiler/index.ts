/**
 * The package entry: `import { loadModel, saveModel, optimize, optimizeModel } from 'rmsfuse'`.
 *
 * - loadModel(path | bytes) -> Model: decode losslessly, check external data, validate the graph.
 * - optimizeModel(model, { target, format }) -> Report: run the fusion passes in place.
 * - saveModel(model, out) -> SaveResult: write atomically, keep or copy external data.
 * - optimize(in, out, options) -> OptimizeReport: all of the above, plus kernels and report files.
 *
 * Errors a user can cause are thrown as RmsfuseError (`exitCode` 1: model, 2: usage).
 * @packageDocumentation
 */
export {
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
  type LoadModelOptions,
  type OptimizeModelOptions,
  type OptimizeOptions,
  type OptimizeReport,
  type PhaseTimings,
  type InspectResult,
  type InspectOptions,
  type InspectFusion,
  type OptimizePhase,
  type TensorInfo,
  type OutputFormat,
} from './api.js';
export type { SaveOptions, SaveResult, CopyProgress, ExternalFileAction } from './onnx/save.js';
export { RmsfuseError } from './errors.js';
export { Model, Graph, Node, type Value } from './ir/graph.js';
export type { TensorType, Dim } from './ir/types.js';
export type { Report, FusedSite, SiteNode, Remark, PassTiming, Pass, PassContext } from './pass-manager.js';
export type { FusedAttributes, RmsNormParam } from './op/param.js';
export { TARGETS, type Target } from './op/target.js';
export { decodeModel, encodeModel } from './onnx/model.js';
export type { LoadOptions, LoadedModel } from './onnx/model.js';
export type { Limits } from './onnx/limits.js';
export type { ExternalRef } from './onnx/external.js';
export type { LayerType, QuantType, DynamicQuantType, PrecisionMode, ModelType } from './op/param.js';
