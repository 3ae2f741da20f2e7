// The floor for the load/save benchmark: onnx-buf's own read + decode + encode + write of a
// model, nothing else, in a fresh process. Usage: node bench/load-save/floor.mjs IN OUT
// Prints one JSON line with the phase times in ms.
import * as fs from 'node:fs';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';

const [input, output] = process.argv.slice(2);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const bytes = fs.readFileSync(input);
const t1 = performance.now();
const model = fromBinary(ModelProtoSchema, bytes, { readUnknownFields: true });
const t2 = performance.now();
const encoded = toBinary(ModelProtoSchema, model, { writeUnknownFields: true });
const t3 = performance.now();
fs.writeFileSync(output, encoded);
const t4 = performance.now();
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ readMs: t1 - t0, decodeMs: t2 - t1, encodeMs: t3 - t2, writeMs: t4 - t3, totalMs: t4 - t0, cpuMs: (cpu.user + cpu.system) / 1000 }));
