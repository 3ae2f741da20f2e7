/**
 * The RMSNorm operation as rmsfuse understands it: a typed mirror of Ascend ATB's
 * `RmsNormParam` plus the fused-node contract of SPEC section 3 (op types, attribute
 * names, the order of inputs and outputs for every variant).
 *
 * Everything else (passes, codegen, the CPU reference, the validator) reads the
 * operation from here, so a variant is defined once.
 */

export type LayerType = 'Norm' | 'PreNorm' | 'PostNorm';
export type QuantType = 'none' | 'int8';
export type DynamicQuantType = 'none' | 'symmetric';
export type PrecisionMode = 'high_precision' | 'high_performance';
export type ModelType = 'llama' | 'gemma';

/** Element types rmsfuse deals with at the operation level (names as onnxruntime-node spells them). */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'int64';
export type FloatDType = 'float32' | 'float16' | 'bfloat16';

export interface RmsNormParam {
  layerType: LayerType;
  /** Added to mean(x^2) before the square root; 0 < epsilon <= 1. */
  epsilon: number;
  quantType: QuantType;
  /** 'symmetric' only together with quantType 'int8': per-row scale computed at run time. */
  dynamicQuant: DynamicQuantType;
  /** high_performance: only the gamma multiply is done in fp16 (HF Llama fp16 style). */
  precisionMode: PrecisionMode;
  /** gemma: multiply by (1 + gamma) instead of gamma. */
  modelType: ModelType;
  /** Norm only: also output rstd (fp32, x's shape with the normalized axes set to 1). */
  rstd: boolean;
  /** PreNorm/PostNorm without quantization: a constant bias is added to x + residual. */
  hasBias: boolean;
}

/** The ONNX domain and op types of fused nodes (SPEC section 3). */
export const RMSFUSE_DOMAIN = 'rmsfuse';
export const RMSFUSE_OPSET_VERSION = 1;
export const OP_TYPE: Record<LayerType, string> = { Norm: 'RmsNorm', PreNorm: 'PreNorm', PostNorm: 'PostNorm' };
export const LAYER_TYPE_OF_OP: Record<string, LayerType> = { RmsNorm: 'Norm', PreNorm: 'PreNorm', PostNorm: 'PostNorm' };

export function defaultParam(layerType: LayerType = 'Norm', epsilon = 1e-5): RmsNormParam {
  return {
    layerType,
    epsilon,
    quantType: 'none',
    dynamicQuant: 'none',
    precisionMode: 'high_precision',
    modelType: 'llama',
    rstd: false,
    hasBias: false,
  };
}

export const isStaticQuant = (p: RmsNormParam): boolean => p.quantType === 'int8' && p.dynamicQuant === 'none';
export const isDynamicQuant = (p: RmsNormParam): boolean => p.quantType === 'int8' && p.dynamicQuant === 'symmetric';
export const hasResidual = (p: RmsNormParam): boolean => p.layerType !== 'Norm';

/** Role of each input slot of a fused node. Optional slots may be absent (empty name). */
export type InputRole = 'x' | 'bias' | 'residual' | 'gamma' | 'beta' | 'scale' | 'offset';
/**
 * Role of each output: y (norm result in T), q (int8), rstd (fp32 per row),
 * scale (fp32 per row, dynamic quant), sum (x + residual (+ bias), in T).
 */
export type OutputRole = 'y' | 'q' | 'rstd' | 'scale' | 'sum';

export interface Signature {
  inputs: InputRole[];
  /** Inputs that may be absent: beta, bias, offset. Absent ones are zero. */
  optional: InputRole[];
  outputs: OutputRole[];
}

/**
 * Input and output order of every variant (SPEC section 2 table). Interior absent
 * optional inputs are written as '' and trailing ones are left off (ONNX convention).
 */
