/**
 * One validator for the RMSNorm operation: (param, input/output dtypes and shapes, target) ->
 * ok, or the stage and ATB error name of the first problem with a message in plain words.
 *
 * Two rule sets:
 * - the math rules (SPEC section 2): the parameter combinations rmsfuse defines, and tensors that
 *   fit the fused node's contract. They are all there is for `webgpu` and for no target.
 * - ATB's rules for the Ascend targets (SPEC section 7): a model of ATB's `RmsNormOperation`
 *   checked against ATB's own test table (conformance/atb_rms_norm.csv), in ATB's order:
 *   C (operation creation), I (shape inference, input tensors), S (setup, output tensors).
 *
 * On an Ascend target the default (the pass's view) applies both: ATB's limits, with rmsfuse's
 * extensions of SPEC section 2 allowed (precision_mode/model_type and dynamic quantization on
 * PreNorm/PostNorm), initializers (gamma, beta, bias, scale, offset) that fusion converts to the
 * dtype and shape the target needs, and absent beta/offset that fusion supplies as zeros.
 * `strictAtb` checks exactly what ATB's own operation accepts (the conformance test uses it).
 *
 * Inputs are in the fused node's order (SPEC section 2, `signature()`), which is ATB's order.
 * An absent optional input is `undefined` or `null` (trailing ones may be left off). PreNorm and
 * PostNorm without bias may also be given in ATB's form, without the bias slot.
 */
import {
  ATB_LAYER_TYPE,
  ATB_QUANT_TYPE,
  activeSubParam,
  atbCannotExpress,
  fromRmsNormParam,
  isAtbParam,
  nonZeroRsv,
  toRmsNormParam,
  type AtbRmsNormParam,
} from './atb.js';
import { signature, type DType, type FusedNodeDesc, type InputRole, type OutputRole, type RmsNormParam, type TensorDesc } from './param.js';
import { isAscend, type AscendTarget, type Target } from './target.js';

export type { Target } from './target.js';
export { targetFromSoc, targetsFromSocList, parseAtbParam } from './atb.js';

/** C: operation creation (the parameter alone); I: shape inference (inputs); S: setup (outputs). */
export type Stage = 'C' | 'I' | 'S';

/** ATB's names (atb::ErrorType) for the errors this operation reports. */
export type AtbError =
  | 'ERROR_INVALID_PARAM'
  | 'ERROR_INVALID_IN_TENSOR_NUM'
  | 'ERROR_INVALID_TENSOR_DTYPE'
  | 'ERROR_INVALID_TENSOR_FORMAT'
  | 'ERROR_INVALID_TENSOR_DIM'
  | 'ERROR_INVALID_TENSOR_SIZE'
  | 'ERROR_INVALID_TENSOR_INI_MATCH';

export type Dim = number | string;

export interface TensorSpec {
  dtype: DType;
  /** A symbolic dim (batch, sequence) is a string; it matches any size. */
  shape: readonly Dim[];
  /** ATB's tensor format; 'nd' when absent (the only one RmsNorm takes). */
  format?: string;
  /** A constant the fusion may convert (dtype, scalar -> [1]) for the target. */
  initializer?: boolean;
}

export type MaybeTensor = TensorSpec | null | undefined;

export interface Failure {
  ok: false;
  stage: Stage;
  error: AtbError;
  message: string;
}

export type Validation = { ok: true } | Failure;

export interface ValidateOptions {
  /** Check exactly what ATB's RmsNormOperation accepts: no rmsfuse extension, no conversions. Default false. */
  strictAtb?: boolean;
}

const OK: Validation = Object.freeze({ ok: true });

function fail(stage: Stage, error: AtbError, message: string): Failure {
  return { ok: false, stage, error, message };
}

/** `NO_ERROR` or `STAGE:NAME`, as ATB's test table writes expected errors. */
export function formatOutcome(v: Validation): string {
  return v.ok ? 'NO_ERROR' : `${v.stage}:${v.error}`;
}

// ---------------------------------------------------------------------------------------------
// Entry points

export function validate(
  param: RmsNormParam | AtbRmsNormParam,
  inputs: readonly MaybeTensor[],
  outputs: readonly TensorSpec[] | undefined,
  target: Target,
  options: ValidateOptions = {},
): Validation {
  if (isAscend(target)) return validateAscend(param, inputs, outputs, target, options.strictAtb ?? false);
  return validateMath(param, inputs, outputs);
}

/** validate() for a fused node as the driver describes it (an absent input has the name ''). */
export function validateForTarget(
  desc: Pick<FusedNodeDesc, 'param' | 'inputs' | 'outputs'>,
  target: Target,
  options: ValidateOptions = {},
): Validation {
  const spec = (t: TensorDesc): TensorSpec => ({ dtype: t.dtype, shape: t.shape, initializer: t.initializer });
  const inputs = desc.inputs.map((t) => (t.name === '' ? undefined : spec(t)));
  return validate(desc.param, inputs, desc.outputs.map(spec), target, options);
}

function validateMath(
  param: RmsNormParam | AtbRmsNormParam,
  inputs: readonly MaybeTensor[],
  outputs: readonly TensorSpec[] | undefined,
): Validation {
  let p: RmsNormParam;
  if (isAtbParam(param)) {
    const converted = toRmsNormParam(param);
    if (!converted.ok) return fail('C', 'ERROR_INVALID_PARAM', converted.reason);
    p = converted.param;
  } else {
    p = param;
  }
  const paramProblem = mathParamProblem(p);
  if (paramProblem) return fail('C', 'ERROR_INVALID_PARAM', paramProblem);
  const bound = bindInputs(p, inputs);
  if (!bound.ok) return bound;
  const inputProblem = mathInputProblem(p, bound.tensors);
  if (inputProblem) return inputProblem;
  if (outputs) return mathOutputProblem(p, bound.tensors, outputs) ?? OK;
  return OK;
}

