#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: hack/setup.sh (packages,
# Python environment, test bed binaries, images; cached outside the repository), then
# hack/demo.py. Extra arguments go to demo.py (--keep leaves the test bed running).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(bash hack/setup.sh | tail -1)"
export PATH="$venv/bin:$PATH"
bash hack/perf-analyzer.sh >/dev/null
exec python hack/demo.py "$@"
