#!/usr/bin/env bash
# Prove that the images of build.sh run, without Kubernetes: a throwaway containerd of its
# own (root, state and socket under one temporary folder), `ctr images import` of each
# archive into the k8s.io namespace, then each image run the way the node runs it.
#
#   export PATH=~/.cache/tenfold/venv-py311/bin:$PATH   # tenfold (renders the pod) on PATH
#   bash hack/images/smoke.sh                           # builds first when not cached
#
# runtime-cpu runs the pod of examples/minilm-cpu.yaml as `tenfold render` writes it: the
# init container `tenfold-runtime prepare` (its spec from `tenfold prepare-spec`), then
# tritonserver with the rendered command and the cache sidecar, as UID 1000 on a read-only
# root filesystem, in a network namespace of its own; /v2/health/ready and one inference
# answer through the sidecar. Everything it made (containerd, mounts, netns) is removed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
mapfile -t lines < <(bash "${here}/build.sh" "$@" | grep '^IMAGE ')

work="$(mktemp -d /tmp/tenfold-imgtest.XXXXXX)"
sock="${work}/containerd.sock"
netns="tenfold-imgtest-$$"
cpid=""
c() { ctr -a "${sock}" -n k8s.io "$@"; }
say() { echo "smoke: $*" >&2; }

cleanup() {
  set +e
  if [[ -n ${cpid} ]]; then
    for task in $(c task ls -q 2>/dev/null); do c task kill -s SIGKILL "${task}"; done
    sleep 1
    for task in $(c task ls -q 2>/dev/null); do c task delete "${task}" >/dev/null; done
    for ctr_id in $(c containers ls -q 2>/dev/null); do c containers rm "${ctr_id}"; done
    kill "${cpid}" && wait "${cpid}"
  fi
  ip netns del "${netns}" 2>/dev/null
  awk -v w="${work}" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "${work}"
}
trap cleanup EXIT
trap 'say "failed at line ${LINENO}: ${BASH_COMMAND}"' ERR

cat > "${work}/config.toml" <<TOML
version = 2
root = "${work}/root"
state = "${work}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${sock}"
TOML
containerd --config "${work}/config.toml" >"${work}/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 50); do c version >/dev/null 2>&1 && break; sleep 0.2; done

declare -A ref_of
for line in "${lines[@]}"; do
  read -r _ ref archive <<<"${line}"
  name="${ref#docker.io/tenfold/}"
  name="${name%%:*}"
  ref_of[${name}]="${ref}"
  start=${SECONDS}
  before="$(du -sm "${work}/root" | cut -f1)"
  c images import "${archive}" >/dev/null
  after="$(du -sm "${work}/root" | cut -f1)"
  say "${ref}: imported in $((SECONDS - start)) s, $((after - before)) MiB in containerd's root (content + unpacked)"
done
c images ls -q >&2

if [[ -n ${ref_of[operator]:-} ]]; then
  c run --rm --read-only "${ref_of[operator]}" op-help tenfold --help >/dev/null
  # As the image's numeric USER, and without torch: the [runtime] extra stays out.
  c run --rm --read-only "${ref_of[operator]}" op-light python -c '
import importlib.util as u, os, sys
import tenfold.cli
sys.exit(os.getuid() != 10001 or u.find_spec("torch") is not None)'
  say "operator: tenfold --help, UID 10001, no torch: ok"
fi

if [[ -n ${ref_of[pause]:-} ]]; then
  (sleep 2 && c task kill -s SIGTERM pause-term) &
  c run --rm --read-only "${ref_of[pause]}" pause-term
  say "pause: ran until SIGTERM, exit 0: ok"
fi

if [[ -n ${ref_of[coredns]:-} ]]; then
  c run --rm --read-only "${ref_of[coredns]}" dns-version /coredns -version
  # As its non-root user, binding port 53 (file capability cap_net_bind_service).
  (sleep 3 && c task kill -s SIGTERM dns-serve) &
  c run --rm --read-only "${ref_of[coredns]}" dns-serve /coredns -dns.port=53 | tee "${work}/dns.log"
  grep -q "CoreDNS-" "${work}/dns.log"
  say "coredns: -version and serving :53 as 65532: ok"
fi

