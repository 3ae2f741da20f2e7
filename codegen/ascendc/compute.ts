/**
 * The per-chunk math of the kernel, shared by the row modes and split-D: residual sum, sum of
 * squares, rstd and dynamic-scale reductions, the norm (plain, Gemma, high_performance) and int8
 * quantization. Each function returns one kernel member function, or nothing when unused.
 */
import { L, method, NONE, PB, RINT, type Facts } from './facts.js';

export function sumChunk(f: Facts): string[] {
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

export function squareChunk(f: Facts): string[] {
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

export function reductions(f: Facts): string[] {
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
export function normChunk(f: Facts): string[] {
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
export function normChunkHp(f: Facts): string[] {
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

export function storeY(f: Facts): string[] {
  if (!f.y || f.tFloat || f.hp) return [];
  return method(['yChunk = T(tmpA).'], 'void StoreY(const LocalTensor<T>& yChunk, uint32_t n)', [PB, `Cast(yChunk, tmpA, ${RINT}, n);`]);
}

/** PostNorm static int8 returns y too and quantizes it: it rounds y through the y chunk instead. */
const quantizesY = (f: Facts): boolean => f.post && f.staticQ;

/** Whether QuantInput has work: rounding y to T (16-bit T), or adding beta. */
const quantInputNeeded = (f: Facts): boolean => f.quant && !quantizesY(f) && (!f.tFloat || f.beta);

export function quantInput(f: Facts): string[] {
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

export function quantizeChunk(f: Facts): string[] {
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
export function chunkArgs(f: Facts, what: 'final' | 'dyn'): { decl: string; call: (v: { beta: string; y: string; q: string }) => string } {
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

export function finalChunk(f: Facts): string[] {
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

export function dynChunk(f: Facts): string[] {
  if (!f.dynQ) return [];
  return method(
    ['Dynamic quantization, first look at a chunk: v = the quantizer input, folded into the row\'s max |v|.'],
    `void DynChunk(const LocalTensor<T>& s, const LocalTensor<G>& g${chunkArgs(f, 'dyn').decl}, uint32_t n, float rstd, bool first)`,
    L('NormChunk(tmpA, s, g, n, rstd);', quantInputNeeded(f) && `QuantInput(${f.beta ? 'betaChunk, ' : ''}n);`, 'MaxAbsChunk(n, first);'),
  );
}
