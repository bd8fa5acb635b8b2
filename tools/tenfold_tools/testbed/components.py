"""Command lines of the control-plane processes (pure: no files written, nothing run)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

from tenfold_tools.testbed.layout import Binaries, StateDir
from tenfold_tools.testbed.nodes import KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE

SERVICE_CIDR: Final = "10.96.0.0/16"
# The first address of SERVICE_CIDR: the ClusterIP of the default/kubernetes Service.
KUBERNETES_SERVICE_IP: Final = "10.96.0.1"
SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
# Added to the default set. PodSecurity is on by default since 1.25; naming it makes the
# tests' dependency explicit. NodeRestriction pairs with the Node authorizer, as kubeadm does.
ADMISSION_PLUGINS: Final = "PodSecurity,NodeRestriction"
AUTHORIZATION_MODES: Final = "Node,RBAC"
# A test bed never holds much data; a small quota keeps a runaway test from filling disk.
ETCD_QUOTA_BYTES: Final = 512 * 1024 * 1024
# Node leases renewed by KWOK: without them the node-lifecycle controller marks the fake
# nodes NotReady after its grace period and taints them.
NODE_LEASE_SECONDS: Final = 40
KWOK_NODE_SELECTOR: Final = f"{KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}"
FRONT_PROXY_CLIENT: Final = "front-proxy-client"


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one test bed, picked free at `up`."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    def as_dict(self) -> dict[str, int]:
        """The ports by name, for the state file."""
        return asdict(self)


def etcd_args(binaries: Binaries, state: StateDir, ports: Ports) -> list[str]:
    """etcd: one member on loopback, no fsync (the data is thrown away at `down`)."""
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(binaries.etcd),
        "--name=testbed",
        f"--data-dir={state.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=testbed={peer}",
        f"--quota-backend-bytes={ETCD_QUOTA_BYTES}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_args(
    binaries: Binaries, state: StateDir, ports: Ports, address: str = "127.0.0.1"
) -> list[str]:
    """kube-apiserver: TLS on `address`, client-certificate auth, Node+RBAC authorization.

    On loopback (no real node) the default/kubernetes Service gets no endpoints, since
    Endpoints may not hold loopback addresses; with a real node the apiserver listens on the
    host's end of the node's link, advertises it, and reaches the kubelet by InternalIP
    (node names resolve nowhere here) for logs, exec and port-forward.
    """
    pki = state.pki
    args = [
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        f"--bind-address={address}",
        f"--advertise-address={address}",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'service-account.pub'}",
        f"--service-account-signing-key-file={pki / 'service-account.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--authorization-mode={AUTHORIZATION_MODES}",
        f"--enable-admission-plugins={ADMISSION_PLUGINS}",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        # Privileged pods must reach admission, so that PodSecurity is what refuses them.
        "--allow-privileged=true",
        "--profiling=false",
        "--event-ttl=1h",
    ]
    if address == "127.0.0.1":
        return [*args, "--endpoint-reconciler-type=none"]
    return [
        *args,
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def controller_manager_args(binaries: Binaries, state: StateDir, ports: Ports) -> list[str]:
    """kube-controller-manager: every default controller, signing with the test bed's CA."""
    pki = state.pki
    kubeconfig = state.component_kubeconfig("kube-controller-manager")
    return [
        str(binaries.kube_controller_manager),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        "--leader-elect=false",
        "--controllers=*",
        # Each controller acts as its own service account, as in a real cluster, so RBAC
        # mistakes in bootstrap roles would show up here too.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'service-account.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # These make `up` seconds faster: at the default 20 requests/s the controllers start
        # one by one (each fetches its service-account token); new nodes keep their
        # not-ready taint until the node-lifecycle controller's next pass (default 5s).
        "--kube-api-qps=100",
        "--kube-api-burst=200",
        "--node-monitor-period=1s",
        "--profiling=false",
    ]


def scheduler_args(binaries: Binaries, state: StateDir, ports: Ports) -> list[str]:
    """kube-scheduler: the default profile, so pods land where a real cluster puts them."""
    kubeconfig = state.component_kubeconfig("kube-scheduler")
    return [
        str(binaries.kube_scheduler),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok_args(binaries: Binaries, state: StateDir, ports: Ports) -> list[str]:
    """kwok: keeps the annotated fake nodes Ready and runs their pods' lifecycles."""
    return [
        str(binaries.kwok),
        f"--kubeconfig={state.component_kubeconfig('kwok')}",
        f"--config={state.root / 'kwok.yaml'}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_SELECTOR}",
        f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
        f"--server-address=127.0.0.1:{ports.kwok}",
    ]
