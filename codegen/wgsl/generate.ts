/**
 * WGSL generator: a pure function from a WgslKernelSpec to a compute shader and the facts its
 * launcher needs (bindings in order, dispatch geometry).
 *
 * Kernel outline (KERNELS.md, WGSL section):
 * 1. R rows per workgroup, T threads per row; thread t handles units u = t + k*T (strided, so
 *    neighbouring threads touch neighbouring memory), a unit being vecWidth elements.
 * 2. Pass 1 loads the row once (x, or T(x + residual (+ bias)) for Pre/PostNorm, writing the sum
 *    for PreNorm), keeps it in registers and accumulates sum(s*s) in f32.
 * 3. The row's total comes from a subgroup or workgroup-tree reduction; rstd is fp32.
 * 4. Pass 2 scales the cached values and writes y, or quantizes them (dynamic quantization keeps
 *    v in registers for a max reduction and a third pass).
 * Rows too long for registers (more than CACHE_FLOATS f32 per thread) are read again in pass 2.
 * Workgroups are numbered wid.x + wid.y * nwg.x so a dispatch can go 2-D past 65535 workgroups.
 *
 * Split-row path (spec.splitRow, for few long rows; the launcher picks it from the row count):
 * S workgroups share a row, each taking a chunk of C units, in dispatches of one command encoder
 * that meet through a scratch buffer of per-chunk partials (@group(1)); nothing else survives
 * from one dispatch to the next, so each re-reads its chunk:
 * - split_sumsq: s as in pass 1 (writing the PreNorm sum), the chunk's sum of squares -> partials;
 * - split_amax (dynamic quantization only): rstd from the row's S partials, v over the chunk, the
 *   chunk's max |v| -> partials (partials, not an atomicMax on f32 bits: no clearing, same code
 *   as the sums, and every workgroup of the row sees the same S values);
 * - split_norm: rstd (and the dynamic scale) from the partials, then y / q over the chunk.
 * Later dispatches re-read s: PreNorm reads back its sum output, PostNorm reads x and residual
 * again (no scratch copy of s: writing and reading one costs as many bytes, and a re-read of few
 * rows is served from L2). Every workgroup of a row reduces the same partials with the same code,
 * so all agree on rstd and scale (with subgroups, a device whose subgroup size differed between
 * split_amax and split_norm could move rstd by an ulp between them: q stays within SPEC's |diff| <= 1).
 *
 * The arithmetic follows runtime/reference.ts (SPEC section 2) operation by operation.
 */
import { hasResidual, isDynamicQuant, signature, type DType, type FloatDType, type InputRole, type OutputRole } from '../../compiler/op/param.js';
import {
  BF16_HELPERS,
  declareBinding,
  f32Lit,
  loadFn,
  reductionFn,
  roundFn,
  storeFn,
  storeQFn,
  vecF32,
  type Packing,
  type ReductionLayout,
  type VecWidth,
  type WgslBinding,
} from './parts.js';
import type { WgslKernelSpec } from './spec.js';

export type { WgslBinding } from './parts.js';

/** Binding number of the uniform `Params { rows: u32, scale: f32, offset: f32, pad: u32 }`. */
export const PARAMS_BINDING = 0;
/** Bytes of the Params uniform. */
export const PARAMS_BYTES = 16;

/** Bind group of the split path's scratch buffer (binding 0: f32 partials). */
export const SPLIT_GROUP = 1;

export interface WgslSplitDispatch {
  /** Entry points dispatched one after another, each over rows * workgroupsPerRow workgroups. */
  entryPoints: string[];
  workgroupsPerRow: number;
  /** The launcher takes this path for runs of at most this many rows. */
  maxRows: number;
  /** f32 partials per row in the scratch buffer. */
  partialsPerRow: number;
}

export interface WgslDispatch {
  workgroupSize: number;
  rowsPerWorkgroup: number;
  threadsPerRow: number;
  /**
   * Workgroups are linearised as wid.x + wid.y * nwg.x: the launcher dispatches
   * ceil(rows / rowsPerWorkgroup) workgroups as (min(n, maxPerDim), ceil(n / maxPerDim)).
   */
  grid: '2d-linear';
  /** The split-row path (same shader module, same group-0 bindings). */
  split?: WgslSplitDispatch;
}

export interface WgslKernel {
  source: string;
  entryPoint: string;
  /** Tensor bindings in binding order (after the Params uniform at PARAMS_BINDING). */
  bindings: WgslBinding[];
  dispatch: WgslDispatch;
  /** Device features the shader enables ('shader-f16', 'subgroups'). */
  requiredFeatures: ('shader-f16' | 'subgroups')[];
}