function validateAscend(
  param: RmsNormParam | AtbRmsNormParam,
  inputs: readonly MaybeTensor[],
  outputs: readonly TensorSpec[] | undefined,
  soc: AscendTarget,
  strict: boolean,
): Validation {
  let raw: AtbRmsNormParam;
  let clean: RmsNormParam | undefined;
  if (isAtbParam(param)) {
    raw = param;
  } else {
    const inexpressible = strict ? atbCannotExpress(param) : undefined;
    if (inexpressible) return fail('C', 'ERROR_INVALID_PARAM', inexpressible);
    raw = fromRmsNormParam(param);
    clean = param;
  }

  const creation = atbCreationProblem(raw, soc, strict);
  if (creation) return creation;
  const layout = atbLayout(raw);
  if (!layout) return fail('C', 'ERROR_INVALID_PARAM', 'this layerType/quantType combination has no operation');
  const compact = dropAbsentBiasSlot(layout.inputs, inputs);

  if (strict) {
    const present = compact.filter(isPresent);
    const infer = atbInferProblem(raw, soc, layout, present);
    if (infer) return infer;
    return outputs ? (atbSetupProblem(raw, layout, present, outputs) ?? OK) : OK;
  }

  // rmsfuse's view: the fused node must make sense (math rules), and fit ATB's limits once
  // fusion has converted its initializers.
  if (!clean) {
    const converted = toRmsNormParam(raw);
    if (!converted.ok) return fail('C', 'ERROR_INVALID_PARAM', converted.reason);
    clean = converted.param;
  }
  const paramProblem = mathParamProblem(clean);
  if (paramProblem) return fail('C', 'ERROR_INVALID_PARAM', paramProblem);
  const bound = bindInputs(clean, compact);
  if (!bound.ok) return bound;
  const inputProblem = mathInputProblem(clean, bound.tensors);
  if (inputProblem) return inputProblem;
  const prepared = prepareForAtb(layout, compact);
  const infer = atbInferProblem(raw, soc, layout, prepared);
  if (infer) return infer;
  if (!outputs) return OK;
  return mathOutputProblem(clean, bound.tensors, outputs) ?? atbSetupProblem(raw, layout, prepared, outputs) ?? OK;
}

// ---------------------------------------------------------------------------------------------
// Tensor helpers

const FLOAT_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];
const BYTES: Record<DType, number> = { float32: 4, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4, int64: 8 };
const MAX_RANK = 8;
const MAX_TENSOR_BYTES = 256 * 1024 ** 3;

const isFloat = (d: DType): boolean => FLOAT_DTYPES.includes(d);
const isPresent = (t: MaybeTensor): t is TensorSpec => t !== undefined && t !== null;
const formatOf = (t: TensorSpec): string => (t.format ?? 'nd').toLowerCase();
const lastDim = (t: TensorSpec): Dim | undefined => t.shape[t.shape.length - 1];
const shapeText = (s: readonly Dim[]): string => `[${s.join(',')}]`;
const tensorText = (t: TensorSpec): string => `${t.dtype}${shapeText(t.shape)}`;

/** Equal sizes; a symbolic dim is only known to differ from another symbol. */
function sameDim(a: Dim | undefined, b: Dim | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return typeof a === typeof b ? a === b : true;
}

function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => sameDim(d, b[i]));
}

/** ATB's TensorDescsDiff, negated: same dtype, format and shape. */
function sameDesc(a: TensorSpec, b: TensorSpec): boolean {
  return a.dtype === b.dtype && formatOf(a) === formatOf(b) && sameShape(a.shape, b.shape);
}

/** Every dim but the last is 1 (or symbolic). */
function onlyLastDimAbove1(t: TensorSpec): boolean {
  return t.shape.slice(0, -1).every((d) => d === 1 || typeof d === 'string');
}

