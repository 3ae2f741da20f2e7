import { expect } from 'chai';
import {
  bf16BitsToF32,
  compareWithTolerance,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  fromBf16Bits,
  fromF16Bits,
  roundHalfEven,
  roundTo,
  satInt8,
  toBf16Bits,
  toF16Bits,
} from '../../runtime/numeric.js';

/** fp32 bit pattern of a number (after fround). */
function f32Bits(x: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setFloat32(0, x);
  return b.getUint32(0);
}
function f32FromBits(u: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setUint32(0, u >>> 0);
  return b.getFloat32(0);
}

describe('numeric: fp16', () => {
  it('encodes known values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // max finite
      [2 ** -14, 0x0400], // min normal
      [2 ** -24, 0x0001], // min subnormal
      [2 ** -14 - 2 ** -24, 0x03ff], // max subnormal
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [1 / 3, 0x3555],
    ];
    for (const [x, bits] of cases) expect(f32ToF16Bits(x), `f16(${x})`).to.equal(bits);
  });

  it('rounds ties to even and overflows at the midpoint above 65504', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).to.equal(0x3c00); // tie, mantissa 0 even -> down
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).to.equal(0x3c02); // tie, 1 odd -> up to 2
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).to.equal(0x3c01); // above the tie -> up
    expect(f32ToF16Bits(65519.99)).to.equal(0x7bff);
    expect(f32ToF16Bits(65520)).to.equal(0x7c00); // tie between 65504 and 2^16, even is 2^16 = inf
    expect(f32ToF16Bits(2 ** -25)).to.equal(0x0000); // tie between 0 and min subnormal -> 0
    expect(f32ToF16Bits(3 * 2 ** -25)).to.equal(0x0002); // tie between 1 and 2 subnormal units -> 2
    expect(f32ToF16Bits(-(2 ** -26))).to.equal(0x8000); // underflow keeps the sign
    // subnormal rounding carrying into the smallest normal
    expect(f32ToF16Bits(2 ** -14 - 2 ** -26)).to.equal(0x0400);
  });

  it('NaN encodes to a NaN and decodes to NaN', () => {
    const b = f32ToF16Bits(NaN);
    expect((b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0).to.equal(true);
    expect(f16BitsToF32(0x7e00)).to.be.NaN;
    expect(f16BitsToF32(0xfc01)).to.be.NaN;
  });

  it('decodes every pattern and re-encodes it to itself', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = f16BitsToF32(b);
      if (Number.isNaN(v)) continue;
      if (f32ToF16Bits(v) !== b) expect.fail(`f16 pattern ${b.toString(16)} -> ${v} -> ${f32ToF16Bits(v).toString(16)}`);
    }
    expect(f16BitsToF32(0x0001)).to.equal(2 ** -24);
    expect(f16BitsToF32(0xfbff)).to.equal(-65504);
  });

  it('rounds sampled fp32 values to the nearest fp16, ties to even', () => {
    // Between two consecutive fp16 values, the result must be the nearer one (even on a tie).
    for (let i = 0; i < 200000; i++) {
      const u = (Math.imul(i, 2654435761) >>> 0) & 0x7fffffff;
      const x = f32FromBits(u);
      if (!Number.isFinite(x) || x >= 65504) continue;
      const r = f16BitsToF32(f32ToF16Bits(x));
      const b = f32ToF16Bits(x);
      const lo = r <= x ? r : f16BitsToF32(b - 1);
      const hi = r >= x ? r : f16BitsToF32(b + 1);
      const dLo = x - lo;
      const dHi = hi - x;
      const expected = dLo < dHi ? lo : dHi < dLo ? hi : (f32ToF16Bits(lo) & 1) === 0 ? lo : hi;
      if (r !== expected) expect.fail(`f16(${x}) = ${r}, expected ${expected}`);
    }
  });

  it('array versions round-trip', () => {
    const a = Float32Array.of(1, -0.5, 1000, 2 ** -20, 3.14159);
    const back = fromF16Bits(toF16Bits(a));
    // 2^-20 is an fp16 subnormal (exact); pi rounds to 3.140625 (0x4248)
    expect(Array.from(back)).to.deep.equal([1, -0.5, 1000, 2 ** -20, 3.140625]);
  });
});

describe('numeric: bf16', () => {
  it('encodes known values', () => {
    expect(f32ToBf16Bits(1)).to.equal(0x3f80);
    expect(f32ToBf16Bits(-2)).to.equal(0xc000);
    expect(f32ToBf16Bits(0.84765625)).to.equal(0x3f59);
    expect(f32ToBf16Bits(2 ** -133)).to.equal(0x0001); // min subnormal
    expect(f32ToBf16Bits(3.4028234663852886e38)).to.equal(0x7f80); // fp32 max rounds up to inf
    expect(f32ToBf16Bits(-Infinity)).to.equal(0xff80);
    expect(bf16BitsToF32(0x7f7f)).to.equal(3.3895313892515355e38);
  });

  it('rounds ties to even', () => {
    expect(f32ToBf16Bits(1 + 2 ** -8)).to.equal(0x3f80);
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).to.equal(0x3f82);
    expect(roundTo('bfloat16', 1.01171875)).to.equal(1.015625);
  });

  it('agrees with the fp32-bits rounding trick on random fp32 values', () => {
    for (let i = 0; i < 200000; i++) {
      const u = Math.imul(i + 12345, 2246822519) >>> 0;
      const x = f32FromBits(u);
      if (Number.isNaN(x)) continue;
      const bits = f32Bits(x);
      const expected = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
      if (f32ToBf16Bits(x) !== expected) expect.fail(`bf16(${x}) = ${f32ToBf16Bits(x).toString(16)}, expected ${expected.toString(16)}`);
    }
  });

  it('decodes every pattern and re-encodes it to itself; arrays', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = bf16BitsToF32(b);
      if (!Number.isNaN(v) && f32ToBf16Bits(v) !== b) expect.fail(`bf16 pattern ${b.toString(16)}`);
    }
    expect(Array.from(fromBf16Bits(toBf16Bits(Float32Array.of(1, 3, 1 / 3))))).to.deep.equal([1, 3, 0.333984375]);
  });
});

