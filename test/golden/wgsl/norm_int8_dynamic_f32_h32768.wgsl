// rmsfuse Norm kernel: x float32, H = 32768, epsilon = 0.00001, quant int8 (dynamic symmetric), high_precision, llama.
// 1 row(s) of 256 thread(s) per workgroup, vec4 units, row read twice (too long for registers), tree reduction.
// Split-row path for runs of up to 32 row(s): 16 workgroups of 512 units per row (split_sumsq, split_amax, split_norm).

const H: u32 = 32768u;
const UNITS: u32 = 8192u; // vec4 units per row
const T: u32 = 256u; // threads per row
const R: u32 = 1u; // rows per workgroup
const K: u32 = 32u; // units per thread
const EPS: f32 = 0.000009999999747378752f;

// rows: rows in this dispatch; scale, offset: static quantization (per tensor, set at run time).
struct Params { rows: u32, scale: f32, offset: f32, pad: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> beta: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> q: array<u32>;
@group(0) @binding(5) var<storage, read_write> scale: array<f32>;

fn load_x(i: u32) -> vec4<f32> {
  return x[i];
}

fn load_gamma(i: u32) -> vec4<f32> {
  return gamma[i];
}

fn load_beta(i: u32) -> vec4<f32> {
  return beta[i];
}

fn store_q(i: u32, v: vec4<f32>) {
  q[i] = (u32(i32(v.x)) & 0xffu) | ((u32(i32(v.y)) & 0xffu) << 8u) | ((u32(i32(v.z)) & 0xffu) << 16u) | ((u32(i32(v.w)) & 0xffu) << 24u);
}

fn round_t(v: vec4<f32>) -> vec4<f32> {
  return v;
}

fn sum_sq(v: vec4<f32>) -> f32 {
  return dot(v, v);
}

fn max_abs(v: vec4<f32>) -> f32 {
  return max(max(abs(v.x), abs(v.y)), max(abs(v.z), abs(v.w)));
}

// The values the norm reads for unit i of the row (u: unit within the row).
fn load_s(i: u32, u: u32) -> vec4<f32> {
  return load_x(i);
}

fn norm(s: vec4<f32>, inv_rms: f32, u: u32) -> vec4<f32> {
  return s * inv_rms * load_gamma(u);
}

// Quantizer input from y (already rounded to T).
fn quant_in(y: vec4<f32>, u: u32) -> vec4<f32> {
  return round_t(y + load_beta(u));
}

var<workgroup> red_sum: array<f32, 256>;
fn reduce_sum(v: f32, r: u32, t: u32) -> f32 {
  let i = r * 256u + t;
  red_sum[i] = v;
  workgroupBarrier();
  for (var s = 128u; s >= 8u; s = s >> 1u) {
    if (t < s) { red_sum[i] = red_sum[i] + red_sum[i + s]; }
    workgroupBarrier();
  }
  var total = red_sum[r * 256u];
  for (var k = 1u; k < 8u; k++) {
    total = total + red_sum[r * 256u + k];
  }
  return total;
}

var<workgroup> red_max: array<f32, 256>;
fn reduce_max(v: f32, r: u32, t: u32) -> f32 {
  let i = r * 256u + t;
  red_max[i] = v;
  workgroupBarrier();
  for (var s = 128u; s >= 8u; s = s >> 1u) {
    if (t < s) { red_max[i] = max(red_max[i], red_max[i + s]); }
    workgroupBarrier();
  }
  var total = red_max[r * 256u];
  for (var k = 1u; k < 8u; k++) {
    total = max(total, red_max[r * 256u + k]);
  }
  return total;
}

// Split-row path: S workgroups per row, each normalizing a chunk of C units (KS per thread).
const S: u32 = 16u;
const C: u32 = 512u;
const KS: u32 = 2u;
const P: u32 = 2u; // partials per chunk: sum of squares, max |v|
@group(1) @binding(0) var<storage, read_write> partials: array<f32>;

// Partial p (0: sum of squares, 1: max |v|) of chunk c of a row.
fn partial_index(row: u32, p: u32, c: u32) -> u32 {
  return (row * P + p) * S + c;
}

// s again in a later dispatch: recomputed from the inputs.
fn load_s_again(i: u32, u: u32) -> vec4<f32> {
  return load_s(i, u);
}

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let r = lid / T; // row within the workgroup
  let t = lid % T; // thread within the row
  let row = (wid.x + wid.y * nwg.x) * R + r;
  let valid = row < params.rows;
  let base = row * UNITS;
  var ss = 0.0;
  for (var k = 0u; k < K; k++) {
    let u = t + k * T;
    if (valid && u < UNITS) {
      let s = load_s(base + u, u);
      ss += sum_sq(s);
    }
  }
  let inv_rms = 1.0 / sqrt(reduce_sum(ss, r, t) / f32(H) + EPS);
  var amax = 0.0;
  for (var k = 0u; k < K; k++) {
    let u = t + k * T;
    if (valid && u < UNITS) {
      let v = quant_in(round_t(norm(load_s(base + u, u), inv_rms, u)), u);
      amax = max(amax, max_abs(v));
    }
  }
  let row_scale = max(reduce_max(amax, r, t) / 127.0, 0x1p-23f); // floor: an all-zero row gives q = 0
  if (valid && t == 0u) { scale[row] = row_scale; }
  for (var k = 0u; k < K; k++) {
    let u = t + k * T;
    if (valid && u < UNITS) {
      store_q(base + u, clamp(round(quant_in(round_t(norm(load_s(base + u, u), inv_rms, u)), u) / row_scale), vec4<f32>(-128.0), vec4<f32>(127.0)));
    }
  }
}

