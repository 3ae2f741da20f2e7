#!/usr/bin/env bash
# On the GPU machine (bench/wgsl/README.md, "On a GPU machine"), from the repository root with
# .devbundle carried (bench/wgsl/device/pack.ts builds it here):
#   1. gpu-check: every WGSL kernel case through its emitted launcher against the CPU reference,
#      native fp16 included (`K/N runs pass`);
#   2. bench, bench-f16: the benchmark's table in fp32 and in fp16 (native f16 where the adapter has
#      shader-f16): ratio to copy, speed-up over onnxruntime's WebGPU EP;
#   3. split-never / split-always: decode-sized shapes through both paths, to tune the split-row
#      constants (codegen/wgsl/spec.ts chooseSplitRow).
# Each log is also written to $OUT (the device tool's output folder) or /tmp/rmsfuse-device-out.
# ADAPTER=swiftshader QUICK=1 rehearses the same steps, shortened, on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/../../.."
out=${OUT:-/tmp/rmsfuse-device-out}
adapter=${ADAPTER:-default}
mkdir -p "$out"
if [ ! -f .devbundle/bundle.tar.xz ]; then
  echo "error: .devbundle/bundle.tar.xz is missing: run 'npx tsx bench/wgsl/device/pack.ts' and carry .devbundle" >&2
  exit 2
fi

# Vulkan: the image may lack the loader; the NVIDIA driver's ICD lives under /usr/local/nvidia.
if ! ldconfig -p | grep -q 'libvulkan\.so\.1 '; then
  for f in .devbundle/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nv=/usr/local/nvidia/share
if [ -f "$nv/vulkan/icd.d/nvidia_icd.json" ]; then
  export VK_DRIVER_FILES=$nv/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=$nv/glvnd/egl_vendor.d/10_nvidia.json
fi

bundle=$(mktemp -d /tmp/rmsfuse-bundle.XXXXXX)
tar -xJf .devbundle/bundle.tar.xz -C "$bundle" || python3 -m tarfile -e .devbundle/bundle.tar.xz "$bundle" || exit 2
node=$bundle/node
echo "node $("$node" --version); adapter $adapter; logs in $out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader

status=0
step() {
  local name=$1
  shift
  echo "== $name: $*"
  local t0=$SECONDS
  "$node" "$@" 2>&1 | tee "$out/$name.log" || status=1
  echo "== $name: $((SECONDS - t0)) s"
}
if [ "${QUICK:-}" = 1 ]; then
  step gpu-check "$bundle/bin/gpu-check.mjs" --adapter "$adapter" --only 'norm float32'
  step bench "$bundle/bin/bench.mjs" --adapter "$adapter" --H 4096 --rows 1,64 --runs 2 --gpu-ms 20
  split=(--adapter "$adapter" --H 8192 --rows 1 --no-ort --runs 2 --gpu-ms 20)
else
  step gpu-check "$bundle/bin/gpu-check.mjs" --adapter "$adapter"
  step bench "$bundle/bin/bench.mjs" --adapter "$adapter"
  step bench-f16 "$bundle/bin/bench.mjs" --adapter "$adapter" --dtype float16 --gpu-ms 150
  split=(--adapter "$adapter" --H 8192,16384,32768 --rows 1,4,16,32,64 --no-ort --runs 3 --gpu-ms 30)
fi
step split-never "$bundle/bin/bench.mjs" "${split[@]}" --split never
step split-always "$bundle/bin/bench.mjs" "${split[@]}" --split always
rm -rf "$bundle"
exit $status
