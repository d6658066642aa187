#!/usr/bin/env bash
# The GPU check (issue 16), in three steps:
#
#   bash scripts/gpu-check.sh --prepare   here: builds the CUDA check program (examples/gpu_check.rs) and lays
#                                         out .gpu-check/ (ignored by git): the program, the reference
#                                         fixtures, all-MiniLM-L6-v2 with f16 weights, the 500-chunk corpus.
#                                         About 35 MB (the program, 52 MB stripped, travels xz-compressed),
#                                         inside the device machine's 64 MiB transfer.
#   bash scripts/gpu-check.sh             on the GPU machine (no network, no toolchain needed): runs every
#                                         check on CUDA device 0 in under 5 minutes; with the device tool:
#                                           run(command="bash scripts/gpu-check.sh", carry=[".gpu-check"])
#   bash scripts/gpu-check.sh --cpu       the same checks on the CPU: a dry run of the script and the program.
#
# Prints one PASS/FAIL line per check and writes gpu-check.json and gpu-check.log to $OUT (the device tool's
# folder), else to .gpu-check/out. Exit status 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=.gpu-check

prepare() {
  node scripts/fetch-test-model.mjs
  node bench/corpus.mjs
  node scripts/cuda-toolchain.mjs cargo build --release --features cuda --example gpu_check
  rm -rf "$DATA"
  mkdir -p "$DATA"
  cp -r fixtures/reference "$DATA/reference"
  cp target/bench-corpus.json "$DATA/"
  target/cuda/release/examples/gpu_check half fixtures/models/all-MiniLM-L6-v2 "$DATA/all-MiniLM-L6-v2-f16"
  strip -o "$DATA/gpu_check" target/cuda/release/examples/gpu_check
  xz -T0 -6 "$DATA/gpu_check"
  du -sh "$DATA"
  echo "ready: carry $DATA and run 'bash scripts/gpu-check.sh' on the GPU machine (or --cpu here)"
}

# cudarc opens the driver, cuBLAS and cuRAND with dlopen. On images where they come from Python wheels
# (nvidia-cublas, nvidia-curand) they are not on the loader's path, so their folders are added.
find_cuda_libraries() {
  local dirs=() lib found
  local known
  known=$(ldconfig -p 2>/dev/null || true)
  for lib in libcuda.so.1 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
    if grep -q "$lib" <<<"$known"; then continue; fi
    found=$(find /usr/local/nvidia /usr/local/cuda* /usr/local/lib /usr/lib /opt "$HOME/.local" -name "$lib" 2>/dev/null | head -n 1 || true)
    if [ -n "$found" ]; then dirs+=("$(dirname "$found")"); else echo "note: $lib not found" >&2; fi
  done
  if [ ${#dirs[@]} -gt 0 ]; then
    LD_LIBRARY_PATH="$(printf '%s:' "${dirs[@]}")${LD_LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH
  fi
}

check() {
  local device=$1 out=${OUT:-$DATA/out} program
  [ -f "$DATA/gpu_check.xz" ] || { echo "$DATA/gpu_check.xz is missing: run 'bash scripts/gpu-check.sh --prepare' first" >&2; exit 2; }
  mkdir -p "$out"
  program=$(mktemp -d)/gpu_check
  if command -v xz >/dev/null; then xz -dc "$DATA/gpu_check.xz" >"$program"
  else python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$DATA/gpu_check.xz" >"$program"; fi
  chmod +x "$program"
  if [ "$device" = cuda ]; then
    find_cuda_libraries
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv || true
    # The kernels are CUDA 13.0 PTX: an older driver cannot load them, so say so now, not after every check.
    local driver
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader --id=0 2>/dev/null | cut -d. -f1 || true)
    if [ -n "$driver" ] && [ "$driver" -lt 580 ]; then
      echo "driver $driver is older than R580 (CUDA 13.0), which the CUDA build's kernels need" | tee "$out/gpu-check.log" >&2
      return 3
    fi
  fi
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  # A hard bound, so a hung device cannot eat the machine's whole window (the CPU dry run is slower).
  local limit=290
  [ "$device" = cuda ] || limit=900
  local status
  set +e
  timeout "$limit" "$program" run --device "$device" --data "$DATA" --out "$out" "${@:2}" 2>&1 | tee "$out/gpu-check.log"
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}

case "${1:-}" in
  --prepare) prepare ;;
  --cpu) check cpu "${@:2}" ;;
  "") check cuda ;;
  *) echo "usage: bash scripts/gpu-check.sh [--prepare | --cpu]" >&2; exit 2 ;;
esac
