#!/usr/bin/env bash
# Installs the Debian packages the e2e layer runs for real: Redis and Prometheus; the test
# bed's real node (containerd, runc, CNI plugins, iptables, conntrack); and the image tools
# (mmdebstrap for a base made of Debian packages, buildah to build the Dockerfiles).
# Idempotent and quiet when everything is present; a fresh machine runs apt-get once.
set -euo pipefail
packages=(redis-server prometheus containerd runc containernetworking-plugins iptables conntrack
    iproute2 openssl mmdebstrap buildah)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "tenfold: installing Debian packages: ${missing[*]}" >&2
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >&2
    # The packages' own services are not used: tests start their own processes (policy-rc.d
    # keeps Debian from starting redis, prometheus or containerd as system services).
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
fi