describe('numeric: rounding helpers', () => {
  it('roundHalfEven', () => {
    const cases: [number, number][] = [
      [0.5, 0], [1.5, 2], [2.5, 2], [-0.5, -0], [-1.5, -2], [-2.5, -2], [2.4999, 2], [2.5001, 3], [-3.7, -4], [126.5, 126], [127.5, 128],
    ];
    for (const [x, r] of cases) expect(roundHalfEven(x), `round(${x})`).to.equal(r);
  });
  it('satInt8', () => {
    expect([satInt8(200), satInt8(-200), satInt8(127), satInt8(-128), satInt8(5), satInt8(NaN)]).to.deep.equal([127, -128, 127, -128, 5, 0]);
  });
  it('roundTo float32 is fround', () => {
    expect(roundTo('float32', 0.1)).to.equal(Math.fround(0.1));
    expect(roundTo('float16', 0.1)).to.equal(0.0999755859375);
  });
});

describe('numeric: compareWithTolerance (SPEC tolerances)', () => {
  it('int8: |diff| <= 1 passes, 2 fails', () => {
    expect(compareWithTolerance(Int8Array.of(1, 2, 3), Int8Array.of(2, 1, 3), 'int8').ok).to.equal(true);
    const r = compareWithTolerance(Int8Array.of(1, 2, 3), Int8Array.of(3, 2, 3), 'int8');
    expect(r.ok).to.equal(false);
    expect(r.badCount).to.equal(1);
    expect(r.worst.index).to.equal(0);
    expect(r.message).to.match(/1\/3 elements/);
  });

  it('float: < 0.1% of elements over 1e-3 relative error', () => {
    const n = 5000;
    const e = new Float32Array(n).fill(1);
    const a = new Float32Array(n).fill(1);
    for (let i = 0; i < 4; i++) a[i] = 1.01; // 4 of 5000 = 0.08% -> ok
    expect(compareWithTolerance(a, e, 'float32').ok).to.equal(true);
    a[4] = 1.01; // 5 of 5000 = 0.1% -> not fewer than 0.1%
    const r = compareWithTolerance(a, e, 'float16');
    expect(r.ok).to.equal(false);
    expect(r.badCount).to.equal(5);
    // a small tensor must be entirely within tolerance
    expect(compareWithTolerance(Float32Array.of(1, 1.002), Float32Array.of(1, 1), 'float32').ok).to.equal(false);
    expect(compareWithTolerance(Float32Array.of(1, 1.0009), Float32Array.of(1, 1), 'float32').ok).to.equal(true);
  });

  it('bf16 allows 2^-7 relative error', () => {
    expect(compareWithTolerance(Float32Array.of(1 + 2 ** -7), Float32Array.of(1), 'bfloat16').ok).to.equal(true);
    expect(compareWithTolerance(Float32Array.of(1 + 2 ** -6), Float32Array.of(1), 'bfloat16').ok).to.equal(false);
  });

  it('near zero: the floor is the dtype\'s smallest normal', () => {
    // one fp16 subnormal ulp apart: ok; eight ulps: bad
    expect(compareWithTolerance(Float32Array.of(2 ** -24), Float32Array.of(0), 'float16').ok).to.equal(true);
    expect(compareWithTolerance(Float32Array.of(2 ** -21), Float32Array.of(0), 'float16').ok).to.equal(false);
    expect(compareWithTolerance(Float32Array.of(1e-6), Float32Array.of(0), 'float32').ok).to.equal(false);
  });

  it('scale: every element within 2^-8', () => {
    expect(compareWithTolerance(Float32Array.of(1, 1 + 2 ** -9), Float32Array.of(1, 1), 'scale').ok).to.equal(true);
    expect(compareWithTolerance(Float32Array.of(1, 1 + 2 ** -7), Float32Array.of(1, 1), 'scale').ok).to.equal(false);
  });

  it('NaN, infinities and length mismatches', () => {
    expect(compareWithTolerance(Float32Array.of(NaN, Infinity), Float32Array.of(NaN, Infinity), 'float32').ok).to.equal(true);
    expect(compareWithTolerance(Float32Array.of(NaN), Float32Array.of(1), 'float32').ok).to.equal(false);
    expect(compareWithTolerance(Float32Array.of(-Infinity), Float32Array.of(Infinity), 'float32').ok).to.equal(false);
    expect(compareWithTolerance(Float32Array.of(1), Float32Array.of(1, 2), 'float32').ok).to.equal(false);
  });
});
