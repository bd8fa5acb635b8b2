#!/usr/bin/env bash
# Everything `make test` and `make demo` need, from a fresh clone: Debian packages, the
# Python environment, the test bed's binaries and the node's images, all cached outside
# the repository (a second run takes seconds). Prints the venv path on its last line.
#
# The image build mostly waits on the network (3 GB of wheels) and the disk, while the Go
# builds keep both cores busy, so the two run side by side on a fresh machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
bash hack/system-deps.sh
images_log="$(mktemp)"
bash hack/images/build.sh >"$images_log" 2>&1 &
images_pid=$!
venv="$(bash hack/python-env.sh | tail -1)"
bash hack/testbed/build.sh >&2
if ! wait "$images_pid"; then
    cat "$images_log" >&2
    echo "tenfold: hack/images/build.sh failed" >&2
    exit 1
fi
cat "$images_log" >&2
rm -f "$images_log"
echo "tenfold: setup took $(( $(date +%s) - start ))s" >&2
echo "$venv"
