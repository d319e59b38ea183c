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

# 2. worker-build and the wasm-bindgen CLI, compiled once into .tools/. A
# machine-wide cache (~/.cache/snc-tools) lets a fresh clone on a warm machine
# (CI's) copy them instead of spending 16 minutes compiling again.
CACHE="${SNC_TOOLS_CACHE:-$HOME/.cache/snc-tools}"
has_version() { "$1" --version 2>/dev/null | grep -qw "$2"; }
ensure_tool() { # binary version cargo-install-args...
  local bin=$1 version=$2 want="$1 $2"; shift 2
  if has_version "$TOOLS/bin/$bin" "$version"; then
    say "skip $want (in .tools)"; return
  fi
  if has_version "$CACHE/bin/$bin" "$version"; then
    mkdir -p "$TOOLS/bin"
    cp "$CACHE/bin/$bin" "$TOOLS/bin/"
    [ "$bin" = wasm-bindgen ] && cp "$CACHE/bin/wasm-bindgen-test-runner" "$TOOLS/bin/" 2>/dev/null || true
    say "copied $want from $CACHE"; return
  fi
  say "compiling $want into .tools (several minutes on a fresh machine)"
  cargo install --root "$TOOLS" "$@"
  mkdir -p "$CACHE/bin" && cp "$TOOLS"/bin/* "$CACHE/bin/" 2>/dev/null || true
}
ensure_tool worker-build "$WORKER_BUILD_VERSION" --locked "worker-build@$WORKER_BUILD_VERSION"
# Not --locked: the locked webpki-roots of this release fails to build.
ensure_tool wasm-bindgen "$WASM_BINDGEN_VERSION" --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
if [ ! -x "$TOOLS/bin/wasm-bindgen-test-runner" ]; then
  cargo install --root "$TOOLS" --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
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

# A venv per requirements file, rebuilt only when the file's hash changes.
venv_from() { # <dir under .tools> <requirements file> <what for>
  local sum
  sum=$(sha256sum "$2" | cut -d' ' -f1)
  if [ -f "$TOOLS/$1/.snc-req-sum" ] && [ "$(cat "$TOOLS/$1/.snc-req-sum")" = "$sum" ]; then
    say "skip $3 venv ($2 installed in .tools/$1)"
  else
    say "$3 venv from $2"
    python3 -m venv "$TOOLS/$1"
    "$TOOLS/$1/bin/pip" install --quiet --disable-pip-version-check -r "$2"
    echo "$sum" > "$TOOLS/$1/.snc-req-sum"
  fi
}

# 5. Python tools for the fidelity tests (pysnow, a ServiceNow client we did not write).
venv_from venv tests/fidelity/requirements.txt "pysnow"

# 6. Schemathesis for the OpenAPI hardening test, in a venv of its own (its
# dependencies must not move pysnow's).
venv_from st-venv tests/hardening/requirements.txt "schemathesis"

say "done"
