#!/usr/bin/env bash
# The Rust tests under AddressSanitizer, with LeakSanitizer: use after free, overflows of the hand-written
# kernels' buffers, and leaks at exit. Built with the system allocator, which ASan instruments (mimalloc's
# pages would hide overflows inside them). Needs a nightly toolchain (`-Zsanitizer` is unstable); not part of
# `npm test`. Build scripts and proc macros stay uninstrumented because a --target is given.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/fetch-test-model.mjs
host="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/asan}" \
  cargo +nightly test --release --target "$host" --no-fail-fast --features system-allocator \
  --lib --test kernels --test lifecycle --test corrupt_models --test long_texts --test parity --test fuzz "$@"
