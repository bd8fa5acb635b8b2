#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: Debian packages, Python
# environment, test bed binaries and images (all cached outside the repository), then
# hack/demo.py. Extra arguments go to demo.py (--keep leaves the test bed running).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash hack/system-deps.sh
venv="$(bash hack/python-env.sh | tail -1)"
export PATH="$venv/bin:$PATH"
bash hack/testbed/build.sh
# The node's images, from the repository's Dockerfiles (cached by content; minutes when new).
bash hack/images/build.sh
bash hack/perf-analyzer.sh >/dev/null
exec python hack/demo.py "$@"
