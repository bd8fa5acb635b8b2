#!/usr/bin/env bash
# The whole test suite from a fresh clone: hack/setup.sh (packages, Python environment,
# test bed binaries, images; cached outside the repo), lint, then every test layer.
# pytest's own exit code is returned unchanged, so "no tests collected" (5) fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(bash hack/setup.sh | tail -1)"
export PATH="$venv/bin:$PATH"

ruff check .
ruff format --check .
mypy
# The layering of docs/architecture.md, first so a wrong import fails in a second.
python -m pytest -q tests/unit/test_architecture.py
python -m pytest tests "$@"
