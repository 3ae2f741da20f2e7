/**
 * The CPU model of the Ascend C API is strict: hand-written kernels with one planted bug each
 * (test/ascendc/fixtures/planted.cpp) must fail with a message naming the mistake, the correct
 * twin must pass, and Cast must round as the vendor documents each RoundMode.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildRunner, runJobs, type LaunchResult } from '../../runtime/ascendc/harness.js';
import { fromF16Bits, toF16Bits } from '../../runtime/numeric.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/planted.cpp', import.meta.url));
const PLANTED = [
  'planted_none',
  'planted_misaligned_copy',
  'planted_ub_overflow',
  'planted_deque_empty',
  'planted_double_free',
  'planted_gm_window',
  'planted_no_pipe_barrier',
  'planted_no_v_s',
  'planted_race',
  'planted_partial_write',
];
const N = 64; // halfs of x and y; two cores take 32 each (64 bytes)
const UB = 192 * 1024;

const u32 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);

describe('CPU model of the Ascend C API', function () {
  this.timeout(300_000);
  let binary: string;
  const results = new Map<string, LaunchResult>();
  const x = Float32Array.from({ length: N }, (_, i) => (i % 13) - 6);

  before(async () => {
    ({ binary } = await buildRunner([{ id: 'planted', cpp: fs.readFileSync(FIXTURE, 'utf8'), headers: {}, params: ['x', 'y'], symbols: [...PLANTED, 'cast_modes', 'whole_reduce_sum'] }]));
    const xBytes = new Uint8Array(toF16Bits(x).buffer);
    const runs = await runJobs(
      binary,
      PLANTED.map((kernel) => ({ kernel, ubBytes: UB, blockDim: 2, tiling: u32(N), args: [{ name: 'x', data: xBytes }, { name: 'y', outBytes: N * 2 }] })),
    );
    PLANTED.forEach((k, i) => results.set(k, runs[i]!));
  });

  it('runs the correct kernel and counts its GM traffic', () => {
    const r = results.get('planted_none')!;
    expect(r.ok, r.error).to.equal(true);
    expect(Array.from(fromF16Bits(new Uint16Array(r.outputs.y!.slice().buffer)))).to.deep.equal(Array.from(x, (v) => 2 * v));
    expect(r.gm).to.deep.equal([
      { name: 'x', read: N * 2, written: 0, rewritten: 0 },
      { name: 'y', read: 0, written: N * 2, rewritten: 0 },
    ]);
  });

  const planted: Array<[string, RegExp]> = [
    ['planted_misaligned_copy', /DataCopy GM->UB of 10 half elements = 20 bytes: not a positive multiple of 32 bytes \(use DataCopyPad\)/],
    ['planted_ub_overflow', /UB overflow: InitBuffer\(TBuf#\d+\) needs 204800 bytes, 320 of 196608 already used/],
    ['planted_deque_empty', /DeQue on empty TQue<VECIN>#\d+: nothing was enqueued/],
    ['planted_double_free', /FreeTensor on TQue<VECIN>#\d+: double free/],
    ['planted_gm_window', /DataCopy GM->UB: elements \[0, 48\) lie outside the window of 32 elements SetGlobalBuffer gave 'x'/],
    ['planted_no_pipe_barrier', /Adds reads UB buffer 'TQue<VECOUT>#\d+\[0\]' written by an earlier vector instruction with no PipeBarrier<PIPE_V>\(\)/],
    ['planted_no_v_s', /GetValue on UB buffer 'TQue<VECOUT>#\d+\[0\]' written by a vector instruction with no SetFlag\/WaitFlag<HardEvent::V_S>/],
    ['planted_race', /byte 0 of 'y' is written by block 0 and block 1 \(a race between cores\)/],
    ['planted_partial_write', /output 'y': byte 32 of 128 never written/],
  ];
  for (const [kernel, message] of planted) {
    it(`refuses ${kernel.replace('planted_', '').replace(/_/g, ' ')}`, () => {
      const r = results.get(kernel)!;
      expect(r.ok).to.equal(false);
      expect(r.error).to.match(message);
    });
  }

  it('rounds Cast as each RoundMode documents', async () => {
    const src = Float32Array.from([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6, -2.6, 1e10, -1e10, 70000, NaN, 3, -3, 0.49999997]);
    const n = src.length;
    const [r] = await runJobs(binary, [
      { kernel: 'cast_modes', ubBytes: UB, blockDim: 1, tiling: u32(n), args: [{ name: 'x', data: new Uint8Array(src.buffer) }, { name: 'y', outBytes: 5 * n * 6 }] },
    ]);
    expect(r!.ok, r!.error).to.equal(true);
    const y = r!.outputs.y!;
    const MAX = 2147483647;
    const MIN = -2147483648;
    const ints: Record<string, number[]> = {
      CAST_RINT: [0, 2, 2, 0, -2, -2, 2, 3, -3, MAX, MIN, 70000, 0, 3, -3, 0],
      CAST_FLOOR: [0, 1, 2, -1, -2, -3, 2, 2, -3, MAX, MIN, 70000, 0, 3, -3, 0],
      CAST_CEIL: [1, 2, 3, 0, -1, -2, 3, 3, -2, MAX, MIN, 70000, 0, 3, -3, 1],
      CAST_ROUND: [1, 2, 3, -1, -2, -3, 2, 3, -3, MAX, MIN, 70000, 0, 3, -3, 0],
      CAST_TRUNC: [0, 1, 2, 0, -1, -2, 2, 2, -2, MAX, MIN, 70000, 0, 3, -3, 0],
    };
    // 2.4 lies between the halves 2.3984375 and 2.400390625; beyond 65504 a half saturates.
    const halves: Record<string, [number, number, number]> = {
      CAST_RINT: [2.400390625, 65504, -65504],
      CAST_FLOOR: [2.3984375, 65504, -65504],
      CAST_CEIL: [2.400390625, 65504, -65504],
      CAST_ROUND: [2.400390625, 65504, -65504],
      CAST_TRUNC: [2.3984375, 65504, -65504],
    };
    let off = 0;
    for (const mode of Object.keys(ints)) {
      const i32 = Array.from(new Int32Array(y.slice(off, off + n * 4).buffer), (v) => (Object.is(v, -0) ? 0 : v));
      off += n * 4;
      const f16 = fromF16Bits(new Uint16Array(y.slice(off, off + n * 2).buffer));
      off += n * 2;
      expect(i32, `${mode} to int32`).to.deep.equal(ints[mode]);
      expect([f16[6], f16[9], f16[10]], `${mode} to half`).to.deep.equal(halves[mode]);
      expect(f16[11], `${mode}: 70000 saturates`).to.equal(65504);
      expect(Number.isNaN(f16[12]), `${mode}: NaN stays NaN`).to.equal(true);
    }
  });

  it('sums each repeat with WholeReduceSum', async () => {
    const m = Float32Array.from({ length: 64 }, (_, i) => i);
    const [r] = await runJobs(binary, [
      { kernel: 'whole_reduce_sum', ubBytes: UB, blockDim: 1, tiling: u32(0), args: [{ name: 'x', data: new Uint8Array(m.buffer) }, { name: 'y', outBytes: 32 }] },
    ]);
    expect(r!.ok, r!.error).to.equal(true);
    const sums = Array.from(new Float32Array(r!.outputs.y!.slice().buffer));
    expect(sums).to.deep.equal([120, 376, 632, 888, 0, 0, 0, 0]);
  });
});
