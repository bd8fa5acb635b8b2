"""Where the test bed's pieces live: pinned versions, cached binaries, one state folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[3]
TESTBED_HACK: Final = REPO_ROOT / "hack" / "testbed"
VERSIONS_FILE: Final = TESTBED_HACK / "versions.env"
BUILD_SCRIPT: Final = TESTBED_HACK / "build.sh"
DEFAULT_NAME: Final = "default"


class TestbedError(RuntimeError):
    """The test bed could not be built, started, reached or stopped."""

    __test__ = False  # not a pytest test class despite its name


@dataclass(frozen=True)
class Versions:
    """Pinned component versions, as written in hack/testbed/versions.env."""

    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    crictl: str
    prometheus: str
    # A default, so the state files of test beds started before it was pinned still load.
    prometheus_operator: str = ""


def load_versions(path: Path = VERSIONS_FILE) -> Versions:
    """Parse the KEY=value lines of versions.env (the same file build.sh sources)."""
    if not path.is_file():
        raise TestbedError(f"{path} not found: the test bed runs from a tenfold checkout")
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return Versions(
        kubernetes=values["K8S_VERSION"],
        etcd=values["ETCD_VERSION"],
        kwok=values["KWOK_VERSION"],
        helm=values["HELM_VERSION"],
        crictl=values["CRICTL_VERSION"],
        prometheus=values["PROMETHEUS_MODULE_VERSION"],
        prometheus_operator=values["PROMETHEUS_OPERATOR_VERSION"],
    )


def cache_root() -> Path:
    """The cache folder shared with build.sh and hack/python-env.sh."""
    return Path(os.environ.get("TENFOLD_CACHE", Path.home() / ".cache" / "tenfold"))


@dataclass(frozen=True)
class Binaries:
    """Paths of the cached binaries of one set of pinned versions."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    kwok_stages: Path
    helm: Path
    kubelet: Path
    kube_proxy: Path
    crictl: Path
    prometheus: Path
    prometheus_operator: Path
    prometheus_config_reloader: Path
    prometheus_operator_crds: Path

    @classmethod
    def for_versions(cls, versions: Versions, root: Path | None = None) -> Binaries:
        """Locate the binaries build.sh writes to <cache>/bin/<name>-<version>/."""
        bin_dir = (root or cache_root()) / "bin"
        k8s = bin_dir / f"kubernetes-{versions.kubernetes}"
        kwok = bin_dir / f"kwok-{versions.kwok}"
        operator = bin_dir / f"prometheus-operator-{versions.prometheus_operator}"
        return cls(
            kube_apiserver=k8s / "kube-apiserver",
            kube_controller_manager=k8s / "kube-controller-manager",
            kube_scheduler=k8s / "kube-scheduler",
            kubectl=k8s / "kubectl",
            etcd=bin_dir / f"etcd-{versions.etcd}" / "etcd",
            kwok=kwok / "kwok",
            kwok_stages=kwok / "stages",
            helm=bin_dir / f"helm-{versions.helm}" / "helm",
            kubelet=bin_dir / f"kubernetes-node-{versions.kubernetes}" / "kubelet",
            kube_proxy=bin_dir / f"kubernetes-node-{versions.kubernetes}" / "kube-proxy",
            crictl=bin_dir / f"crictl-{versions.crictl}" / "crictl",
            prometheus=bin_dir / f"prometheus-{versions.prometheus}" / "prometheus",
            prometheus_operator=operator / "prometheus-operator",
            prometheus_config_reloader=operator / "prometheus-config-reloader",
            prometheus_operator_crds=operator / "crds",
        )

    def path_dirs(self) -> list[Path]:
        """Folders to put first on PATH so kubectl and helm resolve to the pinned ones."""
        return [self.kubectl.parent, self.helm.parent, self.crictl.parent]


@dataclass(frozen=True)
class StateDir:
    """Files of one running test bed; `down` removes the whole folder."""

    root: Path

    @classmethod
    def named(cls, name: str = DEFAULT_NAME) -> StateDir:
        """The state folder of the test bed called `name`."""
        return cls(cache_root() / "testbed" / name)

    @property
    def pki(self) -> Path:
        """Certificates and keys."""
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        """One log file per process."""
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        """etcd's data folder."""
        return self.root / "etcd"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in system:masters)."""
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        """JSON record of pids, ports and versions, written while `up` runs."""
        return self.root / "state.json"

    def component_kubeconfig(self, component: str) -> Path:
        """Kubeconfig of one control-plane component, with its own identity."""
        return self.root / f"{component}.kubeconfig"
