#!/usr/bin/env bash
# Installs everything the project needs, idempotently: each step checks first
# and says "skip" when its piece is already there. Tool binaries go into the
# git-ignored .tools/ so a warm machine skips the long compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS="$ROOT/.tools"
WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130

say() { printf 'install: %s\n' "$*"; }

# 1. Rust's wasm target.
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "skip wasm32-unknown-unknown target (installed)"
else
  say "adding wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# 2. worker-build and the wasm-bindgen CLI, compiled once into .tools/.
if [ "$("$TOOLS/bin/worker-build" --version 2>/dev/null || true)" = "worker-build $WORKER_BUILD_VERSION" ]; then
  say "skip worker-build $WORKER_BUILD_VERSION (in .tools)"
else
  say "compiling worker-build $WORKER_BUILD_VERSION into .tools (about 10 minutes on a fresh machine)"
  cargo install --locked --root "$TOOLS" "worker-build@$WORKER_BUILD_VERSION"
fi
if [ "$("$TOOLS/bin/wasm-bindgen" --version 2>/dev/null || true)" = "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  say "skip wasm-bindgen-cli $WASM_BINDGEN_VERSION (in .tools)"
else
  # Not --locked: the locked webpki-roots of this release fails to build.
  say "compiling wasm-bindgen-cli $WASM_BINDGEN_VERSION into .tools (about 6 minutes on a fresh machine)"
  cargo install --force --root "$TOOLS" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# 3. Node tooling from the committed lockfile (wrangler, miniflare, playwright-core, binaryen, axe-core).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/.snc-lock-sum ] && [ "$(cat node_modules/.snc-lock-sum)" = "$lock_sum" ]; then
  say "skip npm ci (node_modules matches package-lock.json)"
else
  say "npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.snc-lock-sum
fi

# 4. Chromium and ChromeDriver from Debian, for the browser tests.
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  say "skip chromium and chromium-driver (installed)"
else
  say "installing chromium and chromium-driver from Debian"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium chromium-driver
fi

say "done"
