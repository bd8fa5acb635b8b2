#!/usr/bin/env bash
# Build the test bed's binaries (Kubernetes control plane and node, kubectl, crictl, etcd,
# KWOK, Helm, Prometheus, prometheus-operator) from Go modules into
# ${TENFOLD_CACHE:-~/.cache/tenfold}/bin/<name>-<version>/.
#
# A component whose folder already holds every binary is reused, so a second run is a
# no-op that only prints versions. Builds go to a temporary folder that is renamed into
# place at the end: an interrupted build never leaves a half-filled folder to reuse.
# Usage: bash hack/testbed/build.sh        (prints one line per component)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"
cache="${TENFOLD_CACHE:-${HOME}/.cache/tenfold}"
bin="${cache}/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0

# Upstream's release flags: static binaries, no local paths, no test-only code.
go_flags=(-trimpath -tags=selinux,notest)

# kube_ldflags prints the -X flags that give client-go and component-base the release's
# version; without them servers report v0.0.0 and Helm's kubeVersion checks misbehave.
kube_ldflags() {
  local minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local flags="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  echo "${flags}"
}

# require_pinned fails when a wrapper go.mod was not regenerated after a versions.env bump.
require_pinned() {
  local gomod="$1" module="$2" version="$3"
  if ! grep -Eq "^[[:space:]]*(require )?${module} ${version}( |$)" "${gomod}"; then
    echo "${gomod} does not pin ${module} ${version}; run: bash hack/testbed/pin.sh" >&2
    exit 1
  fi
}

