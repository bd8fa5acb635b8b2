#!/usr/bin/env bash
# The whole test suite from a fresh clone: system packages, the Python environment, the
# Kubernetes test bed binaries (cached outside the repo), lint, then every test layer.
# pytest's own exit code is returned unchanged, so "no tests collected" (5) fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
bash hack/system-deps.sh
venv="$(bash hack/python-env.sh | tail -1)"
export PATH="$venv/bin:$PATH"
bash hack/testbed/build.sh
# The node's images, from the repository's Dockerfiles (cached by content; minutes when new).
bash hack/images/build.sh
echo "tenfold: setup took $(( $(date +%s) - start ))s" >&2

ruff check .
ruff format --check .
mypy
# The layering of docs/architecture.md, first so a wrong import fails in a second.
python -m pytest -q tests/unit/test_architecture.py
python -m pytest tests "$@"
