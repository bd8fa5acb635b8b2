#!/usr/bin/env bash
# The whole test suite from a fresh clone: hack/setup.sh (packages, Python environment,
# test bed binaries, images; cached outside the repo), lint, then every test layer.
# pytest's own exit codes are returned, so "no tests collected" (5) fails the run.
#
# The full suite runs as two pytest sessions side by side, each with its own test bed:
# tests/node drives the real kubelet node; the rest (KWOK-only control plane, local
# Triton/Redis/Prometheus, unit) never touch it. Much of either is waiting on pods, ticks
# and rollouts, so the wall time is near the longer of the two rather than their sum.
# With arguments (a file, -k, -m ...), one session runs exactly what they select.
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

node_log="$(mktemp -t tenfold-node-tests.XXXXXX)"
python -m pytest tests/node >"$node_log" 2>&1 &
node_pid=$!
# Interrupted: take the node session down with this script, not leave it running.
trap 'kill "$node_pid" 2>/dev/null || true' INT TERM
rest_status=0
python -m pytest tests --ignore=tests/node || rest_status=$?
node_status=0
wait "$node_pid" || node_status=$?
echo "======================== tests/node (ran alongside) ========================"
cat "$node_log"
rm -f "$node_log"
echo "tests without the node: exit ${rest_status}; tests/node: exit ${node_status}"
if [ "$rest_status" -ne 0 ]; then exit "$rest_status"; fi
exit "$node_status"