if [[ -n ${ref_of[runtime-cpu]:-} ]]; then
  img="${ref_of[runtime-cpu]}"
  # The image's USER is 1000:1000 (ctr 1.6 run has no --user; the pod sets the same).
  as_pod=(--read-only --env HOME=/tmp --env HF_HUB_OFFLINE=1)
  c run --rm "${as_pod[@]}" "${img}" rt-import python -c \
    'import os, torch, tenfold_runtime, transformers; print("uid", os.getuid(), "torch", torch.__version__)'
  c run --rm "${as_pod[@]}" "${img}" rt-help tenfold-runtime --help >/dev/null
  # tritonserver --help prints its usage and exits 1.
  c run --rm "${as_pod[@]}" "${img}" rt-triton-help tritonserver --help >"${work}/help.txt" 2>&1 || true
  grep -q -- --model-repository "${work}/help.txt"
  say "runtime-cpu: imports, tenfold-runtime --help, tritonserver --help: ok"

  # The pod of examples/minilm-cpu.yaml: its volumes, commands and port, as rendered.
  mkdir -p "${work}/config" "${work}/models" "${work}/tmp"
  chown 1000:1000 "${work}/models" && chmod 1777 "${work}/tmp"
  tenfold prepare-spec -f "${repo}/examples/minilm-cpu.yaml" >"${work}/config/prepare.json"
  tenfold render -f "${repo}/examples/minilm-cpu.yaml" >"${work}/render.yaml"
  commands="$(python -c '
import shlex, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "Deployment":
        spec = doc["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            print(c["name"], shlex.join(c["command"] + c.get("args", [])))
' "${work}/render.yaml")"
  command_of() { awk -v n="$1" '$1 == n {sub(/^[^ ]+ /, ""); print}' <<<"${commands}"; }
  mounts=(--mount "type=bind,src=${work}/tmp,dst=/tmp,options=rbind:rw")
  ip netns add "${netns}" && ip -n "${netns}" link set lo up
  in_pod=(--with-ns "network:/var/run/netns/${netns}")

  start=${SECONDS}
  eval "prepare=($(command_of prepare))"
  c run --rm "${as_pod[@]}" "${mounts[@]}" \
    --mount "type=bind,src=${work}/config,dst=/etc/tenfold,options=rbind:ro" \
    --mount "type=bind,src=${work}/models,dst=/models,options=rbind:rw" \
    "${img}" rt-prepare "${prepare[@]}" >"${work}/prepare.log" 2>&1 || {
    tail -30 "${work}/prepare.log" >&2
    exit 1
  }
  say "runtime-cpu: init container (${prepare[*]}) in $((SECONDS - start)) s"
  tail -3 "${work}/prepare.log" >&2

  ro_models=(--mount "type=bind,src=${work}/models,dst=/models,options=rbind:ro")
  eval "triton=($(command_of triton))"
  eval "sidecar=($(command_of cache))"
  start=${SECONDS}
  c run -d "${as_pod[@]}" "${mounts[@]}" "${ro_models[@]}" "${in_pod[@]}" "${img}" rt-triton \
    "${triton[@]}" >/dev/null
  c run -d "${as_pod[@]}" "${mounts[@]}" "${ro_models[@]}" "${in_pod[@]}" "${img}" rt-cache \
    "${sidecar[@]}" >/dev/null
  ready=""
  for _ in $(seq 240); do
    if ip netns exec "${netns}" python3 -c '
import urllib.request
urllib.request.urlopen("http://127.0.0.1:8000/v2/health/ready", timeout=2)
urllib.request.urlopen("http://127.0.0.1:8080/readyz", timeout=2)' 2>/dev/null; then
      ready=yes
      break
    fi
    sleep 0.5
  done
  [[ -n ${ready} ]] || { say "tritonserver or the sidecar never became ready"; exit 1; }
  say "runtime-cpu: tritonserver (${triton[*]}) ready in $((SECONDS - start)) s"
  ip netns exec "${netns}" python3 -c '
import json, urllib.request
body = {"inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": ["a red fox"]}]}
for attempt in ("miss", "hit"):
    request = urllib.request.Request("http://127.0.0.1:8080/v2/models/minilm/infer",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        out = json.load(response)["outputs"][0]
        print(attempt, out["name"], out["shape"], dict(response.headers).get("X-Tenfold-Cache", ""))
    assert out["shape"] == [1, 384], out["shape"]
'
  c task kill -s SIGTERM rt-triton
  say "runtime-cpu: /v2/health/ready and an inference through the sidecar: ok"
fi
say "all ok"
