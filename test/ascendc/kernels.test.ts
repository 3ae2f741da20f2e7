/**
 * Every variant's generated Ascend C kernel, compiled with g++ against the CPU model of the
 * Ascend C API and run on random inputs, against runtime/reference.ts within SPEC's tolerances
 * (ATB's golden-test tolerances: int8 |diff| <= 1; float outputs < 0.1% of elements over 1e-3
 * relative error for fp32/fp16, 2^-7 for bf16; dynamic scale relative error <= 2^-8).
 *
 * Launches (test/ascendc/cases.ts): each kernel on a 910B-like platform (48 cores, 192 KB UB)
 * for several row counts, on a 310P-like one (8 cores, 256 KB UB) so that medium rows share
 * tiles, and on a 32 KB UB that forces split-D. The figure of merit is asserted: in the row
 * modes the kernel moves exactly SPEC's minimum of GM bytes; split-D's extra reads are reported.
 */
import { expect } from 'chai';
import { kernelId } from '../../codegen/ascendc/spec.js';
import { MODE_NAMES, MODE_SPLIT_D, PLATFORMS, type TilingMode } from '../../codegen/ascendc/tiling.js';
import { KERNEL_CASES, SMALL_UB, rowsFor, type KernelCase } from './cases.js';
import { makeSpec, runLaunches, type Launch, type LaunchOutcome } from './helpers.js';

const P910 = PLATFORMS.ascend910b!;
const P310 = PLATFORMS.ascend310p!;
const SPLIT = { coreNum: 4, ubBytes: SMALL_UB };

function launchesOf(c: KernelCase): Launch[] {
  const spec = makeSpec(c.variant, c.xDType, c.H);
  const ls: Launch[] = rowsFor(c.H).map((rows) => ({ spec, rows, platform: P910 }));
  if (c.H > 32 && c.H <= 5120) ls.push({ spec, rows: 20, platform: P310 });
  if (c.H >= 4096) ls.push({ spec, rows: 7, platform: SPLIT });
  return ls;
}

const describeLaunch = (o: LaunchOutcome): string =>
  `${o.launch.rows} rows, ${o.launch.platform.coreNum} cores / ${o.launch.platform.ubBytes} B UB, ${MODE_NAMES[o.tiling.data.mode as TilingMode]}`;

describe('Ascend C kernels on the CPU model', function () {
  this.timeout(900_000);
  const byKernel = new Map<KernelCase, LaunchOutcome[]>();

  before(async function () {
    const all = KERNEL_CASES.map((c) => ({ c, ls: launchesOf(c) }));
    const outcomes = await runLaunches(all.flatMap((a) => a.ls));
    let i = 0;
    for (const a of all) byKernel.set(a.c, outcomes.slice(i, (i += a.ls.length)));
  });

  for (const c of KERNEL_CASES) {
    it(`${c.label}, ${c.xDType}, H = ${c.H}`, () => {
      for (const o of byKernel.get(c)!) {
        const where = `${kernelId(o.launch.spec)}, ${describeLaunch(o)}`;
        expect(o.result.ok, `${where}: ${o.result.error}`).to.equal(true);
        for (const check of o.checks) expect(check.ok, `${where}: ${check.message}`).to.equal(true);
        // The kernel's InitBuffer calls allocate exactly what the host tiling budgeted, within UB.
        expect(o.result.ubPeak, `${where}: UB bytes`).to.equal(o.tiling.ubBytesUsed);
        expect(o.result.ubPeak).to.be.at.most(o.launch.platform.ubBytes);
        // Figure of merit: rows that fit in UB move exactly SPEC's minimum of GM bytes.
        if (o.tiling.data.mode !== MODE_SPLIT_D) expect(o.traffic.measured, `${where}: GM bytes`).to.equal(o.traffic.minimum);
        else expect(o.traffic.ratio, `${where}: split-D reads the row again`).to.be.greaterThan(1);
      }
    });
  }

  it('covers every tiling mode', () => {
    const modes = new Set([...byKernel.values()].flat().map((o) => o.tiling.data.mode));
    expect([...modes].sort()).to.deep.equal([0, 1, 2]);
    // Multi-row tiles that really hold several rows.
    expect([...byKernel.values()].flat().some((o) => o.tiling.data.rowFactor > 1)).to.equal(true);
  });

  after(() => {
    const split = [...byKernel.values()].flat().filter((o) => o.tiling.data.mode === MODE_SPLIT_D && o.result.ok);
    if (split.length === 0) return;
    console.log('\n      split-D GM traffic (bytes moved / SPEC minimum):');
    for (const o of split) {
      console.log(
        `        ${kernelId(o.launch.spec).padEnd(40)} ${describeLaunch(o).padEnd(48)} ${o.traffic.measuredPerElement.toFixed(2)} / ${o.traffic.minimumPerElement.toFixed(2)} B/elem = x${o.traffic.ratio.toFixed(2)}`,
      );
    }
  });
});
