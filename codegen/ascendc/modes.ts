/**
 * The two ways a core walks its rows: the row modes (whole rows per UB tile, gamma/beta/bias loaded
 * once per core) and split-D (a row streamed in chunks, one pass per reduction), plus the per-row
 * outputs (rstd, dynamic scale) both gather in UB. Both call the per-chunk math of compute.ts.
 */
import type { KernelParam } from './spec.js';
import { chunkArgs } from './compute.js';
import { alias, chunkLoop, indent, L, local, method, QUEUE, vectorParams, type Facts } from './facts.js';

// ---------------------------------------------------------------------------------------------
// Per-row outputs (rstd, dynamic scale): gathered in UB, written 32 bytes or more at a time

export function rowOutputs(f: Facts): string[] {
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

/** Row-loop call arguments of the final chunk in the row modes. */
function rowChunkCall(f: Facts, what: 'final' | 'dyn'): string {
  return chunkArgs(f, what).call({ beta: 'betaLocal[col]', y: 'yLocal[off + col]', q: 'qLocal[offQ + col]' });
}

export function rowMode(f: Facts): string[] {
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

export function splitMode(f: Facts): string[] {
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
