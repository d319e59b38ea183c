#!/usr/bin/env bash
# `make dev`: installs and builds what is missing, starts the simulator and the
# worker (wrangler dev, local D1) and the demo portal, and prints where to go.
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${PORT:-8787}
SIM_PORT=${SIM_PORT:-8788}
PORTAL_PORT=${PORTAL_PORT:-8789}
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

scripts/install.sh
cargo build --quiet --release -p snc-sim
scripts/build.sh

if [ ! -f .dev.vars ]; then
  # Local-only secrets; wrangler dev reads this file. Never committed.
  umask 077
  {
    echo "ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    echo "ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64)"
    echo "ALLOW_LOOPBACK_INSTANCES=true"
    echo "ALLOWED_ORIGINS=http://127.0.0.1:$PORTAL_PORT"
  } > .dev.vars
  echo "dev: wrote .dev.vars with a new ADMIN_TOKEN and ENCRYPTION_KEY"
fi
ADMIN_TOKEN=$(grep '^ADMIN_TOKEN=' .dev.vars | cut -d= -f2-)

node_modules/.bin/wrangler d1 migrations apply DB --local >/dev/null
echo "dev: local D1 migrated"

pids=()
cleanup() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup INT TERM EXIT

simlog=$(mktemp)
target/release/snc-sim --listen "127.0.0.1:$SIM_PORT" > "$simlog" &
pids+=($!)
for _ in $(seq 50); do [ -s "$simlog" ] && break; sleep 0.1; done
banner=$(head -n1 "$simlog")

node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$PORT" --test-scheduled \
  --show-interactive-dev-session=false > target/wrangler-dev.log 2>&1 &
pids+=($!)
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.2; done

# The demo portal, on a second origin: it creates a `connect` key with the
# admin token, keeps it server-side and hands its visitors connect tickets.
CONNECTOR_URL="http://127.0.0.1:$PORT" ADMIN_TOKEN="$ADMIN_TOKEN" node demo/portal.mjs "$PORTAL_PORT" > target/portal.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^portal:' target/portal.log 2>/dev/null && break; sleep 0.2; done

cat <<MSG

  Page:          http://127.0.0.1:$PORT/
  Demo portal:   http://127.0.0.1:$PORTAL_PORT/
  Admin token:   $ADMIN_TOKEN
  Simulator:     $banner
  Worker log:    target/wrangler-dev.log

  Ctrl-C stops them all.
MSG
wait -n "${pids[@]}"
