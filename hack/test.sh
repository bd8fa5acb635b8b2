#!/usr/bin/env bash
# The whole test suite from a fresh clone: hack/setup.sh (packages, Python environment,
# test bed binaries, images; cached outside the repo), lint, then every test layer.
# pytest's own exit codes are returned, so "no tests collected" (5) fails the run.
#
# The full suite runs as three pytest sessions side by side, each with its own test bed or
# none: tests/node drives the real kubelet node; tests/integration a KWOK-only control
# plane; tests/e2e and tests/unit local Triton/Redis/Prometheus or nothing. Most of each is
# waiting on pods, ticks and rollouts (one session kept the two cores half idle), so the
# wall time is near the longest of the three rather than their sum. Each prints its
# slowest tests. With arguments (a file, -k, -m ...), one session runs what they select.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(bash hack/setup.sh | tail -1)"
export PATH="$venv/bin:$PATH"

ruff check .
ruff format --check .
mypy
# The layering of docs/architecture.md, first so a wrong import fails in a second.
python -m pytest -q tests/unit/test_architecture.py

if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi

logs="$(mktemp -d -t tenfold-tests.XXXXXX)"
python -m pytest tests/node --durations=15 >"$logs/node.log" 2>&1 &
node_pid=$!
python -m pytest tests/integration --durations=15 >"$logs/integration.log" 2>&1 &
integration_pid=$!
# Interrupted: take the background sessions down with this script, not leave them running.
trap 'kill "$node_pid" "$integration_pid" 2>/dev/null || true' INT TERM
status=0
python -m pytest tests/e2e tests/unit --durations=15 || status=$?
for session in integration node; do
  pid_var="${session}_pid"
  session_status=0
  wait "${!pid_var}" || session_status=$?
  echo "======================== tests/${session} (ran alongside) ========================"
  cat "$logs/${session}.log"
  echo "tests/${session}: exit ${session_status}"
  if [ "$status" -eq 0 ]; then status=$session_status; fi
done
rm -rf "$logs"
exit "$status"
