/** The fusion passes rmsfuse runs, in order. */
import type { Pass } from '../compiler/pass-manager.js';
import { fuseRmsNormPass } from './fuse-rms-norm.js';
import { lowerFormatPass } from './lower-format.js';

export type OutputFormat = 'rmsfuse' | 'ort' | 'onnx23';

export interface FusionOptions {
  format: OutputFormat;
}

/** Fuse every RMSNorm site (staged: norm, residual, quantization), then lower to the output format. */
export function defaultPasses(options: FusionOptions): Pass[] {
  return [fuseRmsNormPass(), lowerFormatPass(options.format)];
}

export { fuseRmsNormPass, STAGES } from './fuse-rms-norm.js';
