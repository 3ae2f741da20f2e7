/**
 * Shared pieces of the Ascend C tests: fused-node descriptions for a variant, random inputs,
 * and one call that runs a kernel on the CPU model and compares it with runtime/reference.ts.
 */
import { defaultParam, signature, type DType, type FloatDType, type FusedNodeDesc, type RmsNormParam, type TensorDesc } from '../../compiler/op/param.js';
import { ascendSpec, type AscendKernelSpec } from '../../codegen/ascendc/spec.js';
import type { AscendTarget } from '../../compiler/op/target.js';

export interface VariantOptions {
  layer?: RmsNormParam['layerType'];
  quant?: 'static' | 'dynamic';
  gemma?: boolean;
  hp?: boolean;
  rstd?: boolean;
  bias?: boolean;
  beta?: boolean;
  offset?: boolean;
  epsilon?: number;
  /** dtype of gamma (and beta, bias); default x's. */
  gammaDType?: FloatDType;
  scaleDType?: FloatDType;
}

export function paramOf(o: VariantOptions): RmsNormParam {
  const p = defaultParam(o.layer ?? 'Norm', o.epsilon ?? 1e-5);
  if (o.quant) {
    p.quantType = 'int8';
    p.dynamicQuant = o.quant === 'dynamic' ? 'symmetric' : 'none';
  }
  if (o.gemma) p.modelType = 'gemma';
  if (o.hp) p.precisionMode = 'high_performance';
  if (o.rstd) p.rstd = true;
  if (o.bias) p.hasBias = true;
  return p;
}

/** A fused node with x of shape [...rows, H] (rows: one dim or several, symbolic as strings). */
export function makeDesc(name: string, o: VariantOptions, xDType: FloatDType, H: number, rows: number | string | (number | string)[] = 'batch'): FusedNodeDesc {
  const param = paramOf(o);
  const sig = signature(param);
  const present = new Set<string>(['x', 'residual', 'gamma', 'scale']);
  if (o.bias) present.add('bias');
  if (o.beta) present.add('beta');
  if (o.offset) present.add('offset');
  const lead = Array.isArray(rows) ? rows : [rows];
  const rowShape: (number | string)[] = [...lead, H];
  const dtypeOf = (role: string): DType => {
    if (role === 'x' || role === 'residual') return xDType;
    if (role === 'scale') return o.scaleDType ?? 'float32';
    if (role === 'offset') return 'int8';
    return o.gammaDType ?? xDType;
  };
  const inputs: TensorDesc[] = [];
  for (const role of sig.inputs) {
    if (!present.has(role)) {
      inputs.push({ name: '', role, dtype: 'float32', shape: [] });
      continue;
    }
    const shape = role === 'x' || role === 'residual' ? rowShape : role === 'scale' || role === 'offset' ? [1] : [H];
    inputs.push({ name: `${name}_${role}`, role, dtype: dtypeOf(role), shape, initializer: !(role === 'x' || role === 'residual') });
  }
  while (inputs.length && inputs[inputs.length - 1]!.name === '') inputs.pop();
  const outputs: TensorDesc[] = sig.outputs.map((role) => ({
    name: `${name}_out_${role}`,
    role,
    dtype: role === 'q' ? 'int8' : role === 'rstd' || role === 'scale' ? 'float32' : xDType,
    shape: role === 'rstd' || role === 'scale' ? [...lead, 1] : rowShape,
  }));
  return { node: name, opType: { Norm: 'RmsNorm', PreNorm: 'PreNorm', PostNorm: 'PostNorm' }[param.layerType], param, inputs, outputs };
}

export function makeSpec(o: VariantOptions, xDType: FloatDType, H: number, target: AscendTarget = 'ascend910b'): AscendKernelSpec {
  return ascendSpec(makeDesc('n', o, xDType, H), target);
}

// ---------------------------------------------------------------------------------------------
// Running generated kernels on the CPU model

import { generateAscend } from '../../codegen/ascendc/generate.js';
import { DTYPE_BYTES, kernelId, kernelParams, paramElements } from '../../codegen/ascendc/spec.js';
import { computeTiling, serializeTiling, type Platform, type Tiling } from '../../codegen/ascendc/tiling.js';
import { buildRunner, runJobs, type KernelSource, type LaunchJob, type LaunchResult } from '../../runtime/ascendc/harness.js';
import { checkOutputs, randomCase, trafficFigure, type OutputCheck, type TrafficFigure } from '../../runtime/ascendc/verify.js';

export function kernelSource(spec: AscendKernelSpec): KernelSource {
  const id = kernelId(spec);
  const g = generateAscend(spec);
  return { id, cpp: g.kernelCpp, headers: { [`${id}_tiling.h`]: g.tilingHeader }, params: kernelParams(spec).map((p) => p.name) };
}

export interface Launch {
  spec: AscendKernelSpec;
  rows: number;
  platform: Platform;
  seed?: number;
}

export interface LaunchOutcome {
  launch: Launch;
  tiling: Tiling;
  result: LaunchResult;
  checks: OutputCheck[];
  traffic: TrafficFigure;
}

/** Builds one runner for all the launches' kernels and runs every launch in one process. */
export async function runLaunches(launches: Launch[]): Promise<LaunchOutcome[]> {
  const { binary: bin } = await buildRunner(launches.map((l) => kernelSource(l.spec)));
  const prepared = launches.map((l) => {
    const tiling = computeTiling(l.spec, l.rows, l.platform);
    const data = randomCase(l.spec, l.rows, l.seed ?? l.rows);
    const job: LaunchJob = {
      kernel: kernelId(l.spec),
      ubBytes: l.platform.ubBytes,
      blockDim: tiling.blockDim,
      tiling: serializeTiling(tiling.data),
      args: kernelParams(l.spec).map((p) =>
        p.direction === 'in' ? { name: p.name, data: data.inputs[p.name]! } : { name: p.name, outBytes: paramElements(p, l.rows, l.spec.H) * DTYPE_BYTES[p.dtype] },
      ),
    };
    return { l, tiling, data, job };
  });
  const results = await runJobs(bin, prepared.map((p) => p.job));
  return prepared.map((p, i) => {
    const result = results[i]!;
    return {
      launch: p.l,
      tiling: p.tiling,
      result,
      checks: result.ok ? checkOutputs(p.l.spec, p.data.ref, result.outputs) : [],
      traffic: trafficFigure(p.l.spec, p.l.rows, p.tiling.blockDim, result.gm),
    };
  });
}
