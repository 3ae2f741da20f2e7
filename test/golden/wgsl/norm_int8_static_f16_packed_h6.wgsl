// rmsfuse Norm kernel: x float16, H = 6, epsilon = 0.00001, quant int8, high_precision, llama.
// 32 row(s) of 2 thread(s) per workgroup, vec2 units, row kept in registers, tree reduction.

const H: u32 = 6u;
const UNITS: u32 = 3u; // vec2 units per row
const T: u32 = 2u; // threads per row
const R: u32 = 32u; // rows per workgroup
const K: u32 = 2u; // units per thread
const EPS: f32 = 0.000009999999747378752f;

// rows: rows in this dispatch; scale, offset: static quantization (per tensor, set at run time).
struct Params { rows: u32, scale: f32, offset: f32, pad: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> gamma: array<u32>;
@group(0) @binding(3) var<storage, read> beta: array<u32>;
@group(0) @binding(4) var<storage, read_write> q: array<atomic<u32>>;

fn load_x(i: u32) -> vec2<f32> {
  return unpack2x16float(x[i]);
}

fn load_gamma(i: u32) -> vec2<f32> {
  return unpack2x16float(gamma[i]);
}

fn load_beta(i: u32) -> vec2<f32> {
  return unpack2x16float(beta[i]);
}

fn store_q(i: u32, v: vec2<f32>) {
  atomicOr(&q[i >> 1u], ((u32(i32(v.x)) & 0xffu) | ((u32(i32(v.y)) & 0xffu) << 8u)) << ((i & 1u) * 16u));
}

fn round_t(v: vec2<f32>) -> vec2<f32> {
  return vec2<f32>(unpack2x16float(pack2x16float(vec2<f32>(v.x, 0.0))).x, unpack2x16float(pack2x16float(vec2<f32>(v.y, 0.0))).x);
}

fn sum_sq(v: vec2<f32>) -> f32 {
  return dot(v, v);
}

// The values the norm reads for unit i of the row (u: unit within the row).
fn load_s(i: u32, u: u32) -> vec2<f32> {
  return load_x(i);
}

fn norm(s: vec2<f32>, inv_rms: f32, u: u32) -> vec2<f32> {
  return s * inv_rms * load_gamma(u);
}

// Quantizer input from y (already rounded to T).
fn quant_in(y: vec2<f32>, u: u32) -> vec2<f32> {
  return round_t(y + load_beta(u));
}

var<workgroup> red_sum: array<f32, 64>;
fn reduce_sum(v: f32, r: u32, t: u32) -> f32 {
  let i = r * 2u + t;
  red_sum[i] = v;
  workgroupBarrier();
  var total = red_sum[r * 2u];
  for (var k = 1u; k < 2u; k++) {
    total = total + red_sum[r * 2u + k];
  }
  return total;
}

@compute @workgroup_size(64)
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
  var cache: array<vec2<f32>, K>;
  var ss = 0.0;
  for (var k = 0u; k < K; k++) {
    let u = t + k * T;
    if (valid && u < UNITS) {
      let s = load_s(base + u, u);
      cache[k] = s;
      ss += sum_sq(s);
    }
  }
  let inv_rms = 1.0 / sqrt(reduce_sum(ss, r, t) / f32(H) + EPS);
  for (var k = 0u; k < K; k++) {
    let u = t + k * T;
    if (valid && u < UNITS) {
      let y = round_t(norm(cache[k], inv_rms, u));
      store_q(base + u, clamp(round(quant_in(y, u) / params.scale) + params.offset, vec2<f32>(-128.0), vec2<f32>(127.0)));
    }
  }
}
