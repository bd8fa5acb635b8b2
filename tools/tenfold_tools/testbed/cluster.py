"""Start, inspect and stop the local control plane: etcd, apiserver, controller-manager,
scheduler and KWOK, with fake GPU nodes."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import yaml

from tenfold_tools.testbed import components, health, pki, procs, realnode
from tenfold_tools.testbed.layout import (
    BUILD_SCRIPT,
    DEFAULT_NAME,
    Binaries,
    StateDir,
    TestbedError,
    Versions,
    load_versions,
)
from tenfold_tools.testbed.node import (
    REAL_NODE_NAME,
    NodeNetwork,
    coredns_objects,
    local_storage_objects,
)
from tenfold_tools.testbed.nodes import TESTBED_LABEL, build_nodes, load_pools

# Start order; `down` stops them the other way round, so etcd outlives the apiserver.
COMPONENTS: Final = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# Proof that a kubeconfig reaches this test bed and no other cluster: a token written to
# the state file and into this ConfigMap at `up`.
MARKER_NAMESPACE: Final = "kube-public"
MARKER_NAME: Final = "tenfold-testbed"
START_TIMEOUT: Final = 120.0
# The KWOK pool the real node replaces (nodes.yaml): its pods run for real.
REAL_POOL: Final = "cpu"
Log = Callable[[str], None]


class Kubectl(Protocol):
    """A kubectl runner bound to one kubeconfig, such as Testbed.kubectl."""

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl with args; raise TestbedError with its stderr if check and it fails."""
        ...


def wait_established(kubectl: Kubectl, *selector: str, timeout: float = 60.0) -> None:
    """Wait until the CRDs `selector` names (`crd/NAME` ..., or `-f PATH`) are Established.

    Not `kubectl wait --for=condition=Established`: on a CRD created a moment before, whose
    status is still empty, it fails at once ("<nil> is of the type <nil>") instead of waiting.
    """

    def established() -> bool:
        found = kubectl("get", *selector, "-o", "json", check=False)
        if found.returncode != 0:
            return False
        data = json.loads(found.stdout)
        items = data.get("items", [data]) if data.get("kind") == "List" else [data]
        return bool(items) and all(
            any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in (item.get("status") or {}).get("conditions") or []
            )
            for item in items
        )

    health.wait_until(established, f"{' '.join(selector)} to be Established", timeout=timeout)


class Timings:
    """Wall time of each phase of `up`, printed so slow starts can be pinned down."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body of a with-block under name."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - start

    def __str__(self) -> str:
        return ", ".join(f"{name} {secs:.1f}s" for name, secs in self.seconds.items())


@dataclass(frozen=True)
class Testbed:
    """A running test bed: where its files are and how to reach it."""

    __test__ = False  # not a pytest test class despite its name

    name: str
    state: StateDir
    versions: Versions
    binaries: Binaries
    server: str
    token: str

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig."""
        return self.state.kubeconfig

    @property
    def cluster_name(self) -> str:
        """Cluster and context name inside the kubeconfig."""
        return cluster_name(self.name)

    def env(self) -> dict[str, str]:
        """Variables that point kubectl, helm and kubernetes clients at this test bed."""
        path = os.pathsep.join(str(d) for d in self.binaries.path_dirs())
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{path}{os.pathsep}{os.environ.get('PATH', '')}",
            "TENFOLD_TESTBED_STATE": str(self.state.root),
        }

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this test bed; raise with stderr if check fails."""
        return run_kubectl(
            self.binaries.kubectl, self.kubeconfig, *args, input=input, check=check, timeout=timeout
        )


def run_kubectl(
    kubectl: Path,
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl with an explicit --kubeconfig, so $KUBECONFIG can never redirect it."""
    argv = [str(kubectl), f"--kubeconfig={kubeconfig}", *args]
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise TestbedError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def cluster_name(name: str) -> str:
    """The kubeconfig cluster/context name of the test bed called name."""
    return f"tenfold-testbed-{name}"


