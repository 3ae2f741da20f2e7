/**
 * `--emit DIR`: hands every fused node of the optimized model, described by its tensors'
 * names, dtypes and shapes, to the target's code generator.
 */
import type { Model } from './ir/graph.js';
import type { Target } from './op/target.js';
import type { Manifest } from '../codegen/manifest.js';
import { RmsfuseError } from './errors.js';

export async function emitKernels(_model: Model, _dir: string, target: Target): Promise<Manifest> {
  throw new RmsfuseError(`--emit is not available yet for target '${target}'`);
}