/** Registers per thread (in f32) up to which a row is kept between passes instead of re-read. */
export const CACHE_FLOATS = 64;

function packingOf(dtype: DType, f16Native: boolean): Packing {
  switch (dtype) {
    case 'float32':
      return 'f32';
    case 'float16':
      return f16Native ? 'f16' : 'f16x2';
    case 'bfloat16':
      return 'bf16x2';
    case 'int8':
      return 'i8x4';
    default:
      throw new Error(`WGSL kernels do not take ${dtype} tensors`);
  }
}

const VECTOR_ROLES: (InputRole | OutputRole)[] = ['gamma', 'beta', 'bias'];
const PER_ROW_ROLES: (InputRole | OutputRole)[] = ['rstd', 'scale'];

/** The kernel's tensors in binding order: present inputs (scale/offset go through Params), then outputs. */
export function wgslBindings(spec: WgslKernelSpec): WgslBinding[] {
  const sig = signature(spec.param);
  const native = spec.f16 === 'native';
  const out: WgslBinding[] = [];
  const add = (role: InputRole | OutputRole, dtype: DType, output: boolean): void => {
    const packing = packingOf(dtype, native);
    const extent = VECTOR_ROLES.includes(role) ? 'vector' : PER_ROW_ROLES.includes(role) && output ? 'perRow' : 'rows';
    const subWord =
      (packing === 'i8x4' && spec.vecWidth < 4) || ((packing === 'f16x2' || packing === 'bf16x2') && spec.vecWidth === 1);
    out.push({
      binding: PARAMS_BINDING + 1 + out.length,
      name: role,
      role,
      dtype,
      access: output ? 'read_write' : 'read',
      packing,
      atomic: output && subWord,
      extent,
    });
  };
  for (const role of sig.inputs) {
    if (role === 'scale' || role === 'offset') continue; // per-tensor values, passed in Params
    if (sig.optional.includes(role) && !spec.present.includes(role)) continue;
    add(role, role === 'x' ? spec.xDType : (spec.inputDTypes[role] ?? spec.xDType), false);
  }
  for (const role of sig.outputs) {
    const dtype: DType = role === 'q' ? 'int8' : role === 'rstd' || role === 'scale' ? 'float32' : spec.xDType;
    add(role, dtype, true);
  }
  return out;
}

/**
 * Emits `for` over the thread's units with the body guarded to real units of a real row: units
 * `first + k * T` for k < count (the whole row, or a split chunk).
 */
function unitLoop(body: string[], first = 't', count = 'K'): string {
  return [
    `for (var k = 0u; k < ${count}; k++) {`,
    `  let u = ${first} + k * T;`,
    '  if (valid && u < UNITS) {',
    ...body.map((l) => `    ${l}`),
    '  }',
    '}',
  ].join('\n');
}

function indent(s: string, by = '  '): string {
  return s
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}