def ensure_built(versions: Versions, log: Log = print) -> Binaries:
    """Run hack/testbed/build.sh unless every pinned binary is already cached."""
    binaries = Binaries.for_versions(versions)
    wanted = [binaries.kube_apiserver, binaries.kubectl, binaries.etcd, binaries.kwok,
              binaries.kwok_stages, binaries.helm, binaries.kube_controller_manager,
              binaries.kube_scheduler, binaries.kubelet, binaries.kube_proxy,
              binaries.crictl, binaries.prometheus, binaries.prometheus_operator,
              binaries.prometheus_config_reloader, binaries.prometheus_operator_crds]  # fmt: skip
    if not all(p.exists() for p in wanted):
        log(f"building the test bed's binaries ({BUILD_SCRIPT}); the first build takes long")
        if subprocess.run(["bash", str(BUILD_SCRIPT)]).returncode != 0:
            raise TestbedError(f"{BUILD_SCRIPT} failed")
    return binaries


# --- state file --------------------------------------------------------------------------


def _read_state(state: StateDir) -> dict[str, Any] | None:
    """The recorded state of a test bed, or None when there is none."""
    try:
        data: dict[str, Any] = json.loads(state.state_file.read_text())
    except FileNotFoundError:
        return None
    return data


def _write_state(state: StateDir, data: dict[str, Any]) -> None:
    """Record state atomically, so `down` can always read what `up` started."""
    tmp = state.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(state.state_file)


def _pids(data: dict[str, Any]) -> dict[str, int]:
    """Recorded pids by component."""
    return {k: int(v) for k, v in data.get("pids", {}).items()}


# --- certificates and kubeconfigs --------------------------------------------------------


def _b64(path: Path) -> str:
    """A file's bytes in base64, as kubeconfig *-data fields want them."""
    return base64.b64encode(path.read_bytes()).decode()