@compute @workgroup_size(256)
fn split_sumsq(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let g = wid.x + wid.y * nwg.x;
  let row = g / S;
  let c = g % S; // chunk of the row: units c * C .. c * C + C - 1
  let t = lid;
  let r = 0u; // one row per workgroup
  let valid = row < params.rows;
  let base = row * UNITS;
  var ss = 0.0;
  for (var k = 0u; k < KS; k++) {
    let u = c * C + t + k * T;
    if (valid && u < UNITS) {
      let s = load_s(base + u, u);
      ss += sum_sq(s);
    }
  }
  let chunk_ss = reduce_sum(ss, r, t);
  if (valid && t == 0u) { partials[partial_index(row, 0u, c)] = chunk_ss; }
}

@compute @workgroup_size(256)
fn split_amax(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let g = wid.x + wid.y * nwg.x;
  let row = g / S;
  let c = g % S; // chunk of the row: units c * C .. c * C + C - 1
  let t = lid;
  let r = 0u; // one row per workgroup
  let valid = row < params.rows;
  let base = row * UNITS;
  var ss = 0.0;
  for (var j = t; valid && j < S; j += T) {
    ss += partials[partial_index(row, 0u, j)];
  }
  let inv_rms = 1.0 / sqrt(reduce_sum(ss, r, t) / f32(H) + EPS);
  var amax = 0.0;
  for (var k = 0u; k < KS; k++) {
    let u = c * C + t + k * T;
    if (valid && u < UNITS) {
      let v = quant_in(round_t(norm(load_s_again(base + u, u), inv_rms, u)), u);
      amax = max(amax, max_abs(v));
    }
  }
  let chunk_amax = reduce_max(amax, r, t);
  if (valid && t == 0u) { partials[partial_index(row, 1u, c)] = chunk_amax; }
}

@compute @workgroup_size(256)
fn split_norm(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let g = wid.x + wid.y * nwg.x;
  let row = g / S;
  let c = g % S; // chunk of the row: units c * C .. c * C + C - 1
  let t = lid;
  let r = 0u; // one row per workgroup
  let valid = row < params.rows;
  let base = row * UNITS;
  var ss = 0.0;
  for (var j = t; valid && j < S; j += T) {
    ss += partials[partial_index(row, 0u, j)];
  }
  let inv_rms = 1.0 / sqrt(reduce_sum(ss, r, t) / f32(H) + EPS);
  var amax = 0.0;
  for (var j = t; valid && j < S; j += T) {
    amax = max(amax, partials[partial_index(row, 1u, j)]);
  }
  let row_scale = max(reduce_max(amax, r, t) / 127.0, 0x1p-23f);
  if (valid && c == 0u && t == 0u) { scale[row] = row_scale; }
  for (var k = 0u; k < KS; k++) {
    let u = c * C + t + k * T;
    if (valid && u < UNITS) {
      store_q(base + u, clamp(round(quant_in(round_t(norm(load_s_again(base + u, u), inv_rms, u)), u) / row_scale), vec4<f32>(-128.0), vec4<f32>(127.0)));
    }
  }
}
