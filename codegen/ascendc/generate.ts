/**
 * Ascend C generator: a pure function from a kernel spec to the kernel source, its tiling header
 * and a host launch snippet.
 *
 * The kernel follows the structure of CANN's ops-nn and ATB RMSNorm kernels (KERNELS.md, Ascend C
 * section): an `extern "C" __global__ __aicore__` entry that reads the tiling struct and runs a
 * kernel class with Init / Process / CopyIn / Compute / CopyOut; a TPipe with VECIN/VECOUT queues
 * of depth BUFFER_NUM = 2 and fp32 scratch in TBuf<VECCALC>; fp32 math in UB; 32-byte DataCopy
 * for aligned rows and DataCopyPad otherwise.
 *
 * Two code paths share the per-chunk math: the row modes (one or several whole rows per UB tile,
 * gamma/beta/bias loaded once per core) and split-D (a row streamed in chunks, read twice or, for
 * dynamic quantization, three times). The host tiling picks the path at run time.
 *
 * The arithmetic mirrors runtime/reference.ts step by step (fp32 rounding after each op, the same
 * roundings to T), so the only differences are the order of the sum of squares and 1/H as a
 * multiplication: outputs agree with the reference to an ulp of T and int8 to +-1.
 *
 * The text is assembled from small helpers, one per kernel member function; each returns the
 * lines of that function for the variant at hand. The helpers live in modules beside this one:
 * facts.ts (what a spec implies, names, line helpers), compute.ts (per-chunk math), modes.ts (row
 * modes and split-D), kernel.ts (kernel assembly) and host.ts (tiling header, host snippet).
 */
import type { AscendKernelSpec } from './spec.js';
import { factsOf } from './facts.js';
import { hostSnippet, tilingHeader } from './host.js';
import { kernelCpp } from './kernel.js';

export { CPP_TYPE } from './facts.js';

export interface AscendSources {
  /** `kernels/<id>.cpp`: the kernel. */
  kernelCpp: string;
  /** `kernels/<id>_tiling.h`: the tiling struct shared by host and kernel. */
  tilingHeader: string;
  /** `kernels/<id>_host.cpp`: ACL host code that launches the kernel with a tiling. */
  hostSnippet: string;
}

/** Kernel, tiling header and host snippet of a spec. Pure: equal specs give equal text. */
export function generateAscend(spec: AscendKernelSpec): AscendSources {
  const f = factsOf(spec);
  return { kernelCpp: kernelCpp(f), tilingHeader: tilingHeader(f), hostSnippet: hostSnippet(f) };
}
