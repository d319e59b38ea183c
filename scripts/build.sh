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
# `out_name` from the compiled module, unless its wasm-bindgen and wasm-opt
# outputs are already those of this module (each takes seconds).
bindgen_opt() {
  local out_name=$1 raw=target/wasm32-unknown-unknown/release/snc_web.wasm
  local stamp_file="www/pkg/.$out_name.built-from" stamp
  stamp="$(sha256sum "$raw" scripts/build.sh | cut -d' ' -f1 | tr '\n' ' ')$("$WASM_BINDGEN_BIN" --version) $("$WASM_OPT_BIN" --version)"
  if [[ -f "www/pkg/$out_name.js" && -f "www/pkg/${out_name}_bg.wasm" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
    return
  fi
  rm -f "$stamp_file"
  wasm-bindgen --target web --no-typescript --out-dir www/pkg --out-name "$out_name" "$raw"
  # The producers and target-features sections say how it was built: not needed.
  "$WASM_OPT_BIN" -Oz --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-nontrapping-float-to-int \
    "www/pkg/${out_name}_bg.wasm" -o "www/pkg/${out_name}_bg.wasm"
  # The generated JavaScript glue, minified (its exports keep their names):
  # 7.2 of the connect page's 64 KB gzip as written, 4.6 minified.
  "$ESBUILD_BIN" "www/pkg/$out_name.js" --minify --format=esm --log-level=warning \
    --outfile="www/pkg/$out_name.min.js"
  mv "www/pkg/$out_name.min.js" "www/pkg/$out_name.js"
  printf '%s' "$stamp" > "$stamp_file"
}
# Smallest code for what the browser downloads: whole-program LTO, one unit.
CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --quiet -p snc-web --target wasm32-unknown-unknown --release
bindgen_opt snc_web
# The admin views: the same crate with `admin` instead of `connect`, a second
# module the page loads after the wizard (crates/web/src/admin).
CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --quiet -p snc-web --no-default-features --features admin \
  --target wasm32-unknown-unknown --release
bindgen_opt snc_admin

echo "build: worker -> crates/worker/build"
# The IP table the worker carries is built from node_modules/@ip-location-db
# (crates/worker/build.rs; SNC_IP_DATA_DIR names another copy); a worker
# without it would place no address, so this makes its build fail instead.
export SNC_IP_DATA_REQUIRED=1
# Speed over size for the worker: its CPU per event is what costs money.
# Whole-program LTO in one unit inlines across core and serde: a fifth less
# CPU per event than the default sixteen units (make bench, 2026-11-27).
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# As worker-build compiles (its target.rs): wasm-bindgen's macro reads this
# at expansion and cargo does not track it, so a compile without it would be
# reused by worker-build with the other futures glue.
export WASM_BINDGEN_USE_JS_SYS=1
# worker-build runs wasm-opt over the whole worker each time (about 1m45s
# on this machine) even when nothing changed: compile first, and skip it when
# the compiled module and the tools are those of the last build.
(cd crates/worker && cargo build --quiet --lib --release --target wasm32-unknown-unknown)
stamp_file=crates/worker/build/.built-from
# What decides the output: the module, this script's flags, the crate's
# wasm-opt settings, and every tool's version.
stamp="$(sha256sum target/wasm32-unknown-unknown/release/snc_worker.wasm scripts/build.sh crates/worker/Cargo.toml | cut -d' ' -f1 | tr '\n' ' ')$(worker-build --version 2>&1 | head -1) $("$WASM_BINDGEN_BIN" --version) $("$WASM_OPT_BIN" --version) $("$ESBUILD_BIN" --version)"
if [[ -f crates/worker/build/index.js && -f crates/worker/build/index_bg.wasm && -f crates/worker/build/worker/shim.mjs && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  echo "build: worker unchanged since the last build"
else
  rm -f "$stamp_file"
  (cd crates/worker && worker-build --release)
  printf '%s' "$stamp" > "$stamp_file"
fi
