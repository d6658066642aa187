#!/usr/bin/env bash
# `npm run test:arm64`: cross-builds the Rust unit, kernel and parity tests for aarch64-unknown-linux-gnu and
# runs them under qemu-aarch64 (user-mode emulation), so ARM64 (Apple Silicon, Graviton, Ampere) is exercised on
# an x86 machine. Installs what it needs, idempotently: rustup's rust-std for the target, and Debian's
# gcc-aarch64-linux-gnu (linker, and C compiler for oniguruma and mimalloc) and qemu-user.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
node scripts/fetch-test-model.mjs

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Tests that start the test binary again (one process per SIMD level) start it through qemu too.
export EMBEDDING_SERVICE_TEST_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
start=$(date +%s)
# Twice: on a CPU with the dot-product extension (qemu's `max`: ARMv8.2+ and later, as Apple M and Graviton 2+)
# and on one without it (Cortex-A53, ARMv8.0), so both int8 NEON kernels run. QEMU_CPU reaches child processes.
# The f32 kernels do not depend on the extension, so the second CPU runs the int8 tests only.
echo "[test:arm64] QEMU_CPU=max" >&2
QEMU_CPU=max cargo test --release --target "$target" --lib --test kernels --test parity --test int8 --test onnx "$@"
echo "[test:arm64] QEMU_CPU=cortex-a53 (no dot-product extension)" >&2
QEMU_CPU=cortex-a53 cargo test --release --target "$target" --lib --test int8 "$@"
echo "[test:arm64] passed under qemu-aarch64 in $(( $(date +%s) - start )) s (build included)" >&2