def build_kubeconfig(name: str, server: str, ca: Path, client: pki.CertPair) -> dict[str, Any]:
    """A kubeconfig with the CA and client certificate embedded (it stands alone)."""
    cluster = cluster_name(name)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [
            {
                "name": cluster,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "current-context": cluster,
    }


def _write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    """Write a kubeconfig readable by its owner only (it holds a private key)."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


# Identities: (kubeconfig owner, certificate CN, O). The controller-manager and scheduler
# use the users the bootstrap RBAC policy grants; KWOK writes node and pod status of any
# node, so it is an admin like in kwokctl clusters.
IDENTITIES: Final = (
    ("admin", "tenfold-testbed-admin", "system:masters"),
    ("kube-controller-manager", "system:kube-controller-manager", None),
    ("kube-scheduler", "system:kube-scheduler", None),
    ("kwok", "tenfold-testbed-kwok", "system:masters"),
)


# The real node's identities: the kubelet (Node authorizer), kube-proxy (bootstrap RBAC's
# system:node-proxier) and the apiserver's client for the kubelet API (logs, exec).
NODE_IDENTITIES: Final = (
    ("kubelet", f"system:node:{REAL_NODE_NAME}", "system:nodes"),
    ("kube-proxy", "system:kube-proxy", None),
)


def write_credentials(
    name: str, state: StateDir, server: str, network: NodeNetwork | None = None
) -> None:
    """Create the CA, serving and client certificates, the SA keys and the kubeconfigs."""
    state.pki.mkdir(parents=True, exist_ok=True)
    ca = pki.create_ca(state.pki, f"tenfold-testbed-{name}-ca")
    sans = ["IP:127.0.0.1", f"IP:{components.KUBERNETES_SERVICE_IP}", "DNS:localhost",
            "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local"]  # fmt: skip
    if network:
        sans.append(f"IP:{network.host_ip}")
    pki.issue_cert(ca, "apiserver", "kube-apiserver", server_sans=sans)
    # The aggregation layer's own CA, as kubeadm does: the controller-manager and
    # scheduler read it to authenticate proxied requests, and aggregated APIs need it.
    front_proxy = pki.create_ca(
        state.pki, f"tenfold-testbed-{name}-front-proxy-ca", "front-proxy-ca"
    )
    pki.issue_cert(front_proxy, "front-proxy-client", components.FRONT_PROXY_CLIENT)
    pki.create_service_account_keys(state.pki)
    identities = IDENTITIES + (NODE_IDENTITIES if network else ())
    for owner, common_name, organization in identities:
        client = pki.issue_cert(ca, owner, common_name, organization=organization)
        path = state.kubeconfig if owner == "admin" else state.component_kubeconfig(owner)
        _write_kubeconfig(path, build_kubeconfig(name, server, ca.cert, client))
    if network:
        pki.issue_cert(ca, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                       organization="system:masters")  # fmt: skip
        pki.issue_cert(ca, "kubelet-serving", f"system:node:{REAL_NODE_NAME}",
                       server_sans=[f"IP:{network.node_ip}", f"DNS:{REAL_NODE_NAME}"])  # fmt: skip


def write_kwok_config(binaries: Binaries, state: StateDir) -> None:
    """Concatenate KWOK's default stages (cached by build.sh) into its --config file."""
    stages = sorted(binaries.kwok_stages.glob("*.yaml"))
    if not stages:
        raise TestbedError(f"no KWOK stages in {binaries.kwok_stages}: run hack/testbed/build.sh")
    docs = [p.read_text().strip() + "\n" for p in stages]
    (state.root / "kwok.yaml").write_text("---\n".join(docs))


# --- processes ---------------------------------------------------------------------------


def _log_tail(state: StateDir, component: str, lines: int = 15) -> str:
    """The last lines of a component's log, to put in an error message."""
    try:
        text = (state.logs / f"{component}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _start(state: StateDir, data: dict[str, Any], component: str, argv: list[str]) -> int:
    """Spawn one component and record its pid before anything else can fail."""
    pid = procs.spawn(argv, state.logs / f"{component}.log")
    data.setdefault("pids", {})[component] = pid
    _write_state(state, data)
    return pid


def _wait_healthy(state: StateDir, component: str, pid: int, check: Callable[[], bool]) -> None:
    """Wait for a component's health check; fail at once (with its log) if it exits."""

    def exited() -> str | None:
        if procs.is_alive(pid):
            return None
        return f"{component} exited; {state.logs / component}.log ends with:\n" + _log_tail(
            state, component
        )

    health.wait_until(check, f"{component} to be healthy", timeout=START_TIMEOUT, abort=exited)


def _health_checks(
    state: StateDir, ports: components.Ports, address: str = "127.0.0.1"
) -> dict[str, Callable[[], bool]]:
    """One probe per component: etcd and KWOK over HTTP, the Kubernetes ones over TLS."""
    admin = health.client_tls(
        state.pki / "ca.crt", state.pki / "admin.crt", state.pki / "admin.key"
    )
    own = health.loopback_self_signed_tls()
    local = "127.0.0.1"
    return {
        "etcd": lambda: health.http_ok(f"http://{local}:{ports.etcd_client}/health"),
        "kube-apiserver": lambda: health.http_ok(
            f"https://{address}:{ports.apiserver}/readyz", admin
        ),
        "kube-controller-manager": lambda: health.http_ok(
            f"https://{local}:{ports.controller_manager}/healthz", own
        ),
        "kube-scheduler": lambda: health.http_ok(f"https://{local}:{ports.scheduler}/healthz", own),
        "kwok": lambda: health.http_ok(f"http://{local}:{ports.kwok}/healthz"),
    }


def start_control_plane(
    binaries: Binaries, state: StateDir, data: dict[str, Any], timings: Timings
) -> None:
    """Start etcd, then the apiserver, then the rest together; wait until each is healthy."""
    ports = components.Ports(**data["ports"])
    checks = _health_checks(state, ports, data["address"])
    argv = _control_plane_argv(binaries, state, data)
    # etcd and the apiserver must be up before their clients; the last three only need
    # the apiserver, so they start side by side.
    for phase, group in (("etcd", ["etcd"]), ("apiserver", ["kube-apiserver"]),
                         ("controllers", COMPONENTS[2:])):  # fmt: skip
        with timings.phase(phase):
            pids = {c: _start(state, data, c, argv[c]) for c in group}
            for component, pid in pids.items():
                _wait_healthy(state, component, pid, checks[component])


def _control_plane_argv(
    binaries: Binaries, state: StateDir, data: dict[str, Any]
) -> dict[str, list[str]]:
    """Each control-plane component's command line, from the test bed's recorded state."""
    ports = components.Ports(**data["ports"])
    return {
        "etcd": components.etcd_args(binaries, state, ports),
        "kube-apiserver": components.apiserver_args(binaries, state, ports, data["address"]),
        "kube-controller-manager": components.controller_manager_args(binaries, state, ports),
        "kube-scheduler": components.scheduler_args(binaries, state, ports),
        "kwok": components.kwok_args(binaries, state, ports),
    }


def stop_component(testbed: Testbed, component: str) -> None:
    """Stop one control-plane process (SIGTERM, then SIGKILL), as an outage would: for
    fault tests. `start_component` brings it back with the same flags and data."""
    data = _read_state(testbed.state) or {}
    pid = _pids(data).get(component)
    if component not in COMPONENTS or pid is None:
        raise TestbedError(f"test bed {testbed.name!r} runs no {component}")
    procs.stop([pid], str(testbed.state.root))


def start_component(testbed: Testbed, component: str) -> None:
    """Start a stopped control-plane process again and wait until it is healthy."""
    data = _read_state(testbed.state) or {}
    argv = _control_plane_argv(testbed.binaries, testbed.state, data)[component]
    pid = _start(testbed.state, data, component, argv)
    checks = _health_checks(testbed.state, components.Ports(**data["ports"]), data["address"])
    _wait_healthy(testbed.state, component, pid, checks[component])


# --- cluster contents --------------------------------------------------------------------


def _create_marker(testbed: Testbed) -> None:
    """Write the ConfigMap that lets a guard tell this test bed from any other cluster."""
    marker = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MARKER_NAME, "namespace": MARKER_NAMESPACE},
        "data": {"name": testbed.name, "token": testbed.token},
    }
    testbed.kubectl("apply", "-f", "-", input=json.dumps(marker))


