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
 * lines of that function for the variant at hand.
 */
import { hasResidual, isDynamicQuant, isStaticQuant, type DType } from '../../compiler/op/param.js';
import { canonicalJson } from '../spec.js';
import { kernelId, kernelParams, type AscendKernelSpec, type KernelParam } from './spec.js';
import { TILING_BYTES, TILING_FIELDS } from './tiling-core.js';

export interface AscendSources {
  /** `kernels/<id>.cpp`: the kernel. */
  kernelCpp: string;
  /** `kernels/<id>_tiling.h`: the tiling struct shared by host and kernel. */
  tilingHeader: string;
  /** `kernels/<id>_host.cpp`: ACL host code that launches the kernel with a tiling. */
  hostSnippet: string;
}

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
const TYPE_ALIAS: Record<string, string> = {
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

const QUEUE: Record<string, string> = {
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
interface Facts {
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

function factsOf(spec: AscendKernelSpec): Facts {
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
const L = (...items: Item[]): string[] =>
  items.flatMap((i) => (i === false || i === undefined || i === null ? [] : typeof i === 'string' ? [i] : [...i]));
const indent = (lines: string[], n = 2): string[] => lines.map((l) => (l === '' ? '' : ' '.repeat(n) + l));
const PB = 'PipeBarrier<PIPE_V>();';
const RINT = 'RoundMode::CAST_RINT';
const NONE = 'RoundMode::CAST_NONE';

/** A kernel member function: doc comment lines, signature, body. */
function method(doc: string[], signature: string, body: string[]): string[] {
  return L(
    doc.map((d) => `// ${d}`),
    `__aicore__ inline ${signature} {`,
    indent(body),
    '}',
    '',
  );
}

/** `for (col ...) { body }` over the chunks of a row of numCol elements. */
function chunkLoop(body: string[], nName = 'n'): string[] {
  return L(
    'for (uint32_t col = 0; col < numCol; col += ubFactor) {',
    indent(L(`const uint32_t ${nName} = Min(ubFactor, numCol - col);`, body)),
    '}',
  );
}

// ---------------------------------------------------------------------------------------------
// Per-chunk math (shared by the row modes and split-D)

function sumChunk(f: Facts): string[] {
  if (!f.residual) return [];
  const bi = f.dtypeOf('bias');
  // Adds bias (length n) to an fp32 vector `to`.
  const addBias = (to: string): string[] =>
    !f.bias ? [] : bi === 'float32' ? [PB, `Add(${to}, ${to}, biasChunk, n);`] : [`Cast(tmpC, biasChunk, ${NONE}, n);`, PB, `Add(${to}, ${to}, tmpC, n);`];
  const body = f.tFloat
    ? L(PB, 'Add(dst, xChunk, residualChunk, n);', addBias('dst'))
    : L(
        PB,
        `Cast(tmpA, xChunk, ${NONE}, n);`,
        `Cast(tmpC, residualChunk, ${NONE}, n);`,
        PB,
        'Add(tmpA, tmpA, tmpC, n);',
        addBias('tmpA'),
        PB,
        `Cast(dst, tmpA, ${RINT}, n);`,
      );
  return method(
    ['dst = T(x + residual (+ bias)): fp32 adds, (x + residual) + bias, rounded to T once (the reference\'s order).'],
    `void SumChunk(const LocalTensor<T>& dst, const LocalTensor<T>& xChunk, const LocalTensor<T>& residualChunk${f.bias ? ', const LocalTensor<BI>& biasChunk' : ''}, uint32_t n)`,
    body,
  );
}

function squareChunk(f: Facts): string[] {
  const src = f.tFloat ? 's' : 'tmpA';
  return method(
    [
      'Sum of squares of a row, chunk by chunk, into tmpB (fp32): tmpB = s*s for the first chunk,',
      'tmpB += s*s for the others; RowRstd reduces it. Each helper starts with a barrier because its',
      'operands come from the previous helper\'s vector instructions.',
    ],
    'void SquareChunk(const LocalTensor<T>& s, uint32_t n, bool first)',
    L(
      PB,
      !f.tFloat && [`Cast(tmpA, s, ${NONE}, n);`, PB],
      'if (first) {',
      `  Mul(tmpB, ${src}, ${src}, n);`,
      '} else {',
      `  Mul(tmpA, ${src}, ${src}, n);`,
      `  ${PB}`,
      '  Add(tmpB, tmpB, tmpA, n);',
      '}',
    ),
  );
}

function reductions(f: Facts): string[] {
  return L(
    method(
      [
        'rstd = 1 / sqrt(sum * avgFactor + epsilon) from the accumulated squares, on the vector unit with',
        'Sqrt and Div (as the vendor\'s kernels: more accurate than Rsqrt), then handed to the scalar unit.',
      ],
      'float RowRstd(uint32_t firstChunk)',
      L(
        PB,
        'ReduceSum(red, tmpB, red[RED_WORK], firstChunk);',
        PB,
        'Muls(red, red, avgFactor, 1);',
        PB,
        'Adds(red, red, epsilon, 1);',
        PB,
        'Sqrt(red, red, 1);',
        PB,
        'Div(red, red[RED_ONES], red, 1);',
        'return ReadReduced();',
      ),
    ),
    method(
      ['Moves red[0] from the vector unit to a scalar register, fenced both ways.'],
      'float ReadReduced()',
      L(
        'event_t vToS = static_cast<event_t>(pipe.FetchEventID(HardEvent::V_S));',
        'SetFlag<HardEvent::V_S>(vToS);',
        'WaitFlag<HardEvent::V_S>(vToS);',
        'const float value = red.GetValue(RED_VALUE);',
        '// The next vector write of red must not overtake this scalar read.',
        'event_t sToV = static_cast<event_t>(pipe.FetchEventID(HardEvent::S_V));',
        'SetFlag<HardEvent::S_V>(sToV);',
        'WaitFlag<HardEvent::S_V>(sToV);',
        'return value;',
      ),
    ),
    f.dynQ &&
      method(
        [
          'Dynamic scale of a row: max(max|v| / 127, 2^-23). The floor makes an all-zero row quantize to 0',
          '(FLT_EPSILON, as vLLM) where the original graph divides 0 by 0.',
        ],
        'float RowDynScale(uint32_t firstChunk)',
        L(
          PB,
          'ReduceMax(red, tmpB, red[RED_WORK], firstChunk);',
          'const float scale = ReadReduced() / 127.0f;',
          'return scale > DYN_SCALE_FLOOR ? scale : DYN_SCALE_FLOOR;',
        ),
      ),
    f.dynQ &&
      method(
        ['Running max of |v| (v in tmpA) into tmpB, chunk by chunk.'],
        'void MaxAbsChunk(uint32_t n, bool first)',
        L(PB, 'if (first) {', '  Abs(tmpB, tmpA, n);', '} else {', '  Abs(tmpA, tmpA, n);', `  ${PB}`, '  Max(tmpB, tmpB, tmpA, n);', '}'),
      ),
  );
}

/** dst (fp32) = s * rstd * gamma' where gamma' is gamma, or 1 + gamma for Gemma. */
function normChunk(f: Facts): string[] {
  const g = f.dtypeOf('gamma');
  const scaled = f.tFloat ? ['Muls(dst, s, rstd, n);'] : [`Cast(dst, s, ${NONE}, n);`, PB, 'Muls(dst, dst, rstd, n);'];
  let gammaFactor: string[];
  if (!f.gemma) gammaFactor = g === 'float32' ? [PB, 'Mul(dst, dst, g, n);'] : [`Cast(tmpC, g, ${NONE}, n);`, PB, 'Mul(dst, dst, tmpC, n);'];
  else if (g === 'float32') gammaFactor = ['Adds(tmpC, g, 1.0f, n);', PB, 'Mul(dst, dst, tmpC, n);'];
  else gammaFactor = [`Cast(tmpC, g, ${NONE}, n);`, PB, 'Adds(tmpC, tmpC, 1.0f, n);', PB, 'Mul(dst, dst, tmpC, n);'];
  return method(
    [f.gemma ? 'dst = s * rstd * (1 + gamma), all in fp32 (Gemma).' : 'dst = s * rstd * gamma, all in fp32.'],
    'void NormChunk(const LocalTensor<float>& dst, const LocalTensor<T>& s, const LocalTensor<G>& g, uint32_t n, float rstd)',
    L(PB, scaled, gammaFactor),
  );
}

/** high_performance: y = T(T(s * rstd) * T(gamma)); only the gamma multiply is in T. */
function normChunkHp(f: Facts): string[] {
  if (!f.hp) return [];
  const g = f.dtypeOf('gamma')!;
  const head = [PB, `Cast(tmpA, s, ${NONE}, n);`, PB, 'Muls(tmpA, tmpA, rstd, n);', PB, `Cast(yChunk, tmpA, ${RINT}, n);`];
  if (f.spec.xDType === 'float16') {
    // gamma as half: used directly, or rounded from its own dtype into tmpB (free after RowRstd).
    let gamma: string[];
    let gh = 'g';
    if (g === 'float32') [gamma, gh] = [['LocalTensor<half> gammaHalf = tmpB.ReinterpretCast<half>();', `Cast(gammaHalf, g, ${RINT}, n);`], 'gammaHalf'];
    else if (g !== 'float16')
      [gamma, gh] = [['LocalTensor<half> gammaHalf = tmpB.ReinterpretCast<half>();', `Cast(tmpC, g, ${NONE}, n);`, PB, `Cast(gammaHalf, tmpC, ${RINT}, n);`], 'gammaHalf'];
    else gamma = [];
    return method(
      ['high_performance: yChunk = half(half(s * rstd) * half(gamma)); the gamma multiply runs in half (HF Llama fp16).'],
      'void NormChunkHp(const LocalTensor<T>& yChunk, const LocalTensor<T>& s, const LocalTensor<G>& g, uint32_t n, float rstd)',
      L(head, gamma, PB, `Mul(yChunk, yChunk, ${gh}, n);`),
    );
  }
  // bf16 has no vector multiply: the product of two bf16 values is exact in fp32, so an fp32
  // multiply of the two rounded factors, rounded once more, is the bf16 multiply.
  const gammaT =
    g === f.spec.xDType
      ? [`Cast(tmpC, g, ${NONE}, n);`]
      : g === 'float32'
        ? ['LocalTensor<T> gammaT = tmpB.ReinterpretCast<T>();', `Cast(gammaT, g, ${RINT}, n);`, PB, `Cast(tmpC, gammaT, ${NONE}, n);`]
        : ['LocalTensor<T> gammaT = tmpB.ReinterpretCast<T>();', `Cast(tmpC, g, ${NONE}, n);`, PB, `Cast(gammaT, tmpC, ${RINT}, n);`, PB, `Cast(tmpC, gammaT, ${NONE}, n);`];
  return method(
    ['high_performance in bf16: yChunk = T(T(s * rstd) * T(gamma)), the multiply of two T values done exactly in fp32.'],
    'void NormChunkHp(const LocalTensor<T>& yChunk, const LocalTensor<T>& s, const LocalTensor<G>& g, uint32_t n, float rstd)',
    L(head, PB, `Cast(tmpA, yChunk, ${NONE}, n);`, gammaT, PB, 'Mul(tmpA, tmpA, tmpC, n);', PB, `Cast(yChunk, tmpA, ${RINT}, n);`),
  );
}

function storeY(f: Facts): string[] {
  if (!f.y || f.tFloat || f.hp) return [];
  return method(['yChunk = T(tmpA).'], 'void StoreY(const LocalTensor<T>& yChunk, uint32_t n)', [PB, `Cast(yChunk, tmpA, ${RINT}, n);`]);
}

/** PostNorm static int8 returns y too and quantizes it: it rounds y through the y chunk instead. */
const quantizesY = (f: Facts): boolean => f.post && f.staticQ;

/** Whether QuantInput has work: rounding y to T (16-bit T), or adding beta. */
const quantInputNeeded = (f: Facts): boolean => f.quant && !quantizesY(f) && (!f.tFloat || f.beta);

function quantInput(f: Facts): string[] {
  if (!quantInputNeeded(f)) return [];
  const bt = f.dtypeOf('beta');
  const roundToT = f.tFloat ? [] : [PB, `Cast(vT, tmpA, ${RINT}, n);`, PB, `Cast(tmpA, vT, ${NONE}, n);`];
  const addBeta = !f.beta ? [] : bt === 'float32' ? [PB, 'Add(tmpA, tmpA, betaChunk, n);'] : [`Cast(tmpC, betaChunk, ${NONE}, n);`, PB, 'Add(tmpA, tmpA, tmpC, n);'];
  return method(
    [
      'tmpA <- what the original graph feeds its quantizer: the norm output rounded to T',
      f.beta ? 'plus beta, rounded to T again: T(T(y) + beta).' : '(T(y)).',
    ],
    `void QuantInput(${f.beta ? 'const LocalTensor<BT>& betaChunk, ' : ''}uint32_t n)`,
    L(!f.tFloat && 'LocalTensor<T> vT = tmpC.ReinterpretCast<T>();', roundToT, addBeta, f.beta && roundToT),
  );
}

function quantizeChunk(f: Facts): string[] {
  if (!f.quant) return [];
  return method(
    [
      `qChunk = sat_int8(round_half_even(v / scale)${f.offset ? ' + offset' : ''}): a true division (as QuantizeLinear), then`,
      'fp32 -> int32 with CAST_RINT (half to even) -> half (exact up to 2048; larger magnitudes saturate',
      'in int8 anyway) -> int8, which saturates.',
    ],
    'void QuantizeChunk(const LocalTensor<int8_t>& qChunk, const LocalTensor<float>& v, uint32_t n, float scale)',
    L(
      'LocalTensor<int32_t> vInt = tmpC.ReinterpretCast<int32_t>();',
      'LocalTensor<half> vHalf = tmpB.ReinterpretCast<half>();',
      'Duplicate(tmpC, scale, n);',
      PB,
      'Div(tmpA, v, tmpC, n);',
      PB,
      `Cast(vInt, tmpA, ${RINT}, n);`,
      PB,
      `Cast(vHalf, vInt, ${NONE}, n);`,
      f.offset && [PB, 'Adds(vHalf, vHalf, quantOffsetHalf, n);'],
      PB,
      `Cast(qChunk, vHalf, ${NONE}, n);`,
    ),
  );
}

/** Parameters of FinalChunk / DynChunk after s and g, for declarations and for call sites. */
function chunkArgs(f: Facts, what: 'final' | 'dyn'): { decl: string; call: (v: { beta: string; y: string; q: string }) => string } {
  const decl: string[] = [];
  const call: Array<(v: { beta: string; y: string; q: string }) => string> = [];
  if (f.beta) {
    decl.push('const LocalTensor<BT>& betaChunk');
    call.push((v) => v.beta);
  }
  if (what === 'final' && f.y) {
    decl.push('const LocalTensor<T>& yChunk');
    call.push((v) => v.y);
  }
  if (what === 'final' && f.q) {
    decl.push('const LocalTensor<int8_t>& qChunk');
    call.push((v) => v.q);
  }
  return { decl: decl.map((d) => `, ${d}`).join(''), call: (v) => call.map((c) => `, ${c(v)}`).join('') };
}

function finalChunk(f: Facts): string[] {
  const quantIn = quantInputNeeded(f) ? [`QuantInput(${f.beta ? 'betaChunk, ' : ''}n);`] : [];
  let body: string[];
  if (!f.quant) {
    if (f.hp) body = ['NormChunkHp(yChunk, s, g, n, rstd);'];
    else if (f.tFloat) body = ['NormChunk(yChunk, s, g, n, rstd);'];
    else body = ['NormChunk(tmpA, s, g, n, rstd);', 'StoreY(yChunk, n);'];
  } else if (quantizesY(f)) {
    // PostNorm int8 static: y is returned too, and q quantizes T(y).
    body = f.tFloat
      ? ['NormChunk(yChunk, s, g, n, rstd);', 'QuantizeChunk(qChunk, yChunk, n, quantScale);']
      : ['NormChunk(tmpA, s, g, n, rstd);', 'StoreY(yChunk, n);', PB, `Cast(tmpA, yChunk, ${NONE}, n);`, 'QuantizeChunk(qChunk, tmpA, n, quantScale);'];
  } else {
    body = L('NormChunk(tmpA, s, g, n, rstd);', quantIn, `QuantizeChunk(qChunk, tmpA, n, ${f.dynQ ? 'scale' : 'quantScale'});`);
  }
  return method(
    ['The output chunk of a row from its source chunk s and gamma chunk g.'],
    `void FinalChunk(const LocalTensor<T>& s, const LocalTensor<G>& g${chunkArgs(f, 'final').decl}, uint32_t n, float rstd${f.dynQ ? ', float scale' : ''})`,
    body,
  );
}

function dynChunk(f: Facts): string[] {
  if (!f.dynQ) return [];
  return method(
    ['Dynamic quantization, first look at a chunk: v = the quantizer input, folded into the row\'s max |v|.'],
    `void DynChunk(const LocalTensor<T>& s, const LocalTensor<G>& g${chunkArgs(f, 'dyn').decl}, uint32_t n, float rstd, bool first)`,
    L('NormChunk(tmpA, s, g, n, rstd);', quantInputNeeded(f) && `QuantInput(${f.beta ? 'betaChunk, ' : ''}n);`, 'MaxAbsChunk(n, first);'),
  );
}

// ---------------------------------------------------------------------------------------------
// Per-row outputs (rstd, dynamic scale): gathered in UB, written 32 bytes or more at a time

function rowOutputs(f: Facts): string[] {
  if (!f.perRow) return [];
  const args = L(f.rstd && 'float rstd', f.dynQ && 'float scale').join(', ');
  return L(
    method(
      ['Keeps a row\'s per-row outputs in UB until FlushRowOutputs writes a whole batch.'],
      `void PutRowOutputs(${args})`,
      L(f.rstd && 'rstdLocal.SetValue(gathered, rstd);', f.dynQ && 'dynScaleLocal.SetValue(gathered, scale);', '++gathered;'),
    ),
    method(
      ['Writes the gathered per-row outputs: one DMA per batch instead of 4 bytes per row.'],
      'void FlushRowOutputs()',
      L(
        'if (gathered == 0) return;',
        'event_t sToMte3 = static_cast<event_t>(pipe.FetchEventID(HardEvent::S_MTE3));',
        'SetFlag<HardEvent::S_MTE3>(sToMte3);',
        'WaitFlag<HardEvent::S_MTE3>(sToMte3);',
        f.rstd && 'CopyRowsOut(rstdGm[gatherStart], rstdLocal, 1, gathered);',
        f.dynQ && 'CopyRowsOut(scaleOutGm[gatherStart], dynScaleLocal, 1, gathered);',
        '// The next SetValue must not overwrite values MTE3 is still copying out.',
        'event_t mte3ToS = static_cast<event_t>(pipe.FetchEventID(HardEvent::MTE3_S));',
        'SetFlag<HardEvent::MTE3_S>(mte3ToS);',
        'WaitFlag<HardEvent::MTE3_S>(mte3ToS);',
        'gatherStart += gathered;',
        'gathered = 0;',
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Row modes: whole rows in UB

const rowParams = (f: Facts, dir: 'in' | 'out'): KernelParam[] => f.params.filter((p) => p.extent === 'rows' && p.direction === dir);
const vectorParams = (f: Facts): KernelParam[] => f.params.filter((p) => p.extent === 'vector');
const local = (p: KernelParam): string => `${p.name}Local`;
const alias = (p: KernelParam): string => TYPE_ALIAS[p.name]!;

/** Row-loop call arguments of the final chunk in the row modes. */
function rowChunkCall(f: Facts, what: 'final' | 'dyn'): string {
  return chunkArgs(f, what).call({ beta: 'betaLocal[col]', y: 'yLocal[off + col]', q: 'qLocal[offQ + col]' });
}

function rowMode(f: Facts): string[] {
  const ins = rowParams(f, 'in');
  const outs = rowParams(f, 'out');
  const vecs = vectorParams(f);
  const src = f.pre ? 'sumLocal' : 'xLocal';
  const perRowArgs = L(f.rstd && 'rstd', f.dynQ && 'scale').join(', ');
  const rowBody = L(
    'const uint32_t off = r * numColAlign;',
    f.q && 'const uint32_t offQ = r * AlignUp(numCol, BLOCK_BYTES);',
    f.residual &&
      chunkLoop([`SumChunk(${src}[off + col], xLocal[off + col], residualLocal[off + col]${f.bias ? ', biasLocal[col]' : ''}, n);`]),
    `const LocalTensor<T> s = ${src}[off];`,
    chunkLoop(['SquareChunk(s[col], n, col == 0);']),
    'const float rstd = RowRstd(Min(ubFactor, numCol));',
    f.dynQ && chunkLoop([`DynChunk(s[col], gammaLocal[col]${rowChunkCall(f, 'dyn')}, n, rstd, col == 0);`]),
    f.dynQ && 'const float scale = RowDynScale(Min(ubFactor, numCol));',
    chunkLoop([`FinalChunk(s[col], gammaLocal[col]${rowChunkCall(f, 'final')}, n, rstd${f.dynQ ? ', scale' : ''});`]),
    f.perRow && `PutRowOutputs(${perRowArgs});`,
  );
  return L(
    method(
      ['Row modes: tiles of rowFactor whole rows; gamma (beta, bias) stay in UB for all of this core\'s rows.'],
      'void ProcessRows()',
      L(
        'LoadVectors();',
        'for (uint32_t done = 0; done < rowCount; done += rowFactor) {',
        '  const uint32_t rows = Min(rowFactor, rowCount - done);',
        '  CopyIn(done, rows);',
        '  Compute(rows);',
        '  CopyOut(done, rows);',
        '}',
        f.perRow && 'FlushRowOutputs();',
        vecs.map((p) => `${QUEUE[p.name]}.FreeTensor(${local(p)});`),
      ),
    ),
    method(
      ['Loads the per-H tensors once per core (their GM traffic is paid once per core, not per row).'],
      'void LoadVectors()',
      vecs.flatMap((p) => [
        `${local(p)} = ${QUEUE[p.name]}.AllocTensor<${alias(p)}>();`,
        `CopyRowsIn(${local(p)}, ${p.name}Gm, 1, numCol);`,
        `${QUEUE[p.name]}.EnQue(${local(p)});`,
        `${local(p)} = ${QUEUE[p.name]}.DeQue<${alias(p)}>();`,
      ]),
    ),
    method(
      ['GM -> UB: `rows` rows starting at this core\'s row `done`.'],
      'void CopyIn(uint32_t done, uint32_t rows)',
      L(
        'const uint64_t offset = static_cast<uint64_t>(done) * numCol;',
        ins.flatMap((p) => [
          `LocalTensor<T> ${local(p)} = ${QUEUE[p.name]}.AllocTensor<T>();`,
          `CopyRowsIn(${local(p)}, ${p.name}Gm[offset], rows, numCol);`,
          `${QUEUE[p.name]}.EnQue(${local(p)});`,
        ]),
      ),
    ),
    method(
      ['Normalizes the rows of a tile, one after the other, each in chunks of ubFactor columns.'],
      'void Compute(uint32_t rows)',
      L(
        ins.map((p) => `LocalTensor<T> ${local(p)} = ${QUEUE[p.name]}.DeQue<T>();`),
        outs.map((p) => `LocalTensor<${alias(p)}> ${local(p)} = ${QUEUE[p.name]}.AllocTensor<${alias(p)}>();`),
        f.perRow && 'if (gathered + rows > gatherFactor) FlushRowOutputs();',
        'for (uint32_t r = 0; r < rows; ++r) {',
        indent(rowBody),
        '}',
        outs.map((p) => `${QUEUE[p.name]}.EnQue(${local(p)});`),
        ins.map((p) => `${QUEUE[p.name]}.FreeTensor(${local(p)});`),
      ),
    ),
    method(
      ['UB -> GM: the tile\'s output rows.'],
      'void CopyOut(uint32_t done, uint32_t rows)',
      L(
        'const uint64_t offset = static_cast<uint64_t>(done) * numCol;',
        outs.flatMap((p) => [
          `LocalTensor<${alias(p)}> ${local(p)} = ${QUEUE[p.name]}.DeQue<${alias(p)}>();`,
          `CopyRowsOut(${p.name}Gm[offset], ${local(p)}, rows, numCol);`,
          `${QUEUE[p.name]}.FreeTensor(${local(p)});`,
        ]),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Split-D: rows longer than UB holds, streamed in chunks

function splitMode(f: Facts): string[] {
  const beta = f.beta ? 'betaChunk' : '';
  // Loads the source chunk s (and gamma, beta) of a later pass over the row.
  const loads = L(
    'LocalTensor<T> s = LoadSource(rowOffset + col, col, n);',
    'LocalTensor<G> gammaChunk = LoadChunk(inQueueGamma, gammaGm[col], n);',
    f.beta && 'LocalTensor<BT> betaChunk = LoadChunk(inQueueBeta, betaGm[col], n);',
  );
  const frees = L('inQueueX.FreeTensor(s);', 'inQueueGamma.FreeTensor(gammaChunk);', f.beta && 'inQueueBeta.FreeTensor(betaChunk);');
  const call = (what: 'final' | 'dyn'): string => chunkArgs(f, what).call({ beta, y: 'yChunk', q: 'qChunk' });

  let firstPass: string[];
  if (!f.residual) {
    firstPass = ['LocalTensor<T> xChunk = LoadChunk(inQueueX, xGm[rowOffset + col], n);', 'SquareChunk(xChunk, n, col == 0);', 'inQueueX.FreeTensor(xChunk);'];
  } else {
    const dst = f.pre ? 'sumChunk' : 'xChunk';
    firstPass = L(
      'LocalTensor<T> xChunk = LoadChunk(inQueueX, xGm[rowOffset + col], n);',
      'LocalTensor<T> residualChunk = LoadChunk(inQueueResidual, residualGm[rowOffset + col], n);',
      f.bias && 'LocalTensor<BI> biasChunk = LoadChunk(inQueueBias, biasGm[col], n);',
      f.pre && 'LocalTensor<T> sumChunk = outQueueSum.AllocTensor<T>();',
      `SumChunk(${dst}, xChunk, residualChunk${f.bias ? ', biasChunk' : ''}, n);`,
      `SquareChunk(${dst}, n, col == 0);`,
      'inQueueX.FreeTensor(xChunk);',
      'inQueueResidual.FreeTensor(residualChunk);',
      f.bias && 'inQueueBias.FreeTensor(biasChunk);',
      f.pre && 'StoreChunk(outQueueSum, sumGm[rowOffset + col], sumChunk, n);',
    );
  }

  let loadSource: string[];
  if (!f.residual) loadSource = ['return LoadChunk(inQueueX, xGm[offset], n);'];
  else if (f.pre) loadSource = ['// The sum this row\'s first pass wrote (already rounded to T, as the norm reads it).', 'return LoadChunk(inQueueX, sumGm[offset], n);'];
  else
    loadSource = L(
      '// PostNorm writes no sum: recompute it from x and residual (bitwise the same as the first pass).',
      'LocalTensor<T> xChunk = LoadChunk(inQueueX, xGm[offset], n);',
      'LocalTensor<T> residualChunk = LoadChunk(inQueueResidual, residualGm[offset], n);',
      f.bias && 'LocalTensor<BI> biasChunk = LoadChunk(inQueueBias, biasGm[col], n);',
      `SumChunk(xChunk, xChunk, residualChunk${f.bias ? ', biasChunk' : ''}, n);`,
      'inQueueResidual.FreeTensor(residualChunk);',
      f.bias && 'inQueueBias.FreeTensor(biasChunk);',
      'return xChunk;',
    );

  const perRowArgs = L(f.rstd && 'rstd', f.dynQ && 'scale').join(', ');
  return L(
    method(
      [
        'Split-D: a row does not fit in UB. Pass 1 streams it for the sum of squares (and writes the',
        `residual sum); ${f.dynQ ? 'pass 2 finds max |v|, pass 3' : 'pass 2'} streams it again and writes the outputs. x (or the sum)`,
        'and gamma are read once per pass: the price of rows longer than UB.',
      ],
      'void ProcessSplitD()',
      L(
        'for (uint32_t r = 0; r < rowCount; ++r) {',
        indent(
          L(
            'const uint64_t rowOffset = static_cast<uint64_t>(r) * numCol;',
            chunkLoop(firstPass),
            'const float rstd = RowRstd(Min(ubFactor, numCol));',
            f.pre && [
              '// The next pass reads back the sum just written: GM write (MTE3) before GM read (MTE2).',
              'event_t mte3ToMte2 = static_cast<event_t>(pipe.FetchEventID(HardEvent::MTE3_MTE2));',
              'SetFlag<HardEvent::MTE3_MTE2>(mte3ToMte2);',
              'WaitFlag<HardEvent::MTE3_MTE2>(mte3ToMte2);',
            ],
            f.dynQ && chunkLoop(L(loads, `DynChunk(s, gammaChunk${call('dyn')}, n, rstd, col == 0);`, frees)),
            f.dynQ && 'const float scale = RowDynScale(Min(ubFactor, numCol));',
            chunkLoop(
              L(
                loads,
                f.y && 'LocalTensor<T> yChunk = outQueueY.AllocTensor<T>();',
                f.q && 'LocalTensor<int8_t> qChunk = outQueueQ.AllocTensor<int8_t>();',
                `FinalChunk(s, gammaChunk${call('final')}, n, rstd${f.dynQ ? ', scale' : ''});`,
                frees,
                f.y && 'StoreChunk(outQueueY, yGm[rowOffset + col], yChunk, n);',
                f.q && 'StoreChunk(outQueueQ, qGm[rowOffset + col], qChunk, n);',
              ),
            ),
            f.perRow && [`PutRowOutputs(${perRowArgs});`, 'if (gathered == gatherFactor) FlushRowOutputs();'],
          ),
        ),
        '}',
        f.perRow && 'FlushRowOutputs();',
      ),
    ),
    method(
      ['The source chunk s of a later pass (dequeued from inQueueX; the caller frees it).'],
      'LocalTensor<T> LoadSource(uint64_t offset, uint32_t col, uint32_t n)',
      L(!(f.residual && f.post && f.bias) && '(void)col;', loadSource),
    ),
    [
      '// GM -> UB through a queue: one chunk of n elements.',
      'template <typename U, typename Q>',
      '__aicore__ inline LocalTensor<U> LoadChunk(Q& queue, const GlobalTensor<U>& src, uint32_t n) {',
      '  LocalTensor<U> t = queue.template AllocTensor<U>();',
      '  CopyRowsIn(t, src, 1, n);',
      '  queue.EnQue(t);',
      '  return queue.template DeQue<U>();',
      '}',
      '',
      '// UB -> GM through a queue: one computed chunk of n elements.',
      'template <typename U, typename Q>',
      '__aicore__ inline void StoreChunk(Q& queue, const GlobalTensor<U>& dst, LocalTensor<U>& t, uint32_t n) {',
      '  queue.EnQue(t);',
      '  LocalTensor<U> out = queue.template DeQue<U>();',
      '  CopyRowsOut(dst, out, 1, n);',
      '  queue.FreeTensor(out);',
      '}',
      '',
    ],
  );
}

// ---------------------------------------------------------------------------------------------
// Init, members, entry

const gmType = (p: KernelParam): string => alias(p);

function init(f: Facts): string[] {
  const gmArgs = f.params.map((p) => `GM_ADDR ${p.name}`).join(', ');
  const windows = f.params.map((p) => {
    const t = gmType(p);
    switch (p.extent) {
      case 'rows':
        return `${p.name}Gm.SetGlobalBuffer((__gm__ ${t}*)${p.name} + first, count);`;
      case 'vector':
        return `${p.name}Gm.SetGlobalBuffer((__gm__ ${t}*)${p.name}, NUM_COL);`;
      case 'perRow':
        return `${p.name}Gm.SetGlobalBuffer((__gm__ ${t}*)${p.name} + rowStart, rowCount);`;
      case 'scalar':
        return `${p.name}Gm.SetGlobalBuffer((__gm__ ${t}*)${p.name}, 1);`;
    }
  });
  const rowBuffers = f.params
    .filter((p) => p.extent === 'rows')
    .map((p) =>
      p.name === 'q'
        ? `pipe.InitBuffer(outQueueQ, bufferNum, rowFactor * AlignUp(NUM_COL, BLOCK_BYTES) * sizeof(int8_t));`
        : `pipe.InitBuffer(${QUEUE[p.name]}, bufferNum, rowFactor * numColAlign * sizeof(T));`,
    );
  const vectorBuffers = vectorParams(f).map((p) => `pipe.InitBuffer(${QUEUE[p.name]}, 1, AlignUp(NUM_COL, BLOCK_BYTES / sizeof(${alias(p)})) * sizeof(${alias(p)}));`);
  const splitBuffers = f.params
    .filter((p) => p.extent === 'rows' || p.extent === 'vector')
    .map((p) => `pipe.InitBuffer(${QUEUE[p.name]}, bufferNum, ubFactor * sizeof(${alias(p)}));`);
  return method(
    ['Reads the tiling, sets this core\'s GM windows and carves UB for the chosen mode.'],
    `void Init(${gmArgs}, const RmsNormTilingData& tiling)`,
    L(
      '// H is static in the spec (constant folding); the tiling carries the same value for the host.',
      'numCol = NUM_COL;',
      'numColAlign = tiling.numColAlign;',
      'rowFactor = tiling.rowFactor;',
      'ubFactor = tiling.ubFactor;',
      'mode = tiling.mode;',
      'bufferNum = tiling.bufferNum;',
      f.perRow && 'gatherFactor = tiling.gatherFactor;',
      'epsilon = tiling.epsilon;',
      'avgFactor = tiling.avgFactor;',
      '// This core\'s rows: [rowStart, rowStart + rowCount).',
      'const uint32_t rowStart = GetBlockIdx() * tiling.blockFactor;',
      'rowCount = Min(tiling.blockFactor, tiling.numRow - rowStart);',
      'const uint64_t first = static_cast<uint64_t>(rowStart) * NUM_COL;',
      'const uint64_t count = static_cast<uint64_t>(rowCount) * NUM_COL;',
      f.params.some((p) => p.extent === 'rows') ? [] : ['(void)first;', '(void)count;'],
      windows,
      'if (mode == MODE_SPLIT_D) {',
      indent(splitBuffers),
      '} else {',
      indent(L(rowBuffers, vectorBuffers)),
      '}',
      'pipe.InitBuffer(calcBufA, ubFactor * sizeof(float));',
      'pipe.InitBuffer(calcBufB, ubFactor * sizeof(float));',
      'pipe.InitBuffer(calcBufC, ubFactor * sizeof(float));',
      'pipe.InitBuffer(redBuf, (RED_WORK + AlignUp(CeilDiv(ubFactor, REPEAT_FLOATS), 8)) * sizeof(float));',
      f.rstd && 'pipe.InitBuffer(rstdBuf, gatherFactor * sizeof(float));',
      f.dynQ && 'pipe.InitBuffer(dynScaleBuf, gatherFactor * sizeof(float));',
      'tmpA = calcBufA.Get<float>();',
      'tmpB = calcBufB.Get<float>();',
      'tmpC = calcBufC.Get<float>();',
      'red = redBuf.Get<float>();',
      f.rstd && 'rstdLocal = rstdBuf.Get<float>();',
      f.dynQ && 'dynScaleLocal = dynScaleBuf.Get<float>();',
      'Duplicate(red[RED_ONES], 1.0f, 8);  // numerator of 1 / sqrt(mean + epsilon)',
      f.quant && 'SetDeqScale(static_cast<half>(1.0f));  // int32 -> half conversion scale',
      f.staticQ && 'quantScale = static_cast<float>(scaleGm.GetValue(0));',
      f.offset && 'quantOffsetHalf = static_cast<half>(static_cast<float>(offsetGm.GetValue(0)));',
    ),
  );
}

function members(f: Facts): string[] {
  const queues = f.params
    .filter((p) => p.extent === 'rows' || p.extent === 'vector')
    .map((p) => `TQue<QuePosition::${p.direction === 'in' ? 'VECIN' : 'VECOUT'}, BUFFER_NUM> ${QUEUE[p.name]};`);
  return L(
    'TPipe pipe;',
    queues,
    'TBuf<QuePosition::VECCALC> calcBufA, calcBufB, calcBufC, redBuf;',
    f.rstd && 'TBuf<QuePosition::VECCALC> rstdBuf;',
    f.dynQ && 'TBuf<QuePosition::VECCALC> dynScaleBuf;',
    f.params.map((p) => `GlobalTensor<${gmType(p)}> ${p.name}Gm;`),
    '// fp32 scratch of ubFactor elements: values (A), accumulator / 16-bit temp (B), operand / temp (C).',
    'LocalTensor<float> tmpA, tmpB, tmpC;',
    '// red[RED_VALUE] reduction result, red[RED_ONES..] ones, red[RED_WORK..] ReduceSum work area.',
    'LocalTensor<float> red;',
    f.rstd && 'LocalTensor<float> rstdLocal;',
    f.dynQ && 'LocalTensor<float> dynScaleLocal;',
    vectorParams(f).map((p) => `LocalTensor<${alias(p)}> ${local(p)};  // resident in the row modes`),
    'uint32_t numCol = 0, numColAlign = 0, rowCount = 0, rowFactor = 0, ubFactor = 0, mode = 0, bufferNum = 0;',
    f.perRow && 'uint32_t gatherFactor = 0, gathered = 0, gatherStart = 0;',
    'float epsilon = 0, avgFactor = 0;',
    f.staticQ && 'float quantScale = 1.0f;',
    f.offset && 'half quantOffsetHalf = static_cast<half>(0.0f);',
  );
}

function typeAliases(f: Facts): string[] {
  const seen = new Set<string>();
  const lines: string[] = [];
  const docs: Record<string, string> = {
    T: 'x, residual, y, sum',
    G: 'gamma',
    BT: 'beta',
    BI: 'bias',
    SC: 'static quantization scale',
    OF: 'static quantization offset',
  };
  for (const p of f.params) {
    const a = TYPE_ALIAS[p.name]!;
    if (!(a in docs) || seen.has(a)) continue;
    seen.add(a);
    lines.push(`using ${a} = ${CPP_TYPE[p.dtype]};  // ${docs[a]}`);
  }
  return lines;
}

function kernelCpp(f: Facts): string {
  const { spec } = f;
  const gmArgs = f.params.map((p) => `GM_ADDR ${p.name}`).join(', ');
  const classBody = L(
    'public:',
    indent(L('__aicore__ inline KernelRmsNorm() {}', '', init(f), method([], 'void Process()', ['if (mode == MODE_SPLIT_D) ProcessSplitD();', 'else ProcessRows();']))),
    'private:',
    indent(
      L(
        rowMode(f),
        splitMode(f),
        sumChunk(f),
        squareChunk(f),
        reductions(f),
        normChunk(f),
        normChunkHp(f),
        storeY(f),
        quantInput(f),
        quantizeChunk(f),
        dynChunk(f),
        finalChunk(f),
        rowOutputs(f),
        members(f),
      ),
    ),
  );
  return L(
    `// ${f.id}: RMSNorm kernel generated by rmsfuse (codegen/ascendc). Do not edit.`,
    `// Spec: ${canonicalJson(spec)}`,
    `// Arguments: ${f.params.map((p) => `${p.name} (${p.direction}, ${p.dtype})`).join(', ')}.`,
    '// Tiling (kernels/tiling-core.ts): several rows per UB tile, one row, or split-D for rows',
    '// longer than UB holds; GM traffic is the minimum in the row modes (inputs read once, gamma once',
    '// per core), split-D reads the row and gamma once per pass.',
    '#include "kernel_operator.h"',
    `#include "${f.id}_tiling.h"`,
    '',
    `namespace ${f.ns} {`,
    'using namespace AscendC;',
    '',
    typeAliases(f),
    '',
    'constexpr int32_t BUFFER_NUM = 2;  // queue depth: the DMA of one tile overlaps the compute of another',
    `constexpr uint32_t NUM_COL = ${spec.H};  // H`,
    'constexpr uint32_t MODE_SPLIT_D = 2;',
    'constexpr uint32_t BLOCK_BYTES = 32;',
    'constexpr uint32_t REPEAT_FLOATS = 64;  // fp32 elements per 256-byte vector repeat',
    'constexpr uint32_t RED_VALUE = 0, RED_ONES = 8, RED_WORK = 16;',
    f.dynQ && 'constexpr float DYN_SCALE_FLOOR = 1.1920928955078125e-07f;  // 2^-23',
    '',
    '__aicore__ inline uint32_t CeilDiv(uint32_t a, uint32_t b) { return (a + b - 1) / b; }',
    '__aicore__ inline uint32_t AlignUp(uint32_t a, uint32_t b) { return CeilDiv(a, b) * b; }',
    '__aicore__ inline uint32_t Min(uint32_t a, uint32_t b) { return a < b ? a : b; }',
    '',
    '// GM -> UB: `rows` back-to-back GM rows of `cols` elements into UB rows that start on 32-byte',
    '// boundaries. Whole 32-byte rows go with DataCopy, others with DataCopyPad.',
    'template <typename U>',
    '__aicore__ inline void CopyRowsIn(const LocalTensor<U>& dst, const GlobalTensor<U>& src, uint32_t rows, uint32_t cols) {',
    '  if (cols * sizeof(U) % BLOCK_BYTES == 0) {',
    '    DataCopy(dst, src, rows * cols);',
    '  } else {',
    '    DataCopyExtParams params{static_cast<uint16_t>(rows), static_cast<uint32_t>(cols * sizeof(U)), 0, 0, 0};',
    '    DataCopyPadExtParams<U> pad{false, 0, 0, U(0)};',
    '    DataCopyPad(dst, src, params, pad);',
    '  }',
    '}',
    '',
    '// UB -> GM, the inverse of CopyRowsIn.',
    'template <typename U>',
    '__aicore__ inline void CopyRowsOut(const GlobalTensor<U>& dst, const LocalTensor<U>& src, uint32_t rows, uint32_t cols) {',
    '  if (cols * sizeof(U) % BLOCK_BYTES == 0) {',
    '    DataCopy(dst, src, rows * cols);',
    '  } else {',
    '    DataCopyExtParams params{static_cast<uint16_t>(rows), static_cast<uint32_t>(cols * sizeof(U)), 0, 0, 0};',
    '    DataCopyPad(dst, src, params);',
    '  }',
    '}',
    '',
    'class KernelRmsNorm {',
    classBody,
    '};',
    '',
    `}  // namespace ${f.ns}`,
    '',
    `extern "C" __global__ __aicore__ void ${f.id}(${gmArgs}, GM_ADDR workspace, GM_ADDR tiling) {`,
    '  (void)workspace;  // no workspace needed',
    '  GET_TILING_DATA(tilingData, tiling);',
    `  ${f.ns}::KernelRmsNorm op;`,
    `  op.Init(${f.params.map((p) => p.name).join(', ')}, tilingData);`,
    '  op.Process();',
    '}',
    '',
  ).join('\n');
}

function tilingHeader(f: Facts): string {
  const guard = `RMSFUSE_${f.id.toUpperCase()}_TILING_H`;
  return L(
    `// Tiling struct of ${f.id} (generated by rmsfuse). Every rmsfuse RMSNorm kernel shares this`,
    '// layout; the launcher\'s serializeTiling (kernels/tiling-core.ts) writes these bytes.',
    `#ifndef ${guard}`,
    `#define ${guard}`,
    '',
    '#include <cstddef>',
    '#include <cstdint>',
    '',
    '#ifndef RMSFUSE_RMS_NORM_TILING_DATA',
    '#define RMSFUSE_RMS_NORM_TILING_DATA',
    'struct RmsNormTilingData {',
    TILING_FIELDS.map((fd) => `  ${fd.type} ${fd.name};  // ${fd.doc}`),
    '};',
    `static_assert(sizeof(RmsNormTilingData) == ${TILING_BYTES}, "tiling layout: size");`,
    TILING_FIELDS.map((fd, i) => `static_assert(offsetof(RmsNormTilingData, ${fd.name}) == ${i * 4}, "tiling layout: ${fd.name}");`),
    '#endif',
    '',
    '// Kernel side: the direct-launch kernel reads the struct from its tiling argument.',
    '#if defined(GET_TILING_DATA_WITH_STRUCT) && !defined(GET_TILING_DATA)',
    '#define GET_TILING_DATA(var, tiling) GET_TILING_DATA_WITH_STRUCT(RmsNormTilingData, var, tiling)',
    '#endif',
    '',
    `#endif  // ${guard}`,
    '',
  ).join('\n');
}

const EXTENT_TEXT: Record<KernelParam['extent'], string> = { rows: 'rows x H elements', vector: 'H elements', perRow: 'one per row', scalar: 'one element' };

function hostSnippet(f: Facts): string {
  const ins = f.params.filter((p) => p.direction === 'in');
  const outs = f.params.filter((p) => p.direction === 'out');
  const fields = L(
    ins.map((p) => `  const void* ${p.name};  // ${p.dtype}, ${EXTENT_TEXT[p.extent]}`),
    outs.map((p) => `  void* ${p.name};  // ${p.dtype}, ${EXTENT_TEXT[p.extent]}`),
    f.params.map((p) => `  size_t ${p.name}Bytes;`),
  );
  return L(
    `// Host-side launch of ${f.id} with the CANN runtime (ACL), generated by rmsfuse.`,
    '// Not built here (no CANN on this machine); it is kept in step with the kernel by golden tests.',
    `// The tiling and block count come from the TS launcher (kernels/${f.id}.ts, tiling()), which reads`,
    '// the actual row count; with a real device, pass it the platform\'s vector core count and UB size.',
    '#include <cstddef>',
    '#include <cstdint>',
    '',
    '#include "acl/acl.h"',
    '#include "kernel_operator.h"',
    `#include "${f.id}_tiling.h"`,
    '',
    `extern "C" __global__ __aicore__ void ${f.id}(${f.params.map((p) => `GM_ADDR ${p.name}`).join(', ')}, GM_ADDR workspace, GM_ADDR tiling);`,
    '',
    'namespace {',
    '// Device memory freed on every path out of the launch.',
    'struct DeviceBuffer {',
    '  void* ptr = nullptr;',
    '  ~DeviceBuffer() {',
    '    if (ptr != nullptr) aclrtFree(ptr);',
    '  }',
    '  aclError Upload(const void* host, size_t bytes) {',
    '    aclError err = aclrtMalloc(&ptr, bytes, ACL_MEM_MALLOC_HUGE_FIRST);',
    '    if (err != ACL_SUCCESS || host == nullptr) return err;',
    '    return aclrtMemcpy(ptr, bytes, host, bytes, ACL_MEMCPY_HOST_TO_DEVICE);',
    '  }',
    '  GM_ADDR Gm() const { return static_cast<GM_ADDR>(ptr); }',
    '};',
    '}  // namespace',
    '',
    `// Host buffers of one launch, in the kernel's argument order.`,
    `struct ${pascal(f.id)}Buffers {`,
    fields,
    '};',
    '',
    '#define RMSFUSE_ACL_CHECK(expr)               \\',
    '  do {                                        \\',
    '    aclError rmsfuseErr = (expr);             \\',
    '    if (rmsfuseErr != ACL_SUCCESS) return rmsfuseErr; \\',
    '  } while (0)',
    '',
    '// Copies the inputs to the device, launches blockDim cores, waits, copies the outputs back.',
    `aclError Launch_${f.id}(aclrtStream stream, uint32_t blockDim, const RmsNormTilingData& tilingData, ${pascal(f.id)}Buffers& host) {`,
    f.params.map((p) => `  DeviceBuffer ${p.name}Device;`),
    '  DeviceBuffer tilingDevice;',
    ins.map((p) => `  RMSFUSE_ACL_CHECK(${p.name}Device.Upload(host.${p.name}, host.${p.name}Bytes));`),
    outs.map((p) => `  RMSFUSE_ACL_CHECK(${p.name}Device.Upload(nullptr, host.${p.name}Bytes));`),
    '  RMSFUSE_ACL_CHECK(tilingDevice.Upload(&tilingData, sizeof(RmsNormTilingData)));',
    `  ${f.id}<<<blockDim, nullptr, stream>>>(${f.params.map((p) => `${p.name}Device.Gm()`).join(', ')}, nullptr, tilingDevice.Gm());`,
    '  RMSFUSE_ACL_CHECK(aclrtSynchronizeStream(stream));',
    outs.map((p) => `  RMSFUSE_ACL_CHECK(aclrtMemcpy(host.${p.name}, host.${p.name}Bytes, ${p.name}Device.ptr, host.${p.name}Bytes, ACL_MEMCPY_DEVICE_TO_HOST));`),
    '  return ACL_SUCCESS;',
    '}',
    '',
  ).join('\n');
}

const pascal = (id: string): string => id.replace(/(^|_)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase());

/** Kernel, tiling header and host snippet of a spec. Pure: equal specs give equal text. */
export function generateAscend(spec: AscendKernelSpec): AscendSources {
  const f = factsOf(spec);
  return { kernelCpp: kernelCpp(f), tilingHeader: tilingHeader(f), hostSnippet: hostSnippet(f) };
}