build_kubernetes() {
  local out="$1"
  require_pinned "${here}/k8s/go.mod" k8s.io/kubernetes "${K8S_VERSION}"
  # One invocation for all four commands: shared packages are compiled once.
  (cd "${here}/k8s" && go build "${go_flags[@]}" -ldflags "$(kube_ldflags)" -o "${out}/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl)
}

# The node's side of the same release: the kubelet and kube-proxy of the real node.
build_kubernetes_node() {
  local out="$1"
  require_pinned "${here}/k8s/go.mod" k8s.io/kubernetes "${K8S_VERSION}"
  (cd "${here}/k8s" && go build "${go_flags[@]}" -ldflags "$(kube_ldflags)" -o "${out}/" \
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy)
}

# crictl talks CRI to the node's containerd: `down` removes pods through it, so CNI
# releases their addresses, and it is the usual tool to look inside a node.
build_crictl() {
  GOBIN="$1" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
}

# Prometheus with Kubernetes service discovery, which Debian's build leaves out. Only that
# discovery mechanism is compiled in (upstream's build tags), which halves the build.
build_prometheus() {
  GOBIN="$1" go install -trimpath -tags=remove_all_sd,enable_kubernetes_sd -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/prometheus@${PROMETHEUS_MODULE_VERSION}"
}

# prometheus-operator and its config reloader (one `go build` from the wrapper module, as
# upstream's Makefile sets the version), and the module's CRDs next to them, so a test can
# install them without Go. The operator runs on the host; the reloader goes into an image.
build_prometheus_operator() {
  local out="$1" module=github.com/prometheus-operator/prometheus-operator crds
  require_pinned "${here}/prometheus-operator/go.mod" "${module}" "${PROMETHEUS_OPERATOR_VERSION}"
  (cd "${here}/prometheus-operator" && go build -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_OPERATOR_VERSION#v}" \
    -o "${out}/" "${module}/cmd/operator" "${module}/cmd/prometheus-config-reloader")
  mv "${out}/operator" "${out}/prometheus-operator"
  crds="$(module_file "${module}@${PROMETHEUS_OPERATOR_VERSION}" Dir)/example/prometheus-operator-crd"
  mkdir -p "${out}/crds"
  cp "${crds}"/*.yaml "${out}/crds/"
}

build_etcd() {
  local out="$1"
  require_pinned "${here}/etcd/go.mod" go.etcd.io/etcd/server/v3 "${ETCD_VERSION}"
  (cd "${here}/etcd" && go build -trimpath -ldflags "-s -w" -o "${out}/etcd" .)
}

# module_file MODULE@VERSION FIELD prints a path (Dir or GoMod) of a downloaded module.
module_file() {
  go mod download -json "$1" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\$/\1/p"
}

build_kwok() {
  local out="$1" stages
  GOBIN="${out}" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  # KWOK >= 0.6 does nothing without Stage objects. Keep upstream's default "fast" stages
  # (the set kwokctl uses) next to the binary, so starting the test bed needs no Go.
  stages="$(module_file "sigs.k8s.io/kwok@${KWOK_VERSION}" Dir)/kustomize/stage"
  mkdir -p "${out}/stages"
  cp "${stages}/node/fast/node-initialize.yaml" \
    "${stages}/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
    "${stages}/pod/fast/pod-ready.yaml" \
    "${stages}/pod/fast/pod-complete.yaml" \
    "${stages}/pod/fast/pod-delete.yaml" \
    "${out}/stages/"
}

build_helm() {
  local gomod client_go major minor
  gomod="$(module_file "helm.sh/helm/v3@${HELM_VERSION}" GoMod)"
  # Helm's Makefile derives its default .Capabilities.KubeVersion from client-go v0.Y.
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2 }' "${gomod}")"
  major=1
  minor="$(echo "${client_go}" | cut -d. -f2)"
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X ${pkg}.k8sVersionMajor=${major} -X ${pkg}.k8sVersionMinor=${minor}"
  done
  GOBIN="$1" go install -trimpath -ldflags "${flags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
}

# ensure NAME VERSION BUILD_FUNC FILE... builds the component unless already cached.
ensure() {
  local name="$1" version="$2" build="$3"
  shift 3
  local dir="${bin}/${name}-${version}" missing=0 b
  for b in "$@"; do
    [[ -s "${dir}/${b}" ]] || missing=1
  done
  if ((missing)); then
    local tmp start
    tmp="$(mktemp -d "${bin}/.${name}-${version}.XXXXXX")"
    start=${SECONDS}
    echo "building ${name} ${version} ..."
    "${build}" "${tmp}"
    rm -rf "${dir}"
    mv "${tmp}" "${dir}"
    echo "built ${name} ${version} in $((SECONDS - start))s"
  fi
}

main() {
  mkdir -p "${bin}"
  # Several callers (pytest, the demo) may start at once; one builds, the others wait.
  exec 9>"${bin}/.build.lock"
  flock 9
  local start=${SECONDS}
  ensure kubernetes "${K8S_VERSION}" build_kubernetes \
    kube-apiserver kube-controller-manager kube-scheduler kubectl
  ensure kubernetes-node "${K8S_VERSION}" build_kubernetes_node kubelet kube-proxy
  ensure crictl "${CRICTL_VERSION}" build_crictl crictl
  ensure etcd "${ETCD_VERSION}" build_etcd etcd
  ensure prometheus "${PROMETHEUS_MODULE_VERSION}" build_prometheus prometheus
  ensure prometheus-operator "${PROMETHEUS_OPERATOR_VERSION}" build_prometheus_operator \
    prometheus-operator prometheus-config-reloader crds/monitoring.coreos.com_servicemonitors.yaml
  ensure kwok "${KWOK_VERSION}" build_kwok kwok stages/pod-ready.yaml
  ensure helm "${HELM_VERSION}" build_helm helm

  local k8s="${bin}/kubernetes-${K8S_VERSION}"
  echo "kube-apiserver          $("${k8s}/kube-apiserver" --version)"
  echo "kube-controller-manager $("${k8s}/kube-controller-manager" --version)"
  echo "kube-scheduler          $("${k8s}/kube-scheduler" --version)"
  echo "kubectl                 $("${k8s}/kubectl" version --client | head -1)"
  echo "kubelet                 $("${bin}/kubernetes-node-${K8S_VERSION}/kubelet" --version)"
  echo "kube-proxy              $("${bin}/kubernetes-node-${K8S_VERSION}/kube-proxy" --version)"
  echo "crictl                  $("${bin}/crictl-${CRICTL_VERSION}/crictl" --version)"
  echo "prometheus              $("${bin}/prometheus-${PROMETHEUS_MODULE_VERSION}/prometheus" --version 2>&1 | head -1)"
  local po="${bin}/prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}"
  echo "prometheus-operator     $("${po}/prometheus-operator" --version 2>&1 | head -1)"
  echo "config-reloader         $("${po}/prometheus-config-reloader" --version 2>&1 | head -1)"
  echo "etcd                    $("${bin}/etcd-${ETCD_VERSION}/etcd" --version | head -1)"
  echo "kwok                    $("${bin}/kwok-${KWOK_VERSION}/kwok" --version)"
  echo "helm                    $("${bin}/helm-${HELM_VERSION}/helm" version --short)"
  echo "binaries in ${bin} (${SECONDS}s total, $((SECONDS - start))s after lock)"
}

main "$@"
