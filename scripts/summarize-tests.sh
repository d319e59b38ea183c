#!/usr/bin/env bash
# Counts passed and failed tests per kind from the stage logs; fails when a
# kind ran no test at all, so a silently skipped stage cannot pass.
set -uo pipefail
LOGS=$1
total_pass=0; total_fail=0; empty=0
sum() { awk '{s+=$1} END {print s+0}'; }
count() { # kind file
  local pass fail
  case "$2" in
    *pytest.log) pass=$(grep -oE '[0-9]+ passed' "$2" | tail -1 | sum)
                 fail=$(grep -oE '[0-9]+ failed' "$2" | tail -1 | sum) ;;
    *e2e.log)    pass=$(grep -E '^# pass ' "$2" | awk '{print $3}' | sum)
                 fail=$(grep -E '^# fail ' "$2" | awk '{print $3}' | sum) ;;
    *)           pass=$(grep -oE 'test result: [A-Za-z]+\. [0-9]+ passed' "$2" | awk '{print $4}' | sum)
                 fail=$(grep -oE '[0-9]+ failed' "$2" | awk '{print $1}' | sum) ;;
  esac
  printf '%-38s %5d passed, %d failed\n' "$1" "$pass" "$fail"
  total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
  [ "$pass" -gt 0 ] || empty=1
}
count "native (cargo test)" "$LOGS/native.log"
count "sim fidelity (pysnow, pytest)" "$LOGS/fidelity-pytest.log"
count "wasm in Chromium (wasm-bindgen-test)" "$LOGS/wasm.log"
count "worker e2e (workerd + simulator)" "$LOGS/worker-e2e.log"
count "browser e2e (Playwright)" "$LOGS/browser-e2e.log"
echo "$total_pass passed, $total_fail failed"
if [ "$total_fail" -ne 0 ] || [ "$empty" -ne 0 ]; then
  echo "test: a kind failed or ran no test" >&2
  exit 1
fi