export function signature(p: RmsNormParam): Signature {
  const optional: InputRole[] = ['bias', 'beta', 'offset'];
  if (p.layerType === 'Norm') {
    if (isStaticQuant(p)) return { inputs: ['x', 'gamma', 'beta', 'scale', 'offset'], optional, outputs: ['q'] };
    if (isDynamicQuant(p)) return { inputs: ['x', 'gamma', 'beta'], optional, outputs: ['q', 'scale'] };
    return { inputs: ['x', 'gamma'], optional, outputs: p.rstd ? ['y', 'rstd'] : ['y'] };
  }
  const pre = p.layerType === 'PreNorm';
  if (isStaticQuant(p)) {
    return pre
      ? { inputs: ['x', 'residual', 'gamma', 'beta', 'scale', 'offset'], optional, outputs: ['q', 'sum'] }
      : { inputs: ['x', 'residual', 'gamma', 'scale', 'offset'], optional, outputs: ['q', 'y'] };
  }
  if (isDynamicQuant(p)) {
    return { inputs: ['x', 'residual', 'gamma', 'beta'], optional, outputs: pre ? ['q', 'scale', 'sum'] : ['q', 'scale'] };
  }
  return { inputs: ['x', 'bias', 'residual', 'gamma'], optional, outputs: pre ? ['y', 'sum'] : ['y'] };
}

/** Attribute values exactly as written on a fused node (SPEC section 3; all always written). */
export interface FusedAttributes {
  epsilon: number;
  quant_type: QuantType;
  dynamic_quant: DynamicQuantType;
  precision_mode: PrecisionMode;
  model_type: ModelType;
  rstd: 0 | 1;
  has_bias: 0 | 1;
}

export function toAttributes(p: RmsNormParam): FusedAttributes {
  return {
    epsilon: p.epsilon,
    quant_type: p.quantType,
    dynamic_quant: p.dynamicQuant,
    precision_mode: p.precisionMode,
    model_type: p.modelType,
    rstd: p.rstd ? 1 : 0,
    has_bias: p.hasBias ? 1 : 0,
  };
}

export function fromAttributes(opType: string, a: FusedAttributes): RmsNormParam {
  const layerType = LAYER_TYPE_OF_OP[opType];
  if (!layerType) throw new Error(`'${opType}' is not a fused RMSNorm op type`);
  return {
    layerType,
    epsilon: a.epsilon,
    quantType: a.quant_type,
    dynamicQuant: a.dynamic_quant,
    precisionMode: a.precision_mode,
    modelType: a.model_type,
    rstd: a.rstd === 1,
    hasBias: a.has_bias === 1,
  };
}

/** A tensor at a fused node's boundary, as the manifest and the kernel generators see it. */
export interface TensorDesc {
  /** The ONNX tensor name ('' for an absent optional input). */
  name: string;
  role: InputRole | OutputRole;
  dtype: DType;
  /** Dims; a symbolic dim (batch, sequence) is a string. */
  shape: (number | string)[];
  /** True when the tensor is an initializer (gamma, beta, bias, scale, offset usually are). */
  initializer?: boolean;
}

/** One fused node with everything codegen needs: what the driver hands to the generators. */
export interface FusedNodeDesc {
  node: string;
  opType: string;
  param: RmsNormParam;
  inputs: TensorDesc[];
  outputs: TensorDesc[];
  /** Constant values of initializer inputs, where a generator may bake them in (scale, offset). */
  constants?: Partial<Record<InputRole, number>>;
}

/** A short structural name of a variant, e.g. `prenorm_f16_high_performance` (function names, kernel ids). */
export function variantName(p: RmsNormParam, xDType: FloatDType): string {
  const dt = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' }[xDType];
  const parts = [OP_TYPE[p.layerType].toLowerCase(), dt];
  if (p.modelType === 'gemma') parts.push('gemma');
  if (p.precisionMode === 'high_performance') parts.push('high_performance');
  if (p.rstd) parts.push('rstd');
  if (p.hasBias) parts.push('bias');
  if (isStaticQuant(p)) parts.push('int8_static');
  if (isDynamicQuant(p)) parts.push('int8_dynamic');
  return parts.join('_');
}
