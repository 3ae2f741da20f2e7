/**
 * `--emit DIR`: describes every fused node of the optimized model (its tensors' names,
 * dtypes and shapes, which inputs are initializers) and hands the descriptions to the
 * target's code generator, which writes one kernel per distinct spec plus the manifest.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Graph, Model, Node } from './ir/graph.js';
import { fusedParam, isFusedNode } from './ir/fused.js';
import { dtypeName } from './onnx/dtype.js';
import {
  signature,
  type DType,
  type FusedNodeDesc,
  type InputRole,
  type TensorDesc,
} from './op/param.js';
import { isAscend, type Target } from './op/target.js';
import { RmsfuseError } from './errors.js';
import type { Manifest } from '../codegen/manifest.js';

function tensorDesc(g: Graph, name: string, role: TensorDesc['role'], node: Node): TensorDesc {
  if (name === '') return { name, role, dtype: 'float32', shape: [] };
  const t = g.type(name);
  if (!t || !t.shape) {
    throw new RmsfuseError(`fused node ${node.label}: the dtype and shape of '${name}' are unknown, so no kernel can be specialised for it`);
  }
  const shape = t.shape.map((d, i) => d ?? `d${i}`);
  const initializer = g.lookup(name)?.initializer !== undefined;
  return { name, role, dtype: dtypeName(t.dtype) as DType, shape, ...(initializer ? { initializer } : {}) };
}

/** Descriptions of every fused node in the model (subgraphs included), in graph order. */
export function describeFusedNodes(model: Model): FusedNodeDesc[] {
  const descs: FusedNodeDesc[] = [];
  for (const g of model.graph.allGraphs()) {
    for (const n of g.nodes) {
      if (!isFusedNode(n)) continue;
      const param = fusedParam(n);
      if (typeof param === 'string') throw new RmsfuseError(param);
      const sig = signature(param);
      const inputs = sig.inputs.map((role, i) => tensorDesc(g, n.inputs[i] ?? '', role, n));
      const outputs = sig.outputs.map((role, i) => tensorDesc(g, n.outputs[i] ?? '', role, n));
      const constants: Partial<Record<InputRole, number>> = {};
      for (const t of inputs) {
        if ((t.role === 'scale' || t.role === 'offset') && t.name !== '') {
          const v = g.constantValues(t.name);
          if (v && v.length === 1) constants[t.role] = v[0]!;
        }
      }
      descs.push({ node: n.name, opType: n.opType, param, inputs, outputs, constants });
    }
  }
  return descs;
}

/**
 * Generates kernels for every fused node into `dir`. Generators are loaded on demand: ts-morph
 * (launcher emission) is heavy and most CLI runs do not emit.
 */
export async function emitKernels(model: Model, dir: string, target: Target): Promise<Manifest> {
  if (!target) throw new RmsfuseError('--emit needs --target (webgpu or an Ascend SoC)', 2);
  const descs = describeFusedNodes(model);
  fs.mkdirSync(path.resolve(dir), { recursive: true });
  if (target === 'webgpu') {
    const { emitWebGpu } = await import('../codegen/wgsl/emit.js');
    return emitWebGpu(descs, dir);
  }
  if (isAscend(target)) {
    const { emitAscend } = await import('../codegen/ascendc/emit.js');
    return emitAscend(descs, dir, target);
  }
  throw new RmsfuseError(`no code generator for target '${target}'`, 2);
}
