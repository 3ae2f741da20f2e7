/** The fusion passes rmsfuse runs, in order. */
import type { Pass } from '../compiler/pass-manager.js';

export type OutputFormat = 'rmsfuse' | 'ort' | 'onnx23';

export interface FusionOptions {
  format: OutputFormat;
}

export function defaultPasses(_options: FusionOptions): Pass[] {
  return [];
}
