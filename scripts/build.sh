#!/usr/bin/env bash
# Builds what the worker serves and runs: the browser module into www/pkg and
# the worker into crates/worker/build. Uses only local tools (see install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/.tools/bin:$PATH"
export WASM_BINDGEN_BIN="$ROOT/.tools/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"

echo "build: browser module -> www/pkg"
# Smallest code for what the browser downloads: whole-program LTO, one unit.
CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --quiet -p snc-web --target wasm32-unknown-unknown --release
wasm-bindgen --target web --no-typescript --out-dir www/pkg \
  target/wasm32-unknown-unknown/release/snc_web.wasm
# The producers and target-features sections say how it was built: not needed.
"$WASM_OPT_BIN" -Oz --strip-producers --strip-target-features \
  --enable-bulk-memory --enable-nontrapping-float-to-int \
  www/pkg/snc_web_bg.wasm -o www/pkg/snc_web_bg.wasm
# The admin views: the same crate with `admin` instead of `connect`, a second
# module the page loads after the wizard (crates/web/src/admin).
CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --quiet -p snc-web --no-default-features --features admin \
  --target wasm32-unknown-unknown --release
wasm-bindgen --target web --no-typescript --out-dir www/pkg --out-name snc_admin \
  target/wasm32-unknown-unknown/release/snc_web.wasm
"$WASM_OPT_BIN" -Oz --strip-producers --strip-target-features \
  --enable-bulk-memory --enable-nontrapping-float-to-int \
  www/pkg/snc_admin_bg.wasm -o www/pkg/snc_admin_bg.wasm

echo "build: worker -> crates/worker/build"
# Speed over size for the worker: its CPU per event is what costs money.
# Whole-program LTO in one unit inlines across core and serde: a fifth less
# CPU per event than the default sixteen units (make bench, 2026-11-27).
(cd crates/worker && CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 worker-build --release)
