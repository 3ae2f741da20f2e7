/**
 * `DIR/manifest.json` of an `--emit DIR` (SPEC section 6): every fused node mapped to its
 * kernel, with its inputs and outputs. Shared by the WebGPU and Ascend emitters.
 */
import type { FusedAttributes, TensorDesc } from '../compiler/op/param.js';

export interface ManifestKernel {
  /** Kernel id: `<variant>_<hash of the spec>`; file names derive from it. */
  id: string;
  /** Paths relative to DIR. */
  files: Record<string, string>;
  /** The whole kernel spec the files were generated from. */
  spec: object;
}

export interface ManifestNode {
  kernel: string;
  opType: string;
  attributes: FusedAttributes;
  inputs: TensorDesc[];
  outputs: TensorDesc[];
}

export interface Manifest {
  rmsfuse: string;
  target: string;
  kernels: Record<string, ManifestKernel>;
  nodes: Record<string, ManifestNode>;
}
