#!/usr/bin/env bash
# Build tenfold's images on this machine, without a registry, for a containerd node.
#
#   bash hack/images/build.sh [base|operator|runtime-cpu|pause|coredns|redis|prometheus|
#                              prometheus-config-reloader ...]                 # default: all
#
# base         Debian (versions.env) from mmdebstrap, a local buildah image (not exported)
# operator     Dockerfile.operator on that base            docker.io/tenfold/operator:<version>
# runtime-cpu  Dockerfile.runtime-cpu on that base         docker.io/tenfold/runtime-cpu:<version>
# pause        hack/images/pause, one static binary         docker.io/tenfold/pause:<PAUSE_VERSION>
# coredns      hack/images/coredns: CoreDNS, a few plugins  docker.io/tenfold/coredns:<COREDNS_VERSION>
# redis        Debian's redis-server on a minbase rootfs     docker.io/tenfold/redis:<DEBIAN_SUITE>
# prometheus   the test bed's Prometheus (hack/testbed)     docker.io/tenfold/prometheus:<release>
# prometheus-config-reloader  prometheus-operator's reloader (hack/testbed)
#                                     docker.io/tenfold/prometheus-config-reloader:<version>
#
# Each image is exported, with uncompressed layers (no CPU spent on gzip), to an archive under
# ${TENFOLD_CACHE:-~/.cache/tenfold}/images/ named by a content key (tools/tenfold_tools/
# images.py): an unchanged input reuses its archive, a changed one builds a new one. The
# Dockerfile images are docker-archive tars (buildah 1.28 gzips every layer it writes to an
# oci-archive, --disable-compression or not); pause and coredns are OCI layouts written by
# images.py. `ctr images import` reads both. buildah
# keeps its storage and layer cache (the torch layer, pip's cache) in the same folder. The
# last lines are one per image, `IMAGE <ref> <archive>`, for `ctr -n k8s.io images import`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"
# The test bed's pins: the Prometheus and config-reloader images take its binaries.
# shellcheck source=../testbed/versions.env
source "${repo}/hack/testbed/versions.env"
cache="${TENFOLD_CACHE:-${HOME}/.cache/tenfold}"
out="${cache}/images"
mkdir -p "${out}/buildah/tmp"

# One build at a time: a second caller waits, then finds the archives cached.
exec 9>"${out}/.lock"
if ! flock -n 9; then
  echo "build.sh: another build holds ${out}/.lock, waiting" >&2
  flock 9
fi

images() { PYTHONPATH="${repo}/tools" "${PYTHON:-python3}" -m tenfold_tools.images "$@"; }
bah() {
  TMPDIR="${out}/buildah/tmp" buildah --root "${out}/buildah/storage" \
    --runroot /run/tenfold-buildah --storage-driver overlay "$@"
}
mib() { echo "$(( $(stat -c %s "$1") / 1048576 )) MiB"; }
say() { echo "build.sh: $*" >&2; }

version="$(images version --pyproject "${repo}/pyproject.toml")"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(operator runtime-cpu pause coredns redis prometheus
  prometheus-config-reloader)
results=()

# Replace older archives of one image by the new one (each is up to a few GiB).
prune() { # name keep
  local old
  for old in "${out}/$1"-*.tar; do
    [[ -e ${old} && ${old} != "$2" ]] && rm -f "${old}"
  done
  return 0
}

# A Debian rootfs tarball of `packages` (comma separated), cached by what it is made of.
# Sets rootfs_key and rootfs_tar.
debian_rootfs() { # packages
  local sources=/etc/apt/sources.list.d/debian.sources
  [[ -f ${sources} ]] || sources=/etc/apt/sources.list
  local opts=(--variant=minbase "--include=$1"
    "--dpkgopt=path-exclude=/usr/share/man/*" "--dpkgopt=path-exclude=/usr/share/locale/*"
    "--dpkgopt=path-exclude=/usr/share/doc/*" "--dpkgopt=path-include=/usr/share/doc/*/copyright")
  rootfs_key="$(printf '%s\n' "${DEBIAN_SUITE}" "${opts[@]}" | sha256sum | cut -c1-16)"
  rootfs_tar="${out}/base-${rootfs_key}.rootfs.tar"
  if [[ ! -f ${rootfs_tar} ]]; then
    say "rootfs: mmdebstrap ${DEBIAN_SUITE} ($1)"
    # The machine's own Debian sources: no mirror is named here.
    # mmdebstrap picks its output format from the name: keep .tar at the end.
    mmdebstrap --quiet "${opts[@]}" "${DEBIAN_SUITE}" "${rootfs_tar%.tar}.partial.tar" "${sources}"
    mv "${rootfs_tar%.tar}.partial.tar" "${rootfs_tar}"
  fi
}

