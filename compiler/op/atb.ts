/**
 * Ascend ATB's `RmsNormParam` as ATB itself holds it (numbers, nested per layer type), the
 * mapping from ATB's JSON and SoC names, and the conversion to and from rmsfuse's clean
 * `RmsNormParam`.
 *
 * The raw form exists so that the validator can see what ATB sees, including values rmsfuse's
 * own type cannot hold (layerType 0, quantType 1, asymmetric dynamic quantization, a zero
 * `layerNormEps`, reserved bytes) and reject them the way ATB does.
 */
import type { DType, RmsNormParam } from './param.js';
import { ASCEND_TARGETS, type AscendTarget } from './target.js';

/** ATB's enum values (atb/infer_op_params.h). */
export const ATB_LAYER_TYPE = { UNDEFINED: 0, NORM: 1, PRENORM: 2, POSTNORM: 3 } as const;
export const ATB_QUANT_TYPE = { UNDEFINED: 0, INT4: 1, INT8: 2, INT16: 3, FLOAT8: 4, FLOAT16: 5 } as const;
export const ATB_DYNAMIC_QUANT_TYPE = { UNDEFINED: 0, SYMMETRIC: 1, ASYMMETRIC: 2 } as const;
export const ATB_PRECISION_MODE = { HIGH_PRECISION: 0, HIGH_PERFORMANCE: 1 } as const;
export const ATB_MODEL_TYPE = { LLAMA: 0, GEMMA: 1 } as const;

/** `RmsNormParam::NormParam` (layerType 1). */
export interface AtbNormParam {
  quantType: number;
  /** A C++ float: parseAtbParam rounds it to float32 as ATB does. */
  epsilon: number;
  /** Unused by the kernels, but ATB still rejects 0. */
  layerNormEps: number;
  rstd: boolean;
  precisionMode: number;
  modelType: number;
  dynamicQuantType: number;
  rsv: number[];
}

/**
 * `RmsNormParam::PreNormParam` / `PostNormParam` (layerType 2 / 3). precisionMode, modelType and
 * dynamicQuantType are not members of ATB's struct: they carry rmsfuse's extension of SPEC
 * section 2 and stay 0 for anything ATB itself can run.
 */
export interface AtbAddNormParam {
  quantType: number;
  epsilon: number;
  hasBias: boolean;
  rsv: number[];
  precisionMode: number;
  modelType: number;
  dynamicQuantType: number;
}

export interface AtbRmsNormParam {
  layerType: number;
  normParam: AtbNormParam;
  preNormParam: AtbAddNormParam;
  postNormParam: AtbAddNormParam;
  rsv: number[];
}

const DEFAULT_EPSILON = Math.fround(1e-5);

function defaultAddNormParam(): AtbAddNormParam {
  return { quantType: 0, epsilon: DEFAULT_EPSILON, hasBias: false, rsv: [], precisionMode: 0, modelType: 0, dynamicQuantType: 0 };
}

/** ATB's defaults: every field as a default-constructed `atb::infer::RmsNormParam` has it. */
export function defaultAtbParam(): AtbRmsNormParam {
  return {
    layerType: ATB_LAYER_TYPE.UNDEFINED,
    normParam: {
      quantType: 0,
      epsilon: DEFAULT_EPSILON,
      layerNormEps: 1e-5,
      rstd: false,
      precisionMode: 0,
      modelType: 0,
      dynamicQuantType: 0,
      rsv: [],
    },
    preNormParam: defaultAddNormParam(),
    postNormParam: defaultAddNormParam(),
    rsv: [],
  };
}