def _lifecycle_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node-lifecycle controller's taints (not-ready, unreachable...) on a node."""
    taints = node["spec"].get("taints") or []
    return [t for t in taints if t["key"].startswith("node.kubernetes.io/")]


def _nodes_ready(testbed: Testbed, expected: int) -> bool:
    """Whether all expected test-bed nodes report Ready, free of lifecycle taints.

    The node-lifecycle controller taints a node not-ready until its Ready condition is
    seen; pods can only schedule once the taint is gone.
    """
    proc = testbed.kubectl("get", "nodes", "-l", f"{TESTBED_LABEL}=true", "-o", "json", check=False)
    if proc.returncode != 0:
        return False
    ready = [
        node
        for node in json.loads(proc.stdout)["items"]
        if not _lifecycle_taints(node)
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
    ]
    return len(ready) == expected


def create_nodes(testbed: Testbed, real_node: bool) -> None:
    """Create the fake nodes and wait until KWOK has made them Ready.

    With a real node, the cpu pool is that node, and KWOK plays only the GPU pools, tainted
    as GPU pools are, so that pods asking for no GPU run on the real node.
    """
    pools = [p for p in load_pools() if not (real_node and p.name == REAL_POOL)]
    nodes = build_nodes(pools, gpu_taint=real_node)
    manifest = {"apiVersion": "v1", "kind": "List", "items": nodes}
    testbed.kubectl("create", "-f", "-", input=json.dumps(manifest))
    health.wait_until(
        lambda: _nodes_ready(testbed, len(nodes)),
        f"{len(nodes)} nodes to be Ready",
        timeout=START_TIMEOUT,
        interval=0.5,
    )


def _wait_default_service_account(testbed: Testbed) -> None:
    """Wait for the controller-manager to create default/default: pods need it."""
    health.wait_until(
        lambda: testbed.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        "the default ServiceAccount",
        timeout=START_TIMEOUT,
        interval=0.5,
    )


# --- up / down / status ------------------------------------------------------------------


def _testbed(name: str, state: StateDir, data: dict[str, Any]) -> Testbed:
    """The Testbed handle described by a state record."""
    versions = Versions(**data["versions"])
    return Testbed(
        name=name,
        state=state,
        versions=versions,
        binaries=Binaries.for_versions(versions),
        server=data["server"],
        token=data["token"],
    )


def _new_state(name: str, versions: Versions, network: NodeNetwork | None) -> dict[str, Any]:
    """Fresh state: free ports, the server URL and the marker token."""
    ports = components.Ports(*(procs.free_port() for _ in range(6)))
    address = network.host_ip if network else "127.0.0.1"
    return {
        "name": name,
        "versions": asdict(versions),
        "ports": ports.as_dict(),
        "address": address,
        "server": f"https://{address}:{ports.apiserver}",
        "token": secrets.token_hex(16),
        "real_node": network is not None,
        "pids": {},
    }


