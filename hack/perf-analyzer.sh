#!/usr/bin/env bash
# Provides Triton's perf_analyzer on this machine and prints its path on the last line.
#
# Why not `pip install perf-analyzer`: the current wheel (2.60) needs glibc 2.38 and Debian 12
# has 2.36. tritonclient 2.41 still bundled perf_analyzer, built for glibc <= 2.34; it only
# lacks two shared libraries, libb64.so.0d and libcudart.so.12, and the nvidia-pytriton wheel
# (a dev dependency) ships both under hashed names. This script downloads the wheel once,
# extracts the binary and links those libraries into a cache folder keyed by version.
# Idempotent: a second run only prints the path.
set -euo pipefail
version="${PERF_ANALYZER_TRITONCLIENT_VERSION:-2.41.0}"
cache_root="${TENFOLD_CACHE:-$HOME/.cache/tenfold}"
tool_dir="$cache_root/tools/perf-analyzer-$version"
wrapper="$tool_dir/perf_analyzer"
python="${PYTHON:-$cache_root/venv-py311/bin/python}"

if [[ -x "$wrapper" ]]; then
    echo "$wrapper"
    exit 0
fi

mkdir -p "$cache_root/tools"
work="$(mktemp -d "$cache_root/tools/.perf-analyzer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "perf-analyzer: downloading tritonclient $version (manylinux1 x86_64 wheel)" >&2
"$python" -m pip download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
    --python-version 3.11 "tritonclient==$version" -d "$work/wheel" >&2
"$python" - "$work" <<'PY'
import pathlib, sys, zipfile
work = pathlib.Path(sys.argv[1])
wheel = next((work / "wheel").glob("tritonclient-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith("/bin/perf_analyzer"))
    target = work / "bin" / "perf_analyzer.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(archive.read(name))
    target.chmod(0o755)
PY

libs="$("$python" -c 'import pathlib, pytriton; print(pathlib.Path(pytriton.__file__).resolve().parents[1] / "nvidia_pytriton.libs")')"
mkdir -p "$work/bin/lib"
for pair in "libb64.so.0d:libb64-*.so.0d" "libcudart.so.12:libcudart-*.so.12*"; do
    soname="${pair%%:*}"
    match=( $libs/${pair#*:} )
    [[ -e "${match[0]}" ]] || { echo "perf-analyzer: no ${pair#*:} in $libs" >&2; exit 1; }
    ln -s "${match[0]}" "$work/bin/lib/$soname"
done

cat > "$work/bin/perf_analyzer" <<'SH'
#!/usr/bin/env bash
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/perf_analyzer.bin" "$@"
SH
chmod +x "$work/bin/perf_analyzer"
if ! "$work/bin/perf_analyzer" --version >/dev/null 2>&1 && \
   ! "$work/bin/perf_analyzer" 2>&1 | grep -q "Usage"; then
    echo "perf-analyzer: the binary does not start here:" >&2
    LD_LIBRARY_PATH="$work/bin/lib" ldd "$work/bin/perf_analyzer.bin" | grep "not found" >&2 || true
    exit 1
fi
rm -rf "$tool_dir"
mv "$work/bin" "$tool_dir"
echo "$wrapper"
