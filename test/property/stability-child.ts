/**
 * Child process of stability.test.ts: optimizes every fuzz seed (examples included) and prints
 * the SHA-256 of each output as one JSON line, for comparison with the parent's.
 */
import { createHash } from 'node:crypto';
import { seedModels } from '../fuzz/seeds.js';
import { optimizeBytes } from './harness.js';

const hashes = seedModels().map((s) => createHash('sha256').update(optimizeBytes(s.bytes).bytes).digest('hex'));
console.log(JSON.stringify(hashes));