# A buildah image of one rootfs tarball, with the usual PATH and `cmd`.
image_of_rootfs() { # rootfs ref cmd...
  local rootfs=$1 ref=$2 ctr
  shift 2
  ctr="$(bah from scratch)"
  bah add --quiet "${ctr}" "${rootfs}" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd "$*" "${ctr}"
  bah commit --quiet --rm "${ctr}" "${ref}" >/dev/null
}

base_ref=""
base_key=""
ensure_base() {
  [[ -z ${base_ref} ]] || return 0
  local start=${SECONDS}
  debian_rootfs "${BASE_PACKAGES}"
  base_key="${rootfs_key}"
  base_ref="localhost/tenfold/base:${base_key}"
  if bah inspect --type image "${base_ref}" >/dev/null 2>&1; then
    return 0
  fi
  image_of_rootfs "${rootfs_tar}" "${base_ref}" /bin/bash
  say "base: ${base_ref} in $((SECONDS - start)) s, rootfs $(mib "${rootfs_tar}")"
}

build_dockerfile() { # name dockerfile
  local name=$1 dockerfile="${repo}/$2"
  ensure_base
  local key ref archive start=${SECONDS}
  key="$(images key --dockerfile "${dockerfile}" --context "${repo}" \
    --ignorefile "${here}/dockerignore" --parent "${base_key}" --build-arg "BASE=${base_ref}")"
  ref="docker.io/tenfold/${name}:${version}"
  archive="${out}/${name}-${version}-${key}.docker.tar"
  if [[ -f ${archive} ]]; then
    say "${name}: cached (${archive##*/}, $(mib "${archive}"))"
  else
    local tls=()
    # pip inside RUN trusts what this machine trusts (a TLS-inspecting proxy's CA): the
    # host bundle is mounted over the base's for the build only and named by PIP_CERT.
    if [[ -n ${PIP_CERT:-} && -f ${PIP_CERT} ]]; then
      tls=(-v "${PIP_CERT}:/etc/ssl/certs/ca-certificates.crt:ro"
        --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
    fi
    say "${name}: building ${ref} from $2 (key ${key})"
    bah bud --layers --network host --ignorefile "${here}/dockerignore" "${tls[@]}" \
      --build-arg "BASE=${base_ref}" -f "${dockerfile}" -t "${ref}" "${repo}" >&2
    # The serving image is 6.9 GB: the older archive and the images no tag or build step
    # holds any more go first, so a rebuild needs room for one copy, not three.
    prune "${name}-${version}" "${archive}"
    bah rmi --prune >/dev/null 2>&1 || true
    bah push --quiet --disable-compression "${ref}" "docker-archive:${archive}.partial:${ref}"
    mv "${archive}.partial" "${archive}"
    say "${name}: built in $((SECONDS - start)) s, archive $(mib "${archive}"), unpacked $(bah images --format '{{.Size}}' "${ref}")"
  fi
  results+=("IMAGE ${ref} ${archive}")
}

build_pause() {
  local start=${SECONDS} src="${here}/pause" key bin archive ref
  key="$(images files-key "${src}/main.go" "${src}/go.mod" --extra "$(go version)")"
  bin="${cache}/bin/pause-${key}/pause"
  if [[ ! -x ${bin} ]]; then
    mkdir -p "${bin%/*}"
    (cd "${src}" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" \
      -o "${bin}.partial" .)
    mv "${bin}.partial" "${bin}"
  fi
  ref="docker.io/tenfold/pause:${PAUSE_VERSION}"
  archive="${out}/pause-${PAUSE_VERSION}-${key}.oci.tar"
  if [[ ! -f ${archive} ]]; then
    images oci-archive --ref "${ref}" --out "${archive}" --file "${bin}:/pause" \
      --entrypoint /pause --user 65535:65535
    prune "pause-${PAUSE_VERSION}" "${archive}"
  fi
  say "pause: $((SECONDS - start)) s, archive $(mib "${archive}")"
  results+=("IMAGE ${ref} ${archive}")
}

# CoreDNS with only the plugins the test bed uses (hack/images/coredns): a full
# `go install github.com/coredns/coredns` compiles every plugin, cloud SDKs included.
build_coredns() {
  local start=${SECONDS} src="${here}/coredns" dir key
  if ! grep -q "^require github.com/coredns/coredns ${COREDNS_VERSION}$" "${src}/go.mod"; then
    say "coredns: ${src}/go.mod does not require CoreDNS ${COREDNS_VERSION}; edit it, then go mod tidy"
    exit 1
  fi
  key="$(images files-key "${src}/main.go" "${src}/go.mod" "${src}/go.sum" --extra "$(go version)")"
  dir="${cache}/bin/coredns-${COREDNS_VERSION}-${key}"
  if [[ ! -x ${dir}/coredns ]]; then
    say "coredns: go build of ${src} (CoreDNS ${COREDNS_VERSION}, a few plugins)"
    mkdir -p "${dir}"
    (cd "${src}" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" \
      -o "${dir}/coredns.partial" .)
    mv "${dir}/coredns.partial" "${dir}/coredns"
  fi
  # As upstream's image: the distroless nonroot user, allowed to bind port 53.
  binary_image coredns "${COREDNS_VERSION}" "${dir}/coredns" /coredns 65532:65532 \
    --net-bind-service
  say "coredns: $((SECONDS - start)) s, archive $(mib "${archive}")"
}

# A one-layer image of one static binary, named by a key of that binary; sets `archive`.
binary_image() { # name tag binary target user [oci-archive flags...]
  local name=$1 tag=$2 binary=$3 target=$4 user=$5 key ref
  shift 5
  key="$(images files-key "${binary}" --extra "${tag}")"
  ref="docker.io/tenfold/${name}:${tag}"
  archive="${out}/${name}-${tag}-${key}.oci.tar"
  if [[ ! -f ${archive} ]]; then
    images oci-archive --ref "${ref}" --out "${archive}" --file "${binary}:${target}" \
      --entrypoint "${target}" --user "${user}" "$@"
    prune "${name}-${tag}" "${archive}"
  fi
  results+=("IMAGE ${ref} ${archive}")
}

# A binary that hack/testbed/build.sh keeps in the cache; that script builds it when it is
# missing (and waits for a build already running).
testbed_binary() { # path under bin/
  if [[ ! -x ${cache}/bin/$1 ]]; then
    say "${cache}/bin/$1 missing: running hack/testbed/build.sh"
    bash "${repo}/hack/testbed/build.sh" >&2
  fi
  echo "${cache}/bin/$1"
}

# The Prometheus the test bed builds (Kubernetes discovery only), for the Prometheus pods
# prometheus-operator makes; tagged with its release (module v0.316.0 is v3.16.0). Upstream's
# image runs /bin/prometheus as nobody; the operator passes every path as an argument.
build_prometheus() {
  local start=${SECONDS} release="${PROMETHEUS_MODULE_VERSION#v0.}" binary
  release="v${release:0:1}.${release:1}"
  binary="$(testbed_binary "prometheus-${PROMETHEUS_MODULE_VERSION}/prometheus")"
  binary_image prometheus "${release}" "${binary}" /bin/prometheus 65534:65534
  say "prometheus: $((SECONDS - start)) s, archive $(mib "${archive}")"
}

# prometheus-operator's config reloader, the sidecar and init container of those pods.
build_config_reloader() {
  local start=${SECONDS} binary
  binary="prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}/prometheus-config-reloader"
  binary="$(testbed_binary "${binary}")"
  binary_image prometheus-config-reloader "${PROMETHEUS_OPERATOR_VERSION}" "${binary}" \
    /bin/prometheus-config-reloader 65534:65534
  say "prometheus-config-reloader: $((SECONDS - start)) s, archive $(mib "${archive}")"
}

# Debian's redis-server alone (the operator-managed cache Redis): no Dockerfile, since it
# is nothing but one package on a minimal rootfs; the pod sets its user and arguments.
build_redis() {
  local start=${SECONDS} ref archive
  debian_rootfs "${REDIS_PACKAGES}"
  ref="docker.io/tenfold/redis:${DEBIAN_SUITE}"
  archive="${out}/redis-${DEBIAN_SUITE}-${rootfs_key}.docker.tar"
  if [[ ! -f ${archive} ]]; then
    image_of_rootfs "${rootfs_tar}" "${ref}" redis-server
    bah push --quiet --disable-compression "${ref}" "docker-archive:${archive}.partial:${ref}"
    mv "${archive}.partial" "${archive}"
    prune "redis-${DEBIAN_SUITE}" "${archive}"
  fi
  say "redis: $((SECONDS - start)) s, archive $(mib "${archive}")"
  results+=("IMAGE ${ref} ${archive}")
}

for target in "${targets[@]}"; do
  case "${target}" in
    base) ensure_base ;;
    operator) build_dockerfile operator Dockerfile.operator ;;
    runtime-cpu) build_dockerfile runtime-cpu Dockerfile.runtime-cpu ;;
    pause) build_pause ;;
    coredns) build_coredns ;;
    redis) build_redis ;;
    prometheus) build_prometheus ;;
    prometheus-config-reloader) build_config_reloader ;;
    *) say "unknown image ${target}"; exit 2 ;;
  esac
done
[[ ${#results[@]} -eq 0 ]] || printf '%s\n' "${results[@]}"