/** The sub-parameter ATB reads for a layer type (undefined for an undefined layer type). */
export function activeSubParam(raw: AtbRmsNormParam): AtbNormParam | AtbAddNormParam | undefined {
  switch (raw.layerType) {
    case ATB_LAYER_TYPE.NORM:
      return raw.normParam;
    case ATB_LAYER_TYPE.PRENORM:
      return raw.preNormParam;
    case ATB_LAYER_TYPE.POSTNORM:
      return raw.postNormParam;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON (the OpParam column of ATB's test tables, ATB's own JSON bindings)

/** Enum members may be written as numbers or by their C++ names (with or without the prefix). */
const ENUM_NAMES: Record<string, Record<string, number>> = {
  layerType: { RMS_NORM_UNDEFINED: 0, RMS_NORM_NORM: 1, RMS_NORM_PRENORM: 2, RMS_NORM_POSTNORM: 3 },
  quantType: { QUANT_UNDEFINED: 0, QUANT_UNQUANT: 0, QUANT_INT4: 1, QUANT_INT8: 2, QUANT_INT16: 3, QUANT_FLOAT8: 4, QUANT_FLOAT16: 5 },
  dynamicQuantType: { DYNAMIC_QUANT_UNDEFINED: 0, DYNAMIC_QUANT_SYMMETRIC: 1, DYNAMIC_QUANT_ASYMMETRIC: 2 },
  precisionMode: { HIGH_PRECISION_MODE: 0, HIGH_PERFORMANCE_MODE: 1 },
  modelType: { LLAMA_MODEL: 0, GEMMA_MODEL: 1 },
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readEnum(obj: Json, key: string, fallback: number): number {
  const v = obj[key];
  if (v === undefined) return fallback;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && ENUM_NAMES[key]?.[v] !== undefined) return ENUM_NAMES[key][v];
  throw new TypeError(`RmsNormParam ${key}: expected an integer or an enum name, got ${JSON.stringify(v)}`);
}

function readNumber(obj: Json, key: string, fallback: number): number {
  const v = obj[key];
  if (v === undefined) return fallback;
  if (typeof v === 'number') return v;
  throw new TypeError(`RmsNormParam ${key}: expected a number, got ${JSON.stringify(v)}`);
}

function readBool(obj: Json, key: string, fallback: boolean): boolean {
  const v = obj[key];
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  throw new TypeError(`RmsNormParam ${key}: expected a boolean, got ${JSON.stringify(v)}`);
}

function readRsv(obj: Json): number[] {
  const v = obj.rsv;
  if (v === undefined) return [];
  if (Array.isArray(v) && v.every((b) => typeof b === 'number')) return v as number[];
  throw new TypeError(`RmsNormParam rsv: expected an array of numbers, got ${JSON.stringify(v)}`);
}

function subObject(json: Json, key: string): Json {
  const v = json[key];
  if (v === undefined) return {};
  if (isObject(v)) return v;
  throw new TypeError(`RmsNormParam ${key}: expected an object, got ${JSON.stringify(v)}`);
}

function parseNormParam(obj: Json, into: AtbNormParam): void {
  into.epsilon = Math.fround(readNumber(obj, 'epsilon', into.epsilon));
  into.quantType = readEnum(obj, 'quantType', into.quantType);
  into.layerNormEps = readNumber(obj, 'layerNormEps', into.layerNormEps);
  into.rstd = readBool(obj, 'rstd', into.rstd);
  into.precisionMode = readEnum(obj, 'precisionMode', into.precisionMode);
  into.modelType = readEnum(obj, 'modelType', into.modelType);
  into.dynamicQuantType = readEnum(obj, 'dynamicQuantType', into.dynamicQuantType);
  into.rsv = readRsv(obj);
}

function parseAddNormParam(obj: Json, into: AtbAddNormParam): void {
  into.epsilon = Math.fround(readNumber(obj, 'epsilon', into.epsilon));
  into.quantType = readEnum(obj, 'quantType', into.quantType);
  into.hasBias = readBool(obj, 'hasBias', into.hasBias);
  into.rsv = readRsv(obj);
  // rmsfuse extension fields (ATB's PreNormParam/PostNormParam have none of them).
  into.precisionMode = readEnum(obj, 'precisionMode', into.precisionMode);
  into.modelType = readEnum(obj, 'modelType', into.modelType);
  into.dynamicQuantType = readEnum(obj, 'dynamicQuantType', into.dynamicQuantType);
}

/**
 * Reads ATB's JSON form of `RmsNormParam` the way ATB's JSON binding does: only the sub-parameter
 * of the given layerType is read (the others keep their defaults), epsilon is a C++ float, fields
 * ATB has dropped (quantInputScale, quantInputOffset, ...) are ignored. Values are not checked
 * here: an undefined layerType or quantType is kept so that the validator can reject it.
 */
export function parseAtbParam(json: object | string): AtbRmsNormParam {
  const obj: unknown = typeof json === 'string' ? JSON.parse(json) : json;
  if (!isObject(obj)) throw new TypeError('RmsNormParam JSON must be an object');
  const raw = defaultAtbParam();
  raw.layerType = readEnum(obj, 'layerType', raw.layerType);
  if (raw.layerType === ATB_LAYER_TYPE.NORM) parseNormParam(subObject(obj, 'normParam'), raw.normParam);
  if (raw.layerType === ATB_LAYER_TYPE.PRENORM) parseAddNormParam(subObject(obj, 'preNormParam'), raw.preNormParam);
  if (raw.layerType === ATB_LAYER_TYPE.POSTNORM) parseAddNormParam(subObject(obj, 'postNormParam'), raw.postNormParam);
  raw.rsv = readRsv(obj);
  return raw;
}

// ---------------------------------------------------------------------------------------------
// Conversion to and from rmsfuse's RmsNormParam

export type ParamConversion = { ok: true; param: RmsNormParam } | { ok: false; reason: string };

const LAYER_NAME: Record<number, RmsNormParam['layerType']> = { 1: 'Norm', 2: 'PreNorm', 3: 'PostNorm' };

/** Where a non-zero reserved byte sits, e.g. `normParam.rsv[0]`; undefined when all are zero. */
export function nonZeroRsv(raw: AtbRmsNormParam): string | undefined {
  const places: [string, number[]][] = [
    ['rsv', raw.rsv],
    ['normParam.rsv', raw.normParam.rsv],
    ['preNormParam.rsv', raw.preNormParam.rsv],
    ['postNormParam.rsv', raw.postNormParam.rsv],
  ];
  for (const [name, bytes] of places) {
    const i = bytes.findIndex((b) => b !== 0);
    if (i >= 0) return `${name}[${i}] is ${bytes[i]}`;
  }
  return undefined;
}

function quantFromAtb(n: number): RmsNormParam['quantType'] | undefined {
  return n === ATB_QUANT_TYPE.UNDEFINED ? 'none' : n === ATB_QUANT_TYPE.INT8 ? 'int8' : undefined;
}

function dynamicQuantFromAtb(n: number): RmsNormParam['dynamicQuant'] | undefined {
  return n === 0 ? 'none' : n === 1 ? 'symmetric' : undefined;
}

/**
 * The rmsfuse parameter for an ATB parameter, or why there is none (undefined layer type, a
 * quantization other than none/int8, asymmetric dynamic quantization, reserved bytes set).
 */
export function toRmsNormParam(raw: AtbRmsNormParam): ParamConversion {
  const rsv = nonZeroRsv(raw);
  if (rsv) return { ok: false, reason: `reserved bytes must be zero: ${rsv}` };
  const layerType = LAYER_NAME[raw.layerType];
  const sub = activeSubParam(raw);
  if (!layerType || !sub) {
    return { ok: false, reason: `layerType ${raw.layerType} is not defined (1 Norm, 2 PreNorm, 3 PostNorm)` };
  }
  const quantType = quantFromAtb(sub.quantType);
  if (!quantType) return { ok: false, reason: `quantType ${sub.quantType} is not supported (0 none, 2 int8)` };
  const dynamicQuant = dynamicQuantFromAtb(sub.dynamicQuantType);
  if (!dynamicQuant) {
    return { ok: false, reason: `dynamicQuantType ${sub.dynamicQuantType} is not supported (0 none, 1 symmetric)` };
  }
  if (sub.precisionMode !== 0 && sub.precisionMode !== 1) {
    return { ok: false, reason: `precisionMode ${sub.precisionMode} is not defined (0 high precision, 1 high performance)` };
  }
  if (sub.modelType !== 0 && sub.modelType !== 1) {
    return { ok: false, reason: `modelType ${sub.modelType} is not defined (0 llama, 1 gemma)` };
  }
  return {
    ok: true,
    param: {
      layerType,
      epsilon: sub.epsilon,
      quantType,
      dynamicQuant,
      precisionMode: sub.precisionMode === 1 ? 'high_performance' : 'high_precision',
      modelType: sub.modelType === 1 ? 'gemma' : 'llama',
      rstd: 'rstd' in sub ? sub.rstd : false,
      hasBias: 'hasBias' in sub ? sub.hasBias : false,
    },
  };
}

/**
 * Why ATB's own `RmsNormParam` cannot hold this parameter (an rmsfuse extension, or a field the
 * layer type does not have); undefined when it can.
 */
export function atbCannotExpress(p: RmsNormParam): string | undefined {
  if (p.layerType === 'Norm') {
    return p.hasBias ? 'ATB has has_bias only for PreNorm and PostNorm' : undefined;
  }
  const where = `ATB's ${p.layerType === 'PreNorm' ? 'preNormParam' : 'postNormParam'}`;
  if (p.rstd) return `${where} has no rstd: rstd exists only for Norm`;
  if (p.precisionMode !== 'high_precision') return `${where} has no precisionMode (high_performance on ${p.layerType} is an rmsfuse extension)`;
  if (p.modelType !== 'llama') return `${where} has no modelType (gemma on ${p.layerType} is an rmsfuse extension)`;
  if (p.dynamicQuant !== 'none') return `${where} has no dynamicQuantType (dynamic quantization on ${p.layerType} is an rmsfuse extension)`;
  return undefined;
}

/** The ATB form of an rmsfuse parameter; extensions go to the extension fields (see AtbAddNormParam). */
export function fromRmsNormParam(p: RmsNormParam): AtbRmsNormParam {
  const raw = defaultAtbParam();
  const quantType = p.quantType === 'int8' ? ATB_QUANT_TYPE.INT8 : ATB_QUANT_TYPE.UNDEFINED;
  const dynamicQuantType = p.dynamicQuant === 'symmetric' ? ATB_DYNAMIC_QUANT_TYPE.SYMMETRIC : 0;
  const precisionMode = p.precisionMode === 'high_performance' ? ATB_PRECISION_MODE.HIGH_PERFORMANCE : 0;
  const modelType = p.modelType === 'gemma' ? ATB_MODEL_TYPE.GEMMA : 0;
  if (p.layerType === 'Norm') {
    raw.layerType = ATB_LAYER_TYPE.NORM;
    Object.assign(raw.normParam, { quantType, epsilon: p.epsilon, rstd: p.rstd, precisionMode, modelType, dynamicQuantType });
  } else {
    raw.layerType = p.layerType === 'PreNorm' ? ATB_LAYER_TYPE.PRENORM : ATB_LAYER_TYPE.POSTNORM;
    const sub = p.layerType === 'PreNorm' ? raw.preNormParam : raw.postNormParam;
    Object.assign(sub, { quantType, epsilon: p.epsilon, hasBias: p.hasBias, precisionMode, modelType, dynamicQuantType });
  }
  return raw;
}

export function isAtbParam(p: RmsNormParam | AtbRmsNormParam): p is AtbRmsNormParam {
  return typeof p.layerType === 'number';
}

// ---------------------------------------------------------------------------------------------
// SoC names and tensor dtypes as ATB's tables write them

/**
 * The target of an Ascend SoC name (`Ascend910B`, `Ascend910B4`, `Ascend910_9391` (A3, runs the
 * 910B kernels), `Ascend310P3`, `Ascend310B1`, `Ascend910A`, `Ascend950`, or a target name).
 */
export function targetFromSoc(name: string): AscendTarget {
  const n = name.trim().toLowerCase();
  if ((ASCEND_TARGETS as readonly string[]).includes(n)) return n as AscendTarget;
  if (n.startsWith('ascend910b') || n.startsWith('ascend910_93')) return 'ascend910b';
  if (n.startsWith('ascend910')) return 'ascend910a';
  if (n.startsWith('ascend310p')) return 'ascend310p';
  if (n.startsWith('ascend310b')) return 'ascend310b';
  if (n.startsWith('ascend950')) return 'ascend950';
  throw new Error(`unknown Ascend SoC '${name}'`);
}

/** A table's SocVersion field: comma-separated names; empty means every SoC. */
export function targetsFromSocList(field: string): AscendTarget[] {
  const names = field.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) return [...ASCEND_TARGETS];
  return [...new Set(names.map(targetFromSoc))];
}

const DTYPE_FROM_ATB: Record<string, DType> = {
  float: 'float32',
  float32: 'float32',
  float16: 'float16',
  bf16: 'bfloat16',
  bfloat16: 'bfloat16',
  int8: 'int8',
  uint8: 'uint8',
  int32: 'int32',
  int64: 'int64',
};

/** A dtype as ATB's tables write it (`float`, `float16`, `bf16`, `int8`, ...). */
export function dtypeFromAtb(name: string): DType {
  const d = DTYPE_FROM_ATB[name.trim().toLowerCase()];
  if (!d) throw new Error(`unknown ATB dtype '${name}'`);
  return d;
}