function elementCount(t: TensorSpec): number | undefined {
  let n = 1;
  for (const d of t.shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Input binding (the fused node's order, absent optional inputs)

function isAddNormUnquantized(inputs: readonly (InputRole | undefined)[]): boolean {
  return inputs.includes('residual') && !inputs.includes('scale') && !inputs.includes('beta');
}

/** PreNorm/PostNorm without bias: accept the fused node's form [x, '', residual, gamma] as ATB's [x, residual, gamma]. */
function dropAbsentBiasSlot(roles: readonly InputRole[], inputs: readonly MaybeTensor[]): MaybeTensor[] {
  const list = [...inputs];
  if (isAddNormUnquantized(roles) && !roles.includes('bias') && list.length === roles.length + 1 && !isPresent(list[1])) {
    list.splice(1, 1);
  }
  return list;
}

/** The input roles of a variant; bias only with has_bias. */
function inputRoles(p: RmsNormParam): InputRole[] {
  return signature(p).inputs.filter((r) => r !== 'bias' || p.hasBias);
}

function variantText(p: RmsNormParam): string {
  const quant = p.quantType === 'int8' ? (p.dynamicQuant === 'symmetric' ? ' with int8 dynamic quantization' : ' with int8 static quantization') : '';
  const bias = p.hasBias ? ' with bias' : '';
  return `${p.layerType}${quant}${bias}`;
}

type Bound = { ok: true; tensors: Map<InputRole, TensorSpec> } | Failure;

/** Assigns the inputs to their roles; a required input must be there, an optional one may be absent. */
function bindInputs(p: RmsNormParam, inputs: readonly MaybeTensor[]): Bound {
  const roles = inputRoles(p);
  const list = dropAbsentBiasSlot(roles, inputs);
  if (list.length > roles.length) {
    return fail('I', 'ERROR_INVALID_IN_TENSOR_NUM', `${variantText(p)} takes at most ${roles.length} inputs (${roles.join(', ')}); got ${list.length}`);
  }
  const tensors = new Map<InputRole, TensorSpec>();
  for (const [i, role] of roles.entries()) {
    const t = list[i];
    if (isPresent(t)) tensors.set(role, t);
    else if (role !== 'beta' && role !== 'offset') {
      const why = role === 'bias' ? ' (has_bias is set)' : '';
      return fail('I', 'ERROR_INVALID_IN_TENSOR_NUM', `${variantText(p)} needs input ${i} (${role})${why}; it is absent`);
    }
  }
  return { ok: true, tensors };
}

// ---------------------------------------------------------------------------------------------
// The math rules (SPEC section 2)

/** Why the parameter is not a valid rmsfuse operation; undefined when it is. */
export function mathParamProblem(p: RmsNormParam): string | undefined {
  if (!['Norm', 'PreNorm', 'PostNorm'].includes(p.layerType)) return `layer type '${p.layerType}' is not Norm, PreNorm or PostNorm`;
  if (!(Number.isFinite(p.epsilon) && p.epsilon > 0 && p.epsilon <= 1)) return `epsilon must be in (0, 1]; got ${p.epsilon}`;
  if (!['none', 'int8'].includes(p.quantType)) return `quant_type '${p.quantType}' is not none or int8`;
  if (!['none', 'symmetric'].includes(p.dynamicQuant)) return `dynamic quantization is symmetric only; got '${p.dynamicQuant}'`;
  if (!['high_precision', 'high_performance'].includes(p.precisionMode)) return `precision_mode '${p.precisionMode}' is not high_precision or high_performance`;
  if (!['llama', 'gemma'].includes(p.modelType)) return `model_type '${p.modelType}' is not llama or gemma`;
  if (p.dynamicQuant === 'symmetric' && p.quantType !== 'int8') return 'dynamic quantization needs quant_type int8';
  const modes = [p.rstd && 'rstd', p.precisionMode === 'high_performance' && 'high_performance', p.modelType === 'gemma' && 'gemma'].filter(
    (m): m is string => typeof m === 'string',
  );
  if (modes.length > 1) return `${modes.join(' and ')} exclude each other`;
  if (modes.length === 1 && p.quantType !== 'none') return `${modes[0]} is not supported with quantization`;
  if (p.rstd && p.layerType !== 'Norm') return `rstd is only defined for Norm, not ${p.layerType}`;
  if (p.hasBias && p.layerType === 'Norm') return 'has_bias applies only to PreNorm and PostNorm';
  if (p.hasBias && p.quantType !== 'none') return 'has_bias is only supported without quantization';
  return undefined;
}

/** A weight (gamma, beta, bias) broadcasts along the normalized axes only: rank <= x's, last dim H, others 1 or x's. */
function weightShapeProblem(role: InputRole, w: TensorSpec, x: TensorSpec): string | undefined {
  const offset = x.shape.length - w.shape.length;
  if (offset < 0) return `${role} ${shapeText(w.shape)} has a higher rank than x ${shapeText(x.shape)}`;
  if (!sameDim(lastDim(w), lastDim(x))) return `${role}'s last dim ${lastDim(w)} is not x's last dim ${lastDim(x)}`;
  const bad = w.shape.findIndex((d, i) => d !== 1 && !sameDim(d, x.shape[offset + i]));
  if (bad >= 0) return `${role} ${shapeText(w.shape)} does not broadcast to x ${shapeText(x.shape)}`;
  return undefined;
}

function mathInputProblem(p: RmsNormParam, tensors: Map<InputRole, TensorSpec>): Failure | undefined {
  const x = tensors.get('x');
  if (!x) return fail('I', 'ERROR_INVALID_IN_TENSOR_NUM', 'x is absent');
  if (!isFloat(x.dtype)) return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', `x must be float32, float16 or bfloat16; got ${x.dtype}`);
  if (x.shape.length === 0) return fail('I', 'ERROR_INVALID_TENSOR_DIM', 'x must have at least one dimension');
  if (x.shape.some((d) => typeof d === 'number' && d < 0)) return fail('I', 'ERROR_INVALID_TENSOR_SIZE', `x has a negative dim: ${shapeText(x.shape)}`);
  if (p.precisionMode === 'high_performance' && x.dtype !== 'float16') {
    return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', `high_performance does its gamma multiply in float16 and needs float16 x; got ${x.dtype}`);
  }
  const residual = tensors.get('residual');
  if (residual && residual.dtype !== x.dtype) {
    return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', `residual must have x's dtype ${x.dtype}; got ${residual.dtype}`);
  }
  if (residual && !sameShape(residual.shape, x.shape)) {
    return fail('I', 'ERROR_INVALID_TENSOR_DIM', `residual ${shapeText(residual.shape)} must have x's shape ${shapeText(x.shape)}`);
  }
  for (const role of ['gamma', 'beta', 'bias'] as const) {
    const w = tensors.get(role);
    if (!w) continue;
    if (!isFloat(w.dtype)) return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', `${role} must be a float tensor; got ${w.dtype}`);
    const shapeProblem = weightShapeProblem(role, w, x);
    if (shapeProblem) return fail('I', 'ERROR_INVALID_TENSOR_DIM', shapeProblem);
  }
  return quantParamsProblem(tensors);
}

/** Static quantization: scale (float) and offset (int8) are single values (per-tensor). */
function quantParamsProblem(tensors: Map<InputRole, TensorSpec>): Failure | undefined {
  const scale = tensors.get('scale');
  if (scale && !isFloat(scale.dtype)) return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', `scale must be a float tensor; got ${scale.dtype}`);
  const offset = tensors.get('offset');
  if (offset && offset.dtype !== 'int8') {
    return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', `offset (the zero point) must be int8; got ${offset.dtype}`);
  }
  for (const t of [scale, offset]) {
    const n = t && elementCount(t);
    if (t && n !== 1) {
      const role = t === scale ? 'scale' : 'offset';
      return fail('I', 'ERROR_INVALID_TENSOR_DIM', `${role} must hold one value (per-tensor quantization); got shape ${shapeText(t.shape)}`);
    }
  }
  return undefined;
}

/** Per-row outputs (rstd, dynamic scale): x's leading dims, then up to k ones (k normalized axes). */
function isPerRowShape(shape: readonly Dim[], x: TensorSpec, k: number, onesRequired: boolean): boolean {
  const lead = x.shape.length - k;
  if (shape.length < lead || shape.length > x.shape.length) return false;
  if (onesRequired && shape.length !== x.shape.length) return false;
  return shape.every((d, i) => (i < lead ? sameDim(d, x.shape[i]) : d === 1));
}

function expectedOutputDtype(role: OutputRole, x: TensorSpec): DType {
  if (role === 'q') return 'int8';
  if (role === 'rstd' || role === 'scale') return 'float32';
  return x.dtype;
}

function mathOutputProblem(p: RmsNormParam, tensors: Map<InputRole, TensorSpec>, outputs: readonly TensorSpec[]): Failure | undefined {
  const roles = signature(p).outputs;
  if (outputs.length !== roles.length) {
    return fail('S', 'ERROR_INVALID_IN_TENSOR_NUM', `${variantText(p)} returns ${roles.length} outputs (${roles.join(', ')}); got ${outputs.length}`);
  }
  const x = tensors.get('x')!;
  const k = tensors.get('gamma')?.shape.length ?? 1;
  for (const [i, role] of roles.entries()) {
    const out = outputs[i];
    const dtype = expectedOutputDtype(role, x);
    if (out.dtype !== dtype) return fail('S', 'ERROR_INVALID_TENSOR_DTYPE', `output ${i} (${role}) must be ${dtype}; got ${out.dtype}`);
    const problem = outputShapeProblem(role, out, x, k);
    if (problem) return fail('S', problem.error, `output ${i} (${role}) ${problem.message}`);
  }
  return undefined;
}

function outputShapeProblem(role: OutputRole, out: TensorSpec, x: TensorSpec, k: number): { error: AtbError; message: string } | undefined {
  if (role === 'rstd') {
    if (isPerRowShape(out.shape, x, k, true)) return undefined;
    return { error: 'ERROR_INVALID_TENSOR_DIM', message: `must be x's shape with the ${k} normalized axes set to 1; got ${shapeText(out.shape)}` };
  }
  if (role === 'scale') {
    if (isPerRowShape(out.shape, x, k, false)) return undefined;
    return { error: 'ERROR_INVALID_TENSOR_DIM', message: `must hold one value per row of x ${shapeText(x.shape)}; got ${shapeText(out.shape)}` };
  }
  if (out.shape.length !== x.shape.length) {
    return { error: 'ERROR_INVALID_TENSOR_SIZE', message: `must have x's rank ${x.shape.length}; got ${shapeText(out.shape)}` };
  }
  if (!sameShape(out.shape, x.shape)) {
    return { error: 'ERROR_INVALID_TENSOR_DIM', message: `must have x's shape ${shapeText(x.shape)}; got ${shapeText(out.shape)}` };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// ATB's rules (the model of RmsNormOperation; conformance/atb_rms_norm.csv is the authority)

interface SocRules {
  bf16: boolean;
  /** PreNorm and PostNorm at all (910A and 310B run only Norm). */
  addNorm: boolean;
  postNormQuant: boolean;
  rstd: boolean;
}

const SOC_RULES: Record<AscendTarget, SocRules> = {
  ascend910a: { bf16: false, addNorm: false, postNormQuant: false, rstd: false },
  ascend910b: { bf16: true, addNorm: true, postNormQuant: true, rstd: true },
  ascend310p: { bf16: false, addNorm: true, postNormQuant: false, rstd: false },
  ascend310b: { bf16: false, addNorm: false, postNormQuant: false, rstd: false },
  ascend950: { bf16: true, addNorm: true, postNormQuant: false, rstd: false },
};

type AtbVariant =
  | 'Norm'
  | 'NormRstd'
  | 'NormQuant'
  | 'NormDynamicQuant'
  | 'PreNorm'
  | 'PreNormQuant'
  | 'PreNormDynamicQuant'
  | 'PostNorm'
  | 'PostNormQuant'
  | 'PostNormDynamicQuant';

/** One of ATB's operation IRs: tensor roles in order, and the activation dtypes its kernels take. */
interface AtbLayout {
  variant: AtbVariant;
  text: string;
  inputs: InputRole[];
  outputs: OutputRole[];
  activation: DType[];
}

const F16_BF16: DType[] = ['float16', 'bfloat16'];

function layout(variant: AtbVariant, text: string, inputs: InputRole[], outputs: OutputRole[], activation: DType[]): AtbLayout {
  return { variant, text, inputs, outputs, activation };
}

/**
 * The tensors of the operation ATB builds for a parameter (its GetInputNum/GetOutputNum and
 * ini tables). The *DynamicQuant layouts of PreNorm/PostNorm are rmsfuse's extension and take
 * the dtypes of ATB's Norm dynamic quantization.
 */
function atbLayout(raw: AtbRmsNormParam): AtbLayout | undefined {
  const sub = activeSubParam(raw);
  if (!sub || (sub.quantType !== ATB_QUANT_TYPE.UNDEFINED && sub.quantType !== ATB_QUANT_TYPE.INT8)) return undefined;
  const int8 = sub.quantType === ATB_QUANT_TYPE.INT8;
  const dynamic = int8 && sub.dynamicQuantType !== 0;
  if (raw.layerType === ATB_LAYER_TYPE.NORM) {
    if (!int8) {
      return raw.normParam.rstd
        ? layout('NormRstd', 'Norm with rstd', ['x', 'gamma'], ['y', 'rstd'], ['float16', 'float32', 'bfloat16'])
        : layout('Norm', 'Norm', ['x', 'gamma'], ['y'], F16_BF16);
    }
    return dynamic
      ? layout('NormDynamicQuant', 'Norm with int8 dynamic quantization', ['x', 'gamma', 'beta'], ['q', 'scale'], ['float16'])
      : layout('NormQuant', 'Norm with int8 static quantization', ['x', 'gamma', 'beta', 'scale', 'offset'], ['q'], F16_BF16);
  }
  const pre = raw.layerType === ATB_LAYER_TYPE.PRENORM;
  const name = pre ? 'PreNorm' : 'PostNorm';
  if (dynamic) {
    const outputs: OutputRole[] = pre ? ['q', 'scale', 'sum'] : ['q', 'scale'];
    return layout(pre ? 'PreNormDynamicQuant' : 'PostNormDynamicQuant', `${name} with int8 dynamic quantization`, ['x', 'residual', 'gamma', 'beta'], outputs, ['float16']);
  }
  if (int8) {
    return pre
      ? layout('PreNormQuant', 'PreNorm with int8 static quantization', ['x', 'residual', 'gamma', 'beta', 'scale', 'offset'], ['q', 'sum'], ['float16'])
      : layout('PostNormQuant', 'PostNorm with int8 static quantization', ['x', 'residual', 'gamma', 'scale', 'offset'], ['q', 'y'], F16_BF16);
  }
  const bias = raw.preNormParam.hasBias || raw.postNormParam.hasBias;
  const inputs: InputRole[] = bias ? ['x', 'bias', 'residual', 'gamma'] : ['x', 'residual', 'gamma'];
  return layout(pre ? 'PreNorm' : 'PostNorm', bias ? `${name} with bias` : name, inputs, pre ? ['y', 'sum'] : ['y'], F16_BF16);
}

/** Dtypes in ATB's ini tables: everything in the activation dtype T but offset/q (int8) and the dynamic scale (float). */
const atbInputDtype = (role: InputRole | undefined, t: DType): DType => (role === 'offset' ? 'int8' : t);
const atbOutputDtype = (role: OutputRole | undefined, t: DType): DType => (role === 'q' ? 'int8' : role === 'scale' ? 'float32' : t);

const anyInt8 = (raw: AtbRmsNormParam): boolean =>
  [raw.normParam, raw.preNormParam, raw.postNormParam].some((s) => s.quantType === ATB_QUANT_TYPE.INT8);

/** The rmsfuse extension fields of PreNorm/PostNorm (not in ATB's struct) that are set. */
function extensionInUse(raw: AtbRmsNormParam): string | undefined {
  const subs = [
    ['preNormParam', raw.preNormParam],
    ['postNormParam', raw.postNormParam],
  ] as const;
  for (const [name, sub] of subs) {
    for (const field of ['precisionMode', 'modelType', 'dynamicQuantType'] as const) {
      if (sub[field] !== 0) return `ATB's ${name} has no ${field} (${field} ${sub[field]} on PreNorm/PostNorm is an rmsfuse extension)`;
    }
  }
  return undefined;
}

/** The epsilon fields ATB requires to be nonzero, all of them whatever the layer type. */
function zeroEpsilon(raw: AtbRmsNormParam): string | undefined {
  const threshold = 2e-38;
  const fields: [string, number][] = [
    ['normParam.epsilon', raw.normParam.epsilon],
    ['preNormParam.epsilon', raw.preNormParam.epsilon],
    ['normParam.layerNormEps', raw.normParam.layerNormEps],
    ['postNormParam.epsilon', raw.postNormParam.epsilon],
  ];
  const found = fields.find(([, v]) => Math.abs(v) < threshold);
  return found && `${found[0]} is ${found[1]}: epsilon must be nonzero (|epsilon| >= 2e-38)`;
}

const LAYER_TEXT: Record<number, string> = { 0: 'an undefined layerType (0)', 1: 'Norm', 2: 'PreNorm', 3: 'PostNorm' };

function layerQuantProblem(raw: AtbRmsNormParam, soc: AscendTarget): string | undefined {
  const rules = SOC_RULES[soc];
  const sub = activeSubParam(raw);
  const okQuant = (q: number): boolean => q === ATB_QUANT_TYPE.UNDEFINED || q === ATB_QUANT_TYPE.INT8;
  if (!rules.addNorm && !(raw.layerType === ATB_LAYER_TYPE.NORM && okQuant(raw.normParam.quantType))) {
    const what = LAYER_TEXT[raw.layerType] ?? `layerType ${raw.layerType}`;
    return `${soc} runs only Norm (layerType 1), unquantized or int8; got ${what} with quantType ${sub?.quantType ?? raw.normParam.quantType}`;
  }
  if (!rules.postNormQuant && raw.postNormParam.quantType === ATB_QUANT_TYPE.INT8) {
    return `PostNorm with int8 quantization runs only on ascend910b, not ${soc}`;
  }
  if (!sub) return `layerType ${raw.layerType} is undefined (1 Norm, 2 PreNorm, 3 PostNorm)`;
  if (!okQuant(sub.quantType)) return `quantType ${sub.quantType} is not supported: RmsNorm takes 0 (none) or 2 (int8)`;
  return undefined;
}

/** Stage C: CreateOperation (reserved bytes, epsilon, layer/quant types per SoC, asymmetric dynamic quant). */
function atbCreationProblem(raw: AtbRmsNormParam, soc: AscendTarget, strict: boolean): Failure | undefined {
  const rsv = nonZeroRsv(raw);
  const problem =
    (rsv && `reserved bytes must be zero: ${rsv}`) ||
    (strict ? extensionInUse(raw) : undefined) ||
    zeroEpsilon(raw) ||
    layerQuantProblem(raw, soc) ||
    (activeSubParam(raw)?.dynamicQuantType === 2 ? 'asymmetric dynamic quantization (dynamicQuantType 2) is not supported; only symmetric (1)' : undefined);
  return problem ? fail('C', 'ERROR_INVALID_PARAM', problem) : undefined;
}

/** ATB's CheckTensorShape: rank 1..8, a size that is not negative and under 256 GiB. */
function atbTensorProblem(t: TensorSpec, what: string): { error: AtbError; message: string } | undefined {
  if (t.shape.length === 0 || t.shape.length > MAX_RANK) {
    return { error: 'ERROR_INVALID_TENSOR_DIM', message: `${what} has rank ${t.shape.length}; ATB takes ranks 1 to ${MAX_RANK}` };
  }
  const n = elementCount(t);
  if (t.shape.some((d) => typeof d === 'number' && d < 0) || (n !== undefined && n * BYTES[t.dtype] > MAX_TENSOR_BYTES)) {
    return { error: 'ERROR_INVALID_TENSOR_SIZE', message: `${what} ${shapeText(t.shape)} has an invalid size (negative, or over 256 GiB)` };
  }
  return undefined;
}

function comboText(dtypes: DType[]): string {
  return `(${dtypes.join(', ')})`;
}

/** ATB's CheckIniMatch: one row of the ini table matches every tensor's dtype and format (ND). */
function iniMatchProblem(l: AtbLayout, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[] | undefined): string | undefined {
  const matches = (t: DType): boolean =>
    inputs.every((x, i) => x.dtype === atbInputDtype(l.inputs[i], t) && formatOf(x) === 'nd') &&
    (outputs ?? []).every((y, i) => y.dtype === atbOutputDtype(l.outputs[i], t) && formatOf(y) === 'nd');
  if (l.activation.some(matches)) return undefined;
  const tensors = [...inputs, ...(outputs ?? [])];
  const combos = l.activation.map((t) =>
    comboText([...l.inputs.map((r) => atbInputDtype(r, t)), ...(outputs ? l.outputs.map((r) => atbOutputDtype(r, t)) : [])]),
  );
  const roles = [...l.inputs, ...(outputs ? l.outputs : [])].join(', ');
  const formats = tensors.some((t) => formatOf(t) !== 'nd') ? ` in formats (${tensors.map(formatOf).join(', ')})` : '';
  return `${l.text} takes (${roles}) as ${combos.join(' or ')}, format ND; got ${comboText(tensors.map((t) => t.dtype))}${formats}`;
}

/** ATB's DtypeCheck: rstd only with float32 x, high_performance only with float16 x. */
function atbDtypeProblem(raw: AtbRmsNormParam, soc: AscendTarget, x: TensorSpec): string | undefined {
  if (raw.normParam.rstd && x.dtype !== 'float32') return `rstd is only supported with float32 x on ${soc}; got ${x.dtype}`;
  const highPerformance = raw.normParam.precisionMode === 1 || (raw.layerType !== ATB_LAYER_TYPE.NORM && activeSubParam(raw)?.precisionMode === 1);
  if (highPerformance && x.dtype !== 'float16') return `high_performance is only supported with float16 x on ${soc}; got ${x.dtype}`;
  return undefined;
}

function atbWeightProblem(role: InputRole, w: TensorSpec | undefined, x: TensorSpec, sameDtypeAsX: boolean): string | undefined {
  if (!w) return undefined;
  if (sameDtypeAsX && (w.dtype !== x.dtype || formatOf(w) !== formatOf(x))) return `${role} must have x's dtype and format`;
  if (!sameDim(lastDim(w), lastDim(x))) return `${role}'s last dim ${lastDim(w)} is not x's last dim ${lastDim(x)}`;
  if (!onlyLastDimAbove1(w)) return `${role} ${shapeText(w.shape)} must be [1,...,1,${lastDim(x)}]`;
  return undefined;
}

function atbQuantTensorsProblem(scale: TensorSpec | undefined, offset: TensorSpec | undefined): string | undefined {
  for (const [role, t] of [['scale', scale], ['offset', offset]] as const) {
    if (t && !(t.shape.length === 1 && t.shape[0] === 1)) return `${role} must have shape [1]; got ${shapeText(t.shape)}`;
  }
  return undefined;
}

/** ATB's InferShapeCheckImpl shape rules per operation (all ERROR_INVALID_TENSOR_DIM). */
function atbShapeProblem(l: AtbLayout, t: Map<InputRole, TensorSpec>): string | undefined {
  const x = t.get('x')!;
  const gamma = t.get('gamma')!;
  const residual = t.get('residual');
  const beta = t.get('beta');
  if (residual && !sameDesc(x, residual)) return `residual ${tensorText(residual)} must equal x ${tensorText(x)} in dtype, format and shape`;
  switch (l.variant) {
    case 'NormRstd': {
      const offset = x.shape.length - gamma.shape.length;
      if (offset < 0) return `gamma ${shapeText(gamma.shape)} has a higher rank than x ${shapeText(x.shape)}`;
      if (!gamma.shape.every((d, i) => sameDim(d, x.shape[offset + i]))) {
        return `with rstd, gamma ${shapeText(gamma.shape)} must equal the trailing dims of x ${shapeText(x.shape)}`;
      }
      return undefined;
    }
    case 'Norm':
    case 'NormDynamicQuant':
      return atbWeightProblem('gamma', gamma, x, false);
    case 'NormQuant':
    case 'PreNormQuant':
      return (
        atbWeightProblem('gamma', gamma, x, false) ??
        (beta && !sameDesc(gamma, beta) ? `beta ${tensorText(beta)} must equal gamma ${tensorText(gamma)}` : undefined) ??
        atbQuantTensorsProblem(t.get('scale'), t.get('offset'))
      );
    case 'PostNormQuant':
      if (gamma.shape.length > 2) return `gamma must have rank 1 or 2 for PostNorm with quantization; got ${shapeText(gamma.shape)}`;
      return atbWeightProblem('gamma', gamma, x, false) ?? atbQuantTensorsProblem(t.get('scale'), t.get('offset'));
    case 'PreNormDynamicQuant':
    case 'PostNormDynamicQuant':
      return atbWeightProblem('gamma', gamma, x, false) ?? (beta && !sameDesc(gamma, beta) ? `beta ${tensorText(beta)} must equal gamma ${tensorText(gamma)}` : undefined);
    case 'PreNorm':
    case 'PostNorm':
      return atbWeightProblem('gamma', gamma, x, true) ?? atbWeightProblem('bias', t.get('bias'), x, true);
  }
}

const DYNAMIC_QUANT_MAX_H = 12288;

/** ATB's CheckLastDims: H aligned to 32 bytes (32 elements for PostNorm int8), dynamic quant H <= 12288, equal last dims. */
function atbLastDimProblem(raw: AtbRmsNormParam, l: AtbLayout, inputs: readonly TensorSpec[]): { error: AtbError; message: string } | undefined {
  const postQuant = raw.postNormParam.quantType === ATB_QUANT_TYPE.INT8;
  const error: AtbError = postQuant ? 'ERROR_INVALID_TENSOR_DIM' : 'ERROR_INVALID_TENSOR_SIZE';
  const x = inputs[0];
  const h = lastDim(x);
  if (typeof h !== 'number') return { error, message: `the normalized size H (x's last dim '${h}') must be static` };
  if (postQuant && h % 32 !== 0) return { error, message: `PostNorm with int8 quantization needs H to be a multiple of 32; got H=${h}` };
  const perBlock = 32 / (x.dtype === 'float32' ? 4 : 2);
  if (h % perBlock !== 0) return { error, message: `H=${h} must be a multiple of ${perBlock} (32 bytes of ${x.dtype})` };
  const sub = activeSubParam(raw);
  if (sub?.quantType === ATB_QUANT_TYPE.INT8 && sub.dynamicQuantType === 1 && h > DYNAMIC_QUANT_MAX_H) {
    return { error, message: `dynamic quantization needs H <= ${DYNAMIC_QUANT_MAX_H}; got H=${h}` };
  }
  const compared = inputs.length - (anyInt8(raw) ? 2 : 0);
  for (let i = 1; i < compared; i++) {
    if (!sameDim(lastDim(inputs[i]), h)) {
      return { error, message: `the last dims differ: x has H=${h}, ${l.inputs[i]} has ${lastDim(inputs[i])}` };
    }
  }
  return undefined;
}

/** ATB's ParamCheck (at inference): the mode combinations, has_bias, rstd per SoC. */
function atbParamProblem(raw: AtbRmsNormParam, soc: AscendTarget): string | undefined {
  const sub = activeSubParam(raw);
  const ext = raw.layerType === ATB_LAYER_TYPE.NORM ? undefined : sub;
  const quant = (sub?.quantType ?? 0) !== 0 || raw.normParam.quantType !== 0;
  const gemma = raw.normParam.modelType !== 0 || (ext?.modelType ?? 0) !== 0;
  const highPerformance = raw.normParam.precisionMode === 1 || ext?.precisionMode === 1;
  const rstd = raw.normParam.rstd;
  if (gemma && quant) return 'gemma (modelType 1) is not supported with quantization';
  if (gemma && highPerformance) return 'gemma and high_performance exclude each other';
  if (gemma && rstd) return 'gemma and rstd exclude each other';
  if (highPerformance && quant) return 'high_performance is not supported with quantization';
  if (highPerformance && rstd) return 'high_performance and rstd exclude each other';
  for (const s of [raw.preNormParam, raw.postNormParam]) {
    if (s.hasBias && s.quantType !== 0) return 'has_bias is only supported without quantization';
  }
  if (rstd && quant) return 'rstd is not supported with quantization';
  if (rstd && !SOC_RULES[soc].rstd) return `rstd is only supported on ascend910b, not ${soc}`;
  return undefined;
}

function bindByLayout(l: AtbLayout, inputs: readonly TensorSpec[]): Map<InputRole, TensorSpec> {
  const m = new Map<InputRole, TensorSpec>();
  l.inputs.forEach((role, i) => m.set(role, inputs[i]));
  return m;
}

/** Stage I: InferShapeCheck (input count, tensor shapes, ini dtypes, bf16 per SoC, then the operation's own checks). */
function atbInferProblem(raw: AtbRmsNormParam, soc: AscendTarget, l: AtbLayout, inputs: readonly TensorSpec[]): Failure | undefined {
  if (inputs.length !== l.inputs.length) {
    return fail('I', 'ERROR_INVALID_IN_TENSOR_NUM', `${l.text} takes ${l.inputs.length} inputs (${l.inputs.join(', ')}); got ${inputs.length}`);
  }
  for (const [i, t] of inputs.entries()) {
    const problem = atbTensorProblem(t, `input ${i} (${l.inputs[i]})`);
    if (problem) return fail('I', problem.error, problem.message);
  }
  const ini = iniMatchProblem(l, inputs, undefined);
  if (ini) return fail('I', 'ERROR_INVALID_TENSOR_INI_MATCH', ini);
  if (!SOC_RULES[soc].bf16 && inputs.some((t) => t.dtype === 'bfloat16')) {
    return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', `${soc} has no bfloat16 kernels (bfloat16 runs on ascend910b and ascend950)`);
  }
  const dtype = atbDtypeProblem(raw, soc, inputs[0]);
  if (dtype) return fail('I', 'ERROR_INVALID_TENSOR_DTYPE', dtype);
  const shape = atbShapeProblem(l, bindByLayout(l, inputs));
  if (shape) return fail('I', 'ERROR_INVALID_TENSOR_DIM', shape);
  const last = atbLastDimProblem(raw, l, inputs);
  if (last) return fail('I', last.error, last.message);
  const param = atbParamProblem(raw, soc);
  return param ? fail('I', 'ERROR_INVALID_PARAM', param) : undefined;
}

/** ATB's CheckOutTensorSame: an output like x (dtype given), else DTYPE, FORMAT, SIZE (rank), DIM. */
function outputLikeXProblem(x: TensorSpec, out: TensorSpec, dtype: DType, what: string): { error: AtbError; message: string } | undefined {
  if (out.dtype !== dtype) return { error: 'ERROR_INVALID_TENSOR_DTYPE', message: `${what} must be ${dtype}; got ${out.dtype}` };
  if (formatOf(out) !== formatOf(x)) return { error: 'ERROR_INVALID_TENSOR_FORMAT', message: `${what} must have x's format ${formatOf(x)}; got ${formatOf(out)}` };
  if (out.shape.length !== x.shape.length) return { error: 'ERROR_INVALID_TENSOR_SIZE', message: `${what} must have x's rank ${x.shape.length}; got ${shapeText(out.shape)}` };
  if (!sameShape(out.shape, x.shape)) return { error: 'ERROR_INVALID_TENSOR_DIM', message: `${what} must have x's shape ${shapeText(x.shape)}; got ${shapeText(out.shape)}` };
  return undefined;
}

/** Stage S: Setup (output count, tensor shapes, ini dtypes of inputs and outputs, then the operation's output checks). */
function atbSetupProblem(raw: AtbRmsNormParam, l: AtbLayout, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]): Failure | undefined {
  if (outputs.length !== l.outputs.length) {
    return fail('S', 'ERROR_INVALID_IN_TENSOR_NUM', `${l.text} returns ${l.outputs.length} outputs (${l.outputs.join(', ')}); got ${outputs.length}`);
  }
  for (const [i, t] of outputs.entries()) {
    const problem = atbTensorProblem(t, `output ${i} (${l.outputs[i]})`);
    if (problem) return fail('S', problem.error, problem.message);
  }
  const ini = iniMatchProblem(l, inputs, outputs);
  if (ini) return fail('S', 'ERROR_INVALID_TENSOR_INI_MATCH', ini);
  const x = inputs[0];
  const first = outputLikeXProblem(x, outputs[0], anyInt8(raw) ? 'int8' : x.dtype, `output 0 (${l.outputs[0]})`);
  if (first) return fail('S', first.error, first.message);
  if (l.variant === 'PreNormQuant' || l.variant === 'PostNormQuant') {
    const second = outputLikeXProblem(x, outputs[1], x.dtype, `output 1 (${l.outputs[1]})`);
    if (second) return fail('S', second.error, second.message);
  }
  if (raw.normParam.rstd && !isPerRowShape(outputs[1].shape, x, inputs[1].shape.length, true)) {
    return fail('S', 'ERROR_INVALID_TENSOR_DIM', `output 1 (rstd) must be x's shape with gamma's ${inputs[1].shape.length} axes set to 1; got ${shapeText(outputs[1].shape)}`);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// What fusion does for an Ascend target (not under strictAtb)

const CONVERTIBLE: readonly InputRole[] = ['gamma', 'beta', 'bias', 'scale'];

/** An initializer as fusion hands it to the target: float weights in x's dtype, a scalar scale/offset as [1]. */
function convertInitializer(role: InputRole | undefined, t: TensorSpec, x: TensorSpec | undefined): TensorSpec {
  if (!t.initializer || !x || !role) return t;
  let out = t;
  if (CONVERTIBLE.includes(role) && isFloat(t.dtype) && t.dtype !== x.dtype) out = { ...out, dtype: x.dtype };
  if ((role === 'scale' || role === 'offset') && out.shape.length === 0) out = { ...out, shape: [1] };
  return out;
}

/** The zeros fusion supplies for an absent beta (gamma's shape, x's dtype) or offset (int8 [1]). */
function zeroInitializer(role: InputRole | undefined, x: TensorSpec | undefined, gamma: MaybeTensor): TensorSpec | undefined {
  if (role === 'beta' && x && isPresent(gamma)) return { dtype: x.dtype, shape: gamma.shape, format: gamma.format, initializer: true };
  if (role === 'offset') return { dtype: 'int8', shape: [1], initializer: true };
  return undefined;
}

function prepareForAtb(l: AtbLayout, inputs: readonly MaybeTensor[]): TensorSpec[] {
  const list = [...inputs];
  while (list.length < l.inputs.length) list.push(undefined);
  const x = isPresent(list[0]) ? list[0] : undefined;
  const gamma = list[l.inputs.indexOf('gamma')];
  return list
    .map((t, i) => (isPresent(t) ? convertInitializer(l.inputs[i], t, x) : zeroInitializer(l.inputs[i], x, gamma)))
    .filter(isPresent);
}
