/**
 * What the Ascend C generator knows about a spec (Facts, read once by factsOf), the C++ names of
 * its arguments (types, aliases, queues, locals), and the small line helpers every other module of
 * the generator writes its kernel text with (L, indent, method, chunkLoop).
 */
import { hasResidual, isDynamicQuant, isStaticQuant, type DType } from '../../compiler/op/param.js';
import { kernelId, kernelParams, type AscendKernelSpec, type KernelParam } from './spec.js';

export const CPP_TYPE: Record<DType, string> = {
  float32: 'float',
  float16: 'half',
  bfloat16: 'bfloat16_t',
  int8: 'int8_t',
  uint8: 'uint8_t',
  int32: 'int32_t',
  int64: 'int64_t',
};

/** Kernel-side type alias of each GM argument (declared as `using` at the top of the kernel). */
export const TYPE_ALIAS: Record<string, string> = {
  x: 'T',
  residual: 'T',
  y: 'T',
  sum: 'T',
  gamma: 'G',
  beta: 'BT',
  bias: 'BI',
  scale: 'SC',
  offset: 'OF',
  q: 'int8_t',
  rstd: 'float',
  scaleOut: 'float',
};

export const QUEUE: Record<string, string> = {
  x: 'inQueueX',
  residual: 'inQueueResidual',
  bias: 'inQueueBias',
  gamma: 'inQueueGamma',
  beta: 'inQueueBeta',
  y: 'outQueueY',
  sum: 'outQueueSum',
  q: 'outQueueQ',
};

/** Everything the generator reads from a spec, named once. */
export interface Facts {
  id: string;
  ns: string;
  spec: AscendKernelSpec;
  params: KernelParam[];
  dtypeOf: (name: string) => DType | undefined;
  tFloat: boolean;
  residual: boolean;
  pre: boolean;
  post: boolean;
  bias: boolean;
  beta: boolean;
  offset: boolean;
  staticQ: boolean;
  dynQ: boolean;
  quant: boolean;
  /** high_performance with a 16-bit T (with fp32 T it is the plain path: T(gamma) = gamma). */
  hp: boolean;
  gemma: boolean;
  y: boolean;
  q: boolean;
  rstd: boolean;
  perRow: boolean;
}

export function factsOf(spec: AscendKernelSpec): Facts {
  const p = spec.param;
  const params = kernelParams(spec);
  const has = (name: string): boolean => params.some((q) => q.name === name);
  const id = kernelId(spec);
  const f: Facts = {
    id,
    ns: `rmsfuse_${id}`,
    spec,
    params,
    dtypeOf: (name) => params.find((q) => q.name === name)?.dtype,
    tFloat: spec.xDType === 'float32',
    residual: hasResidual(p),
    pre: p.layerType === 'PreNorm',
    post: p.layerType === 'PostNorm',
    bias: has('bias'),
    beta: has('beta'),
    offset: has('offset'),
    staticQ: isStaticQuant(p),
    dynQ: isDynamicQuant(p),
    quant: p.quantType === 'int8',
    hp: p.precisionMode === 'high_performance' && spec.xDType !== 'float32',
    gemma: p.modelType === 'gemma',
    y: has('y'),
    q: has('q'),
    rstd: has('rstd'),
    perRow: params.some((q) => q.extent === 'perRow'),
  };
  if (f.quant && (f.hp || f.gemma || p.rstd)) {
    throw new Error(`${id}: quantization excludes high_performance, gemma and rstd (ATB's combination rules)`);
  }
  if (f.hp && f.gemma) throw new Error(`${id}: high_performance and gemma exclude each other`);
  // Every input but the quantization offset (an int8 zero point) is a float the kernel Casts to fp32.
  for (const q of params) {
    if (q.direction === 'in' && q.name !== 'offset' && !['float32', 'float16', 'bfloat16'].includes(q.dtype)) {
      throw new Error(`${id}: input '${q.name}' has dtype ${q.dtype}; a float type is needed`);
    }
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Text helpers

type Item = string | false | undefined | null | readonly string[];
/** Flattens items into lines, dropping false/undefined (so optional lines read as `cond && '...'`). */
export const L = (...items: Item[]): string[] =>
  items.flatMap((i) => (i === false || i === undefined || i === null ? [] : typeof i === 'string' ? [i] : [...i]));
export const indent = (lines: string[], n = 2): string[] => lines.map((l) => (l === '' ? '' : ' '.repeat(n) + l));
export const PB = 'PipeBarrier<PIPE_V>();';
export const RINT = 'RoundMode::CAST_RINT';
export const NONE = 'RoundMode::CAST_NONE';

/** A kernel member function: doc comment lines, signature, body. */
export function method(doc: string[], signature: string, body: string[]): string[] {
  return L(
    doc.map((d) => `// ${d}`),
    `__aicore__ inline ${signature} {`,
    indent(body),
    '}',
    '',
  );
}

/** `for (col ...) { body }` over the chunks of a row of numCol elements. */
export function chunkLoop(body: string[], nName = 'n'): string[] {
  return L(
    'for (uint32_t col = 0; col < numCol; col += ubFactor) {',
    indent(L(`const uint32_t ${nName} = Min(ubFactor, numCol - col);`, body)),
    '}',
  );
}

// ---------------------------------------------------------------------------------------------
// Argument names in the kernel

export const vectorParams = (f: Facts): KernelParam[] => f.params.filter((p) => p.extent === 'vector');
export const local = (p: KernelParam): string => `${p.name}Local`;
export const alias = (p: KernelParam): string => TYPE_ALIAS[p.name]!;
