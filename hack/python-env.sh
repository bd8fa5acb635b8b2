#!/usr/bin/env bash
# Creates (or reuses) the project's Python environment outside the repository, so a fresh
# clone does not download torch again. Prints the venv path on its last line.
# The dependency set is keyed by a hash of pyproject.toml; the project itself is re-installed
# editable on every call (seconds), because each clone lives at a different path.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TENFOLD_CACHE:-$HOME/.cache/tenfold}"
venv="$cache_root/venv-py311"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

deps_key="$(sha256sum "$repo_root/pyproject.toml" | cut -c1-16)"
stamp="$venv/.tenfold-deps-$deps_key"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "tenfold: creating the Python environment in $venv" >&2
    mkdir -p "$cache_root"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel >&2
fi
if [[ ! -f "$stamp" ]]; then
    echo "tenfold: installing dependencies (first run downloads torch, about 3 GB)" >&2
    start=$(date +%s)
    "$venv/bin/python" -m pip install -q --progress-bar off -e "$repo_root[dev]" >&2
    rm -f "$venv"/.tenfold-deps-*
    touch "$stamp"
    echo "tenfold: dependencies installed in $(( $(date +%s) - start ))s" >&2
else
    "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$repo_root" >&2
fi
# Development tooling (tools/: the test bed, harnesses) is on the venv's path through a .pth
# file, never in the tenfold wheel, so no image carries it.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$repo_root/tools" > "$site/tenfold-tools.pth"
echo "$venv"
