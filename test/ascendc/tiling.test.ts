/**
 * Host tiling: the serializer writes exactly the bytes of the C struct in the generated tiling
 * header (checked by compiling a small C++ program against it), and the mode follows the UB
 * budget of the platform the launcher is given, never constants in the kernel.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateAscend } from '../../codegen/ascendc/generate.js';
import { kernelId } from '../../codegen/ascendc/spec.js';
import {
  MODE_MULTI_ROW,
  MODE_SINGLE_ROW,
  MODE_SPLIT_D,
  PLATFORMS,
  TILING_BYTES,
  TILING_FIELDS,
  computeTiling,
  kernelLayout,
  serializeTiling,
  ubBytesFor,
} from '../../codegen/ascendc/tiling.js';
import { makeSpec } from './helpers.js';

const exec = promisify(execFile);
const P910 = PLATFORMS.ascend910b!;

describe('Ascend C host tiling', function () {
  this.timeout(120_000);

  it('serializes exactly the C struct of the tiling header', async () => {
    const spec = makeSpec({ layer: 'PreNorm', bias: true }, 'float16', 5120);
    const id = kernelId(spec);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsfuse-tiling-'));
    try {
      fs.writeFileSync(path.join(dir, `${id}_tiling.h`), generateAscend(spec).tilingHeader);
      const prints = TILING_FIELDS.map((f) =>
        f.type === 'float'
          ? `std::printf("${f.name} %zu %.9g\\n", offsetof(RmsNormTilingData, ${f.name}), static_cast<double>(t.${f.name}));`
          : `std::printf("${f.name} %zu %u\\n", offsetof(RmsNormTilingData, ${f.name}), t.${f.name});`,
      );
      fs.writeFileSync(
        path.join(dir, 'layout.cpp'),
        [
          '#include <cstdio>',
          '#include <fstream>',
          `#include "${id}_tiling.h"`,
          'int main(int, char** argv) {',
          '  RmsNormTilingData t;',
          '  std::ifstream f(argv[1], std::ios::binary);',
          '  f.read(reinterpret_cast<char*>(&t), sizeof t);',
          '  std::printf("sizeof %zu\\n", sizeof(RmsNormTilingData));',
          ...prints.map((p) => `  ${p}`),
          '}',
          '',
        ].join('\n'),
      );
      await exec('g++', ['-std=c++17', '-Wall', '-Werror', '-o', path.join(dir, 'layout'), path.join(dir, 'layout.cpp')]);
      const t = computeTiling(spec, 1000, P910);
      fs.writeFileSync(path.join(dir, 'tiling.bin'), serializeTiling(t.data));
      const { stdout } = await exec(path.join(dir, 'layout'), [path.join(dir, 'tiling.bin')]);
      const lines = stdout.trim().split('\n');
      expect(lines[0]).to.equal(`sizeof ${TILING_BYTES}`);
      TILING_FIELDS.forEach((f, i) => {
        const [name, offset, value] = lines[i + 1]!.split(' ');
        expect(name).to.equal(f.name);
        expect(Number(offset), `offset of ${f.name}`).to.equal(i * 4);
        expect(Math.fround(Number(value)), `value of ${f.name}`).to.equal(Math.fround(t.data[f.name]));
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('puts several short rows in a tile and spreads rows over the cores', () => {
    const t = computeTiling(makeSpec({}, 'float16', 16), 1000, P910);
    expect(t.data.mode).to.equal(MODE_MULTI_ROW);
    expect(t.data.blockFactor).to.equal(21);
    expect(t.blockDim).to.equal(48);
    expect(t.data.rowFactor).to.equal(21);
    expect(t.data.numColAlign).to.equal(16);
    expect(t.data.avgFactor).to.equal(Math.fround(1 / 16));
  });

  it('keeps one long row per tile, single buffered when two do not fit', () => {
    const norm = computeTiling(makeSpec({}, 'float16', 12288), 7, P910);
    expect([norm.data.mode, norm.data.bufferNum]).to.deep.equal([MODE_SINGLE_ROW, 2]);
    const pre = computeTiling(makeSpec({ layer: 'PreNorm', bias: true }, 'float16', 12288), 7, P910);
    expect([pre.data.mode, pre.data.bufferNum]).to.deep.equal([MODE_SINGLE_ROW, 1]);
    // The fp32 math runs in chunks over the resident row, so a 16384-element fp16 row still fits.
    expect(computeTiling(makeSpec({}, 'float16', 16384), 1, P910).data.mode).to.equal(MODE_SINGLE_ROW);
  });

  it('splits rows that do not fit in UB (split-D)', () => {
    const t = computeTiling(makeSpec({ rstd: true }, 'float32', 16384), 3, P910);
    expect(t.data.mode).to.equal(MODE_SPLIT_D);
    expect(t.data.ubFactor % 64).to.equal(0);
    expect(t.data.ubFactor).to.be.lessThan(16384);
    expect(t.ubBytesUsed).to.be.at.most(P910.ubBytes);
    // The next chunk size would not fit.
    const layout = kernelLayout(makeSpec({ rstd: true }, 'float32', 16384));
    expect(ubBytesFor(layout, { mode: MODE_SPLIT_D, rowFactor: 1, ubFactor: t.data.ubFactor + 64, bufferNum: 2, gatherFactor: t.data.gatherFactor })).to.be.greaterThan(P910.ubBytes);
  });

  it('chooses from the platform it is given', () => {
    const spec = makeSpec({ layer: 'PreNorm' }, 'bfloat16', 4096);
    expect(computeTiling(spec, 20, PLATFORMS.ascend310p).data).to.include({ mode: MODE_MULTI_ROW, blockFactor: 3, rowFactor: 3 });
    expect(computeTiling(spec, 20, { coreNum: 4, ubBytes: 32 * 1024 }).data.mode).to.equal(MODE_SPLIT_D);
    expect(() => computeTiling(spec, 20, { coreNum: 4, ubBytes: 2048 })).to.throw(/not even a 64-column chunk/);
    // The kernel itself holds no platform numbers: cores and UB come only through the tiling.
    const cpp = generateAscend(spec).kernelCpp;
    for (const n of ['196608', '262144', '192 * 1024', '256 * 1024']) expect(cpp).not.to.contain(n);
  });

  it('launches nothing for zero rows and stays within UB for any H', () => {
    expect(computeTiling(makeSpec({}, 'float16', 4096), 0, P910).blockDim).to.equal(0);
    for (const H of [1, 3, 15, 17, 100, 1000, 4095, 4097, 8191, 12289, 30000, 65536]) {
      for (const spec of [makeSpec({}, 'float16', H), makeSpec({ layer: 'PreNorm', quant: 'dynamic', beta: true }, 'float32', H)]) {
        const t = computeTiling(spec, 5, P910);
        expect(t.ubBytesUsed, `H = ${H}`).to.be.at.most(P910.ubBytes);
        expect(t.blockDim * t.data.blockFactor).to.be.at.least(5);
      }
    }
  });

  it('refuses values the struct cannot hold', () => {
    const t = computeTiling(makeSpec({}, 'float16', 16), 4, P910);
    expect(() => serializeTiling({ ...t.data, numRow: -1 })).to.throw(/numRow = -1 is not a uint32/);
  });
});
