/**
 * Assembly of the kernel source: the type aliases, Init (GM windows and UB buffers), the class
 * members, and the file around the kernel class (constants, copy helpers, the extern "C" entry).
 */
import { canonicalJson } from '../spec.js';
import type { KernelParam } from './spec.js';
import { dynChunk, finalChunk, normChunk, normChunkHp, quantInput, quantizeChunk, reductions, squareChunk, storeY, sumChunk } from './compute.js';
import { alias, CPP_TYPE, indent, L, local, method, QUEUE, TYPE_ALIAS, vectorParams, type Facts } from './facts.js';
import { rowMode, rowOutputs, splitMode } from './modes.js';

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

export function kernelCpp(f: Facts): string {
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