export function generateWgsl(spec: WgslKernelSpec): WgslKernel {
  const p = spec.param;
  const vw = spec.vecWidth as VecWidth;
  const V = vecF32(vw);
  const H = spec.H;
  if (H % vw !== 0) throw new Error(`vecWidth ${vw} does not divide H = ${H}`);
  const R = spec.rowsPerWorkgroup;
  const WG = spec.workgroupSize;
  if (WG % R !== 0) throw new Error(`workgroupSize ${WG} is not a multiple of rowsPerWorkgroup ${R}`);
  const T = WG / R;
  const UNITS = H / vw;
  const K = Math.ceil(UNITS / T);
  const cached = K * vw <= CACHE_FLOATS;
  const bindings = wgslBindings(spec);
  const has = (role: InputRole | OutputRole): boolean => bindings.some((b) => b.role === role);
  const native = spec.f16 === 'native';
  const anyBf16 = bindings.some((b) => b.packing === 'bf16x2');
  const xT = spec.xDType as FloatDType;

  const layout: ReductionLayout =
    T === 1 ? { kind: 'none' } : spec.subgroups && R === 1 ? { kind: 'subgroup', workgroupSize: WG } : { kind: 'tree', rows: R, threadsPerRow: T };
  const sumRed = reductionFn('sum', layout);
  const maxRed = isDynamicQuant(p) ? reductionFn('max', layout) : undefined;
  const split = spec.splitRow;
  if (split && (R !== 1 || split.unitsPerWorkgroup % T !== 0 || split.unitsPerWorkgroup % 4 !== 0)) {
    throw new Error(`splitRow needs one row per workgroup and chunks of whole thread strides and words (C = ${split.unitsPerWorkgroup}, T = ${T})`);
  }
  const splitEntryPoints = split ? ['split_sumsq', ...(isDynamicQuant(p) ? ['split_amax'] : []), 'split_norm'] : [];

  // ---- header, constants, bindings
  const parts: string[] = [];
  const enables = [native ? 'enable f16;' : '', layout.kind === 'subgroup' ? 'enable subgroups;' : ''].filter(Boolean);
  parts.push(
    [
      `// rmsfuse ${p.layerType} kernel: x ${xT}, H = ${H}, epsilon = ${p.epsilon}` +
        `, quant ${p.quantType}${isDynamicQuant(p) ? ' (dynamic symmetric)' : ''}, ${p.precisionMode}, ${p.modelType}.`,
      `// ${R} row(s) of ${T} thread(s) per workgroup, vec${vw} units, ${cached ? 'row kept in registers' : 'row read twice (too long for registers)'}` +
        `, ${layout.kind === 'none' ? 'no' : layout.kind} reduction.`,
      ...(split
        ? [
            `// Split-row path for runs of up to ${split.maxRows} row(s): ${split.workgroupsPerRow} workgroups of ${split.unitsPerWorkgroup} units per row` +
              ` (${splitEntryPoints.join(', ')}).`,
          ]
        : []),
      ...enables,
    ].join('\n'),
  );
  parts.push(
    [
      `const H: u32 = ${H}u;`,
      `const UNITS: u32 = ${UNITS}u; // vec${vw} units per row`,
      `const T: u32 = ${T}u; // threads per row`,
      `const R: u32 = ${R}u; // rows per workgroup`,
      `const K: u32 = ${K}u; // units per thread`,
      `const EPS: f32 = ${f32Lit(p.epsilon)};`,
    ].join('\n'),
  );
  parts.push(
    [
      '// rows: rows in this dispatch; scale, offset: static quantization (per tensor, set at run time).',
      'struct Params { rows: u32, scale: f32, offset: f32, pad: u32 }',
      `@group(0) @binding(${PARAMS_BINDING}) var<uniform> params: Params;`,
      ...bindings.map((b) => declareBinding(b, vw)),
    ].join('\n'),
  );

  // ---- helpers
  const helpers: string[] = [];
  if (anyBf16) helpers.push(BF16_HELPERS);
  for (const b of bindings) {
    if (b.access === 'read') helpers.push(loadFn(b, vw));
    else if (b.packing === 'i8x4') helpers.push(storeQFn(b, vw));
    else if (b.extent !== 'perRow') helpers.push(storeFn(b, vw));
  }
  helpers.push(roundFn('round_t', xT, native, vw));
  helpers.push(
    vw === 1
      ? 'fn sum_sq(v: f32) -> f32 {\n  return v * v;\n}'
      : `fn sum_sq(v: ${V}) -> f32 {\n  return dot(v, v);\n}`,
  );
  if (isDynamicQuant(p)) {
    const absMax = vw === 1 ? 'abs(v)' : vw === 2 ? 'max(abs(v.x), abs(v.y))' : 'max(max(abs(v.x), abs(v.y)), max(abs(v.z), abs(v.w)))';
    helpers.push(`fn max_abs(v: ${V}) -> f32 {\n  return ${absMax};\n}`);
  }

  // The normalized input of a unit: x, or the residual sum rounded to T (what PreNorm returns).
  let sExpr = 'load_x(i)';
  if (hasResidual(p)) {
    sExpr = has('bias') ? 'round_t(load_x(i) + load_residual(i) + load_bias(u))' : 'round_t(load_x(i) + load_residual(i))';
  }
  helpers.push(`// The values the norm reads for unit i of the row (u: unit within the row).\nfn load_s(i: u32, u: u32) -> ${V} {\n  return ${sExpr};\n}`);

  // y before the final rounding to T, as the reference forms it.
  let yExpr: string;
  if (p.precisionMode === 'high_performance') yExpr = 'round_t(round_t(s * inv_rms) * round_t(load_gamma(u)))';
  else if (p.modelType === 'gemma') yExpr = 's * inv_rms * (1.0 + load_gamma(u))';
  else yExpr = 's * inv_rms * load_gamma(u)';
  helpers.push(`fn norm(s: ${V}, inv_rms: f32, u: u32) -> ${V} {\n  return ${yExpr};\n}`);
  if (p.quantType === 'int8') {
    // What the original graph feeds QuantizeLinear: T(T(y) + beta), or T(y) without beta.
    const v = has('beta') ? 'round_t(y + load_beta(u))' : 'y';
    helpers.push(`// Quantizer input from y (already rounded to T).\nfn quant_in(y: ${V}, u: u32) -> ${V} {\n  return ${v};\n}`);
  }
  helpers.push(sumRed.source);
  if (maxRed) helpers.push(maxRed.source);

  // ---- main
  const builtins = [
    '@builtin(local_invocation_index) lid: u32',
    '@builtin(workgroup_id) wid: vec3<u32>',
    '@builtin(num_workgroups) nwg: vec3<u32>',
  ];
  if (layout.kind === 'subgroup') builtins.push('@builtin(subgroup_invocation_id) sg_lane: u32', '@builtin(subgroup_size) sg_size: u32');
  const entryPoint = (name: string, body: string[]): string =>
    `@compute @workgroup_size(${WG})\nfn ${name}(\n${builtins.map((b) => `  ${b},`).join('\n')}\n) {\n${indent(body.join('\n'))}\n}`;

  // int8 saturation bounds in V, and the unit-loop bodies that scale s and store y / q.
  const [lo, hi] = vw === 1 ? ['-128.0', '127.0'] : [`${V}(-128.0)`, `${V}(127.0)`];
  const scaleLines = (sOf: string): string[] => {
    if (p.quantType !== 'int8') return [`store_y(base + u, norm(${sOf}, inv_rms, u));`];
    const lines = [`let y = round_t(norm(${sOf}, inv_rms, u));`];
    if (has('y')) lines.push('store_y(base + u, y);');
    lines.push(`store_q(base + u, clamp(round(quant_in(y, u) / params.scale) + params.offset, ${lo}, ${hi}));`);
    return lines;
  };
  const vOf = (sOf: string): string => `quant_in(round_t(norm(${sOf}, inv_rms, u)), u)`;
  const dynQLine = (v: string): string => `store_q(base + u, clamp(round(${v} / row_scale), ${lo}, ${hi}));`;

  const body: string[] = [];
  body.push(
    'let r = lid / T; // row within the workgroup',
    'let t = lid % T; // thread within the row',
    'let row = (wid.x + wid.y * nwg.x) * R + r;',
    'let valid = row < params.rows;',
    'let base = row * UNITS;',
  );
  const sOf = cached ? 'cache[k]' : 'load_s(base + u, u)';
  // Pass 1: read the row once, write the sum (PreNorm), accumulate the sum of squares.
  if (cached) body.push(`var cache: array<${V}, K>;`);
  body.push('var ss = 0.0;');
  const pass1 = ['let s = load_s(base + u, u);'];
  if (has('sum')) pass1.push('store_sum(base + u, s);');
  if (cached) pass1.push('cache[k] = s;');
  pass1.push('ss += sum_sq(s);');
  body.push(unitLoop(pass1));
  body.push(`let inv_rms = 1.0 / sqrt(reduce_sum(ss${sumRed.args}) / f32(H) + EPS);`);
  if (has('rstd')) body.push('if (valid && t == 0u) { rstd[row] = inv_rms; }');

  // Pass 2: scale (and quantize).
  if (!isDynamicQuant(p)) {
    body.push(unitLoop(scaleLines(sOf)));
  } else {
    // Dynamic: v stays in registers for the per-row max and the final pass.
    const vLine = `let v = ${vOf(sOf)};`;
    body.push('var amax = 0.0;');
    body.push(unitLoop(cached ? [vLine, 'cache[k] = v;', 'amax = max(amax, max_abs(v));'] : [vLine, 'amax = max(amax, max_abs(v));']));
    body.push(`let row_scale = max(reduce_max(amax${maxRed!.args}) / 127.0, 0x1p-23f); // floor: an all-zero row gives q = 0`);
    body.push('if (valid && t == 0u) { scale[row] = row_scale; }');
    body.push(unitLoop([dynQLine(cached ? 'cache[k]' : vOf('load_s(base + u, u)'))]));
  }
  const entries = [entryPoint('main', body)];

  // ---- split-row path: constants, scratch, helpers, then one entry point per dispatch
  const splitParts: string[] = [];
  if (split) {
    const P = isDynamicQuant(p) ? 2 : 1;
    splitParts.push(
      [
        '// Split-row path: S workgroups per row, each normalizing a chunk of C units (KS per thread).',
        `const S: u32 = ${split.workgroupsPerRow}u;`,
        `const C: u32 = ${split.unitsPerWorkgroup}u;`,
        `const KS: u32 = ${split.unitsPerWorkgroup / T}u;`,
        `const P: u32 = ${P}u; // partials per chunk: sum of squares${P === 2 ? ', max |v|' : ''}`,
        `@group(${SPLIT_GROUP}) @binding(0) var<storage, read_write> partials: array<f32>;`,
      ].join('\n'),
    );
    splitParts.push('// Partial p (0: sum of squares, 1: max |v|) of chunk c of a row.\nfn partial_index(row: u32, p: u32, c: u32) -> u32 {\n  return (row * P + p) * S + c;\n}');
    const sum = bindings.find((b) => b.role === 'sum');
    if (sum) splitParts.push(loadFn(sum, vw));
    splitParts.push(
      '// s again in a later dispatch: ' +
        (sum ? 'the sum written by split_sumsq, read back.' : `recomputed from the inputs${hasResidual(p) ? ' (x and residual are read again)' : ''}.`) +
        `\nfn load_s_again(i: u32, u: u32) -> ${V} {\n  return ${sum ? 'load_sum(i)' : 'load_s(i, u)'};\n}`,
    );

    const prologue = [
      'let g = wid.x + wid.y * nwg.x;',
      'let row = g / S;',
      'let c = g % S; // chunk of the row: units c * C .. c * C + C - 1',
      'let t = lid;',
      ...(layout.kind === 'tree' ? ['let r = 0u; // one row per workgroup'] : []),
      'let valid = row < params.rows;',
      'let base = row * UNITS;',
    ];
    const chunkLoop = (lines: string[]): string => unitLoop(lines, 'c * C + t', 'KS');
    // This thread's share of the row's S partials p (a sum or a max), then the row's total.
    const gather = (v: string, p: 0 | 1): string[] => [
      `var ${v} = 0.0;`,
      'for (var j = t; valid && j < S; j += T) {',
      p === 0 ? `  ${v} += partials[partial_index(row, 0u, j)];` : `  ${v} = max(${v}, partials[partial_index(row, 1u, j)]);`,
      '}',
    ];
    const rowInvRms = [...gather('ss', 0), `let inv_rms = 1.0 / sqrt(reduce_sum(ss${sumRed.args}) / f32(H) + EPS);`];
    const sAgain = 'load_s_again(base + u, u)';

    const sumsq = [...prologue, 'var ss = 0.0;'];
    sumsq.push(chunkLoop(['let s = load_s(base + u, u);', ...(has('sum') ? ['store_sum(base + u, s);'] : []), 'ss += sum_sq(s);']));
    sumsq.push(`let chunk_ss = reduce_sum(ss${sumRed.args});`, 'if (valid && t == 0u) { partials[partial_index(row, 0u, c)] = chunk_ss; }');
    entries.push(entryPoint('split_sumsq', sumsq));

    if (isDynamicQuant(p)) {
      const amax = [...prologue, ...rowInvRms, 'var amax = 0.0;'];
      amax.push(chunkLoop([`let v = ${vOf(sAgain)};`, 'amax = max(amax, max_abs(v));']));
      amax.push(`let chunk_amax = reduce_max(amax${maxRed!.args});`, 'if (valid && t == 0u) { partials[partial_index(row, 1u, c)] = chunk_amax; }');
      entries.push(entryPoint('split_amax', amax));
    }

    const fin = [...prologue, ...rowInvRms];
    if (has('rstd')) fin.push('if (valid && c == 0u && t == 0u) { rstd[row] = inv_rms; }');
    if (!isDynamicQuant(p)) {
      fin.push(chunkLoop(scaleLines(sAgain)));
    } else {
      fin.push(...gather('amax', 1));
      fin.push(`let row_scale = max(reduce_max(amax${maxRed!.args}) / 127.0, 0x1p-23f);`);
      fin.push('if (valid && c == 0u && t == 0u) { scale[row] = row_scale; }');
      fin.push(chunkLoop([dynQLine(vOf(sAgain))]));
    }
    entries.push(entryPoint('split_norm', fin));
  }

  const source = [...parts, ...helpers, ...splitParts, ...entries].join('\n\n') + '\n';
  return {
    source,
    entryPoint: 'main',
    bindings,
    dispatch: {
      workgroupSize: WG,
      rowsPerWorkgroup: R,
      threadsPerRow: T,
      grid: '2d-linear',
      ...(split && {
        split: {
          entryPoints: splitEntryPoints,
          workgroupsPerRow: split.workgroupsPerRow,
          maxRows: split.maxRows,
          partialsPerRow: split.workgroupsPerRow * (isDynamicQuant(p) ? 2 : 1),
        },
      }),
    },
    requiredFeatures: [...(native ? ['shader-f16' as const] : []), ...(layout.kind === 'subgroup' ? ['subgroups' as const] : [])],
  };
}