def _components(data: dict[str, Any]) -> tuple[str, ...]:
    """The processes a test bed described by data runs."""
    return COMPONENTS + (realnode.NODE_COMPONENTS if data.get("real_node") else ())


def is_up(name: str = DEFAULT_NAME) -> bool:
    """Whether the named test bed's processes all run and its apiserver is ready."""
    state = StateDir.named(name)
    data = _read_state(state)
    if data is None:
        return False
    pids = _pids(data)
    marker = str(state.root)
    if set(pids) != set(_components(data)) or not all(
        procs.is_ours(p, marker) for p in pids.values()
    ):
        return False
    ports = components.Ports(**data["ports"])
    return _health_checks(state, ports, data.get("address", "127.0.0.1"))["kube-apiserver"]()


def load(name: str = DEFAULT_NAME) -> Testbed:
    """The running test bed called name; raise TestbedError when it is not up."""
    state = StateDir.named(name)
    data = _read_state(state)
    if data is None or not is_up(name):
        raise TestbedError(f"test bed {name!r} is not up: python -m tenfold_tools.testbed up")
    return _testbed(name, state, data)


def start_real_node(testbed: Testbed, data: dict[str, Any], timings: Timings, log: Log) -> None:
    """Start containerd, import the images, start the kubelet and kube-proxy, wait until
    the node is Ready, then run cluster DNS on it and offer its local volumes."""
    state, binaries = testbed.state, testbed.binaries
    dirs = realnode.NodeDirs(state)
    network = NodeNetwork(realnode.NODE_SLOT)
    argv = realnode.write_configs(dirs, network, binaries)
    realnode.make_cgroup_root()
    with timings.phase("containerd"):
        pid = _start(state, data, "containerd", argv["containerd"])
        realnode._record_owner_pid(state, pid)
        realnode.wait_containerd(dirs, pid)
    with timings.phase("images"):
        images = realnode.ensure_images(log)
        realnode.import_images(dirs, images, log)
        # What the node holds: later callers use these, not a rebuild of a changed tree.
        data["images"] = sorted(images)
    with timings.phase("kubelet"):
        pids = {c: _start(state, data, c, argv[c]) for c in ("kubelet", "kube-proxy")}

        def exited() -> str | None:
            dead = [c for c, p in pids.items() if not procs.is_alive(p)]
            return f"{dead} exited; see {state.logs}" if dead else None

        health.wait_until(lambda: realnode.node_ready(testbed.kubectl),
                          f"node {realnode.REAL_NODE_NAME} to be Ready",
                          timeout=START_TIMEOUT, interval=0.5, abort=exited)  # fmt: skip
    with timings.phase("dns"):
        coredns = realnode.image_ref(images, "coredns")
        manifest = {"apiVersion": "v1", "kind": "List", "items": coredns_objects(coredns)}
        testbed.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        testbed.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns",
                        "--timeout=120s", timeout=130)  # fmt: skip
    with timings.phase("storage"):
        volumes = local_storage_objects(realnode.make_local_volumes(dirs))
        manifest = {"apiVersion": "v1", "kind": "List", "items": volumes}
        testbed.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def up(name: str = DEFAULT_NAME, log: Log = print, *, real_node: bool = True) -> Testbed:
    """Start the test bed (building binaries first if needed) and wait until it is usable.

    real_node: the cpu pool is a real kubelet on containerd (one per machine); without it
    every node is KWOK's, as scale tests and operator-logic tests want. An already running
    test bed is reused; a broken leftover one is stopped and removed.
    """
    start = time.monotonic()
    versions = load_versions()
    binaries = ensure_built(versions, log)
    state = StateDir.named(name)
    if is_up(name):
        log(f"test bed {name!r} is already up ({state.kubeconfig})")
        return load(name)
    if state.root.exists():
        down(name, log=lambda _: None)
    network = NodeNetwork(realnode.NODE_SLOT) if real_node else None
    if network:
        realnode.require_features()
    for folder in (state.root, state.logs, state.etcd_data):
        folder.mkdir(parents=True, exist_ok=True)
    for folder in (state.root, state.etcd_data):
        folder.chmod(0o700)
    data = _new_state(name, versions, network)
    _write_state(state, data)
    timings = Timings()
    try:
        if network:
            with timings.phase("network"):
                realnode.claim(name, state)
                realnode.setup_network(network)
        with timings.phase("certs"):
            write_credentials(name, state, data["server"], network)
            write_kwok_config(binaries, state)
        start_control_plane(binaries, state, data, timings)
        testbed = _testbed(name, state, data)
        with timings.phase("nodes"):
            _create_marker(testbed)
            create_nodes(testbed, real_node)
            _wait_default_service_account(testbed)
        if network:
            start_real_node(testbed, data, timings, log)
    except BaseException:
        # Stop what started but keep the folder: its logs say what went wrong.
        if network:
            realnode.teardown(state, binaries.crictl, log=lambda _: None)
        procs.stop(list(_pids(data).values()), marker=str(state.root))
        log(f"test bed {name!r} failed to start; logs in {state.logs}")
        raise
    log(f"test bed {name!r} up in {time.monotonic() - start:.1f}s ({timings}): {data['server']}")
    log(f"export KUBECONFIG={state.kubeconfig}")
    return testbed


