/**
 * The compiler: load an ONNX model, fuse its RMSNorm sites, save it, emit kernels.
 *
 * ```ts
 * import { loadModel, optimizeModel, saveModel, optimize } from 'rmsfuse';
 *
 * const report = await optimize('model.onnx', 'model.opt.onnx', { target: 'webgpu', emit: 'kernels' });
 * // or step by step:
 * const model = loadModel('model.onnx');
 * optimizeModel(model, { target: 'webgpu' });
 * saveModel(model, 'model.opt.onnx');
 * ```
 *
 * Errors a user can cause are thrown as {@link RmsfuseError} (`exitCode` 1: model, 2: usage).
 *
 * @module rmsfuse
 */
export * from '../../compiler/index.js';