def down(name: str = DEFAULT_NAME, log: Log = print) -> None:
    """Stop every process of the test bed (SIGTERM, then SIGKILL) and remove its state.

    A real node goes first: its pods through the CRI, then its processes, cgroups, mounts
    and network namespace, so nothing of it outlives the test bed.
    """
    start = time.monotonic()
    state = StateDir.named(name)
    data = _read_state(state) or {}
    pids = _pids(data)
    marker = str(state.root)
    if data.get("real_node"):
        crictl = Binaries.for_versions(Versions(**data["versions"])).crictl
        realnode.teardown(state, crictl, log=lambda _: None)
    # Clients first, then the apiserver, then etcd: nobody loses its server mid-write.
    procs.stop([pids[c] for c in COMPONENTS[2:] if c in pids], marker)
    for component in ("kube-apiserver", "etcd"):
        if component in pids:
            procs.stop([pids[component]], marker)
    shutil.rmtree(state.root, ignore_errors=True)
    log(f"test bed {name!r} down in {time.monotonic() - start:.1f}s")


def status(name: str = DEFAULT_NAME) -> dict[str, Any]:
    """Per-component pid and liveness, the server URL, apiserver readiness and the images
    the real node was given at `up` (references)."""
    state = StateDir.named(name)
    data = _read_state(state)
    if data is None:
        return {"name": name, "up": False, "components": {}}
    marker = str(state.root)
    pids = _pids(data)
    return {
        "name": name,
        "up": is_up(name),
        "server": data["server"],
        "kubeconfig": str(state.kubeconfig),
        "versions": data["versions"],
        "images": data.get("images", []),
        "components": {c: {"pid": p, "running": procs.is_ours(p, marker)} for c, p in pids.items()},
    }


# --- guard -------------------------------------------------------------------------------


def _is_local(server: str) -> bool:
    """Whether a server URL names an address of this machine (loopback, or the host end of
    the real node's link, which only this machine holds)."""
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


def assert_is_testbed(testbed: Testbed, kubeconfig: Path | str) -> None:
    """Refuse any kubeconfig that does not reach this test bed and only this test bed.

    Three independent checks, so that a stray KUBECONFIG can never point destructive
    tests at a real cluster: the file lives in the test bed's state folder, its current
    cluster is the test bed's, on an address of this machine; and the cluster holds the
    marker ConfigMap with the token this test bed wrote at `up`.
    """
    path = Path(kubeconfig).resolve()
    if not path.is_relative_to(testbed.state.root.resolve()):
        raise TestbedError(f"kubeconfig {path} is not the test bed's ({testbed.state.root})")
    config = yaml.safe_load(path.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster_ref = context["context"]["cluster"]
    cluster = next(c for c in config["clusters"] if c["name"] == cluster_ref)
    server = cluster["cluster"]["server"]
    if cluster_ref != testbed.cluster_name or not _is_local(server):
        raise TestbedError(f"kubeconfig {path} points at {cluster_ref} {server}, not the test bed")
    token = run_kubectl(
        testbed.binaries.kubectl, path, "get", "configmap", MARKER_NAME,
        "-n", MARKER_NAMESPACE, "-o", "jsonpath={.data.token}", check=False,
    ).stdout  # fmt: skip
    if token != testbed.token:
        raise TestbedError(f"{server} lacks the test bed's marker ConfigMap: another cluster?")
