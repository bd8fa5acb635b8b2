"""Start and remove the test bed's real node: a network namespace, containerd, the kubelet
and kube-proxy (the configuration itself is built in `node`).

One real node runs on the machine at a time (its address range and its image store are the
machine's); `up` of a second one fails with the name of the test bed holding it. The image
store (containerd's root) is kept under the cache between test beds, like a real node keeps
pulled images, so a second `up` imports only images whose content changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from tenfold_tools.testbed import health, procs
from tenfold_tools.testbed.layout import REPO_ROOT, Binaries, StateDir, TestbedError, cache_root
from tenfold_tools.testbed.node import (
    NODE_LINK,
    REAL_NODE_NAME,
    KubeletPaths,
    NodeNetwork,
    cni_conflist,
    containerd_config,
    kube_proxy_config,
    kubelet_args,
    kubelet_config,
)

Log = Callable[[str], None]
# The node's processes, in start order; `stop_node` stops them the other way round.
NODE_COMPONENTS: Final = ("containerd", "kubelet", "kube-proxy")
# Debian packages the node needs, and the commands that prove each is there.
REQUIRED_COMMANDS: Final = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "nsenter": "util-linux",
    "ip": "iproute2",
}
CNI_BIN: Final = Path("/usr/lib/cni")
CGROUP_FS: Final = Path("/sys/fs/cgroup")
# cgroup v1 controllers the kubelet and runc need on this machine.
REQUIRED_CONTROLLERS: Final = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer")
NODE_SLOT: Final = 1
IMAGES_SCRIPT: Final = REPO_ROOT / "hack" / "images" / "build.sh"
CGROUP_ROOT: Final = "tenfold-node"


@dataclass(frozen=True)
class NodeDirs:
    """Where the node keeps its files: per test bed, except the shared image store."""

    state: StateDir

    @property
    def root(self) -> Path:
        """Everything of this test bed's node."""
        return self.state.root / "node"

    @property
    def containerd_root(self) -> Path:
        """containerd's persistent root (images, snapshots), shared by every test bed."""
        return cache_root() / "node" / "containerd"

    @property
    def containerd_state(self) -> Path:
        """containerd's runtime state (sockets, task bundles)."""
        return self.root / "containerd"

    @property
    def socket(self) -> Path:
        """The CRI and containerd API socket."""
        return self.containerd_state / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        """The kubelet's --root-dir (pod volumes are mounted below it)."""
        return self.root / "kubelet"

    @property
    def cni_conf(self) -> Path:
        """CNI network configuration read by containerd."""
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        """host-local's address allocations."""
        return self.root / "cni" / "ipam"

    @property
    def local_volumes(self) -> Path:
        """The folders behind the node's local PersistentVolumes."""
        return self.root / "volumes"

    @property
    def pod_logs(self) -> Path:
        """Container logs (what `kubectl logs` reads through the kubelet)."""
        return self.root / "pod-logs"


def owner_file() -> Path:
    """Names the test bed that holds the real node."""
    return cache_root() / "node" / "owner.json"


# --- checks ------------------------------------------------------------------------------


def missing_features() -> list[str]:
    """What this machine lacks for a real node, each with how to get it (empty when none)."""
    missing = [
        f"command {cmd!r} (Debian package {pkg}: apt-get install {pkg})"
        for cmd, pkg in REQUIRED_COMMANDS.items()
        if shutil.which(cmd) is None
    ]
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (CNI_BIN / plugin).exists():
            missing.append(
                f"CNI plugin {CNI_BIN / plugin} (apt-get install containernetworking-plugins)"
            )
    if "overlay" not in Path("/proc/filesystems").read_text():
        missing.append("the overlay filesystem (kernel module overlay)")
    for controller in REQUIRED_CONTROLLERS:
        if not (CGROUP_FS / controller / "cgroup.procs").exists():
            missing.append(f"cgroup v1 controller {controller} mounted at {CGROUP_FS / controller}")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        missing.append("bridge netfilter (kernel module br_netfilter: modprobe br_netfilter)")
    if os.geteuid() != 0:
        missing.append("root: the kubelet, containerd and network namespaces need it")
    return missing


def require_features() -> None:
    """Fail with every missing feature and its remedy; never fall back to fake nodes."""
    missing = missing_features()
    if missing:
        raise TestbedError("this machine cannot run the test bed's real node; missing:\n- "
                           + "\n- ".join(missing))  # fmt: skip


# --- small helpers -----------------------------------------------------------------------


def _run(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command quietly; raise TestbedError with its stderr when check and it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=300)
    if check and proc.returncode != 0:
        raise TestbedError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout}")
    return proc


def in_netns(network: NodeNetwork, *argv: str) -> list[str]:
    """argv run inside the node's network namespace, and nothing else of it changed
    (unlike `ip netns exec`, nsenter leaves /sys and the cgroup mounts alone)."""
    return ["nsenter", f"--net=/run/netns/{network.netns}", "--", *argv]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path for the body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- ownership ---------------------------------------------------------------------------


def claim(name: str, state: StateDir) -> None:
    """Record name as the real node's holder; fail if another live test bed holds it."""
    with _locked(owner_file().with_suffix(".lock")):
        current = _owner()
        if current and current["name"] != name and holder_alive(current):
            raise TestbedError(
                f"the real node is held by test bed {current['name']!r}; stop it first: "
                f"python -m tenfold_tools.testbed down --name {current['name']}"
            )
        if current and current["name"] != name:
            # A holder that died without `down`: clear what it left before taking over.
            teardown(StateDir(Path(current["state"])), None, log=lambda _: None)
        record = {"name": name, "state": str(state.root), "claimer_pid": os.getpid()}
        owner_file().write_text(json.dumps(record))


def holder_alive(record: dict) -> bool:
    """Whether the test bed a holder record names still holds the node: its containerd
    runs, or, before its containerd has started (the control plane comes first, for
    seconds), the process that claimed it runs. Only a dead holder may be taken over."""
    containerd = int(record.get("containerd_pid", 0))
    if containerd:
        return procs.is_ours(containerd, record["state"])
    return procs.is_alive(int(record.get("claimer_pid", 0)))


def _owner() -> dict | None:
    """The recorded holder of the real node, if any."""
    try:
        data: dict = json.loads(owner_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def _record_owner_pid(state: StateDir, pid: int) -> None:
    """Add containerd's pid to the owner record, so a live holder can be told from a dead one."""
    data = _owner() or {}
    if data.get("state") == str(state.root):
        data["containerd_pid"] = pid
        owner_file().write_text(json.dumps(data))


def release(state: StateDir) -> None:
    """Forget the holder record if it is this test bed's."""
    data = _owner()
    if data and data.get("state") == str(state.root):
        owner_file().unlink(missing_ok=True)


# --- network -----------------------------------------------------------------------------


def setup_network(network: NodeNetwork) -> None:
    """The node's namespace, the veth pair to the host, addresses, routes and sysctls."""
    remove_network(network)
    node_end = f"{network.host_link}n"
    ns = network.netns
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "add", network.host_link, "type", "veth", "peer", "name", node_end)
    _run("ip", "link", "set", node_end, "netns", ns)
    _run("ip", "addr", "add", f"{network.host_ip}/{network.link_prefix}", "dev", network.host_link)
    _run("ip", "link", "set", network.host_link, "up")
    inside = [
        ("ip", "link", "set", "lo", "up"),
        ("ip", "link", "set", node_end, "name", NODE_LINK),
        ("ip", "addr", "add", f"{network.node_ip}/{network.link_prefix}", "dev", NODE_LINK),
        ("ip", "link", "set", NODE_LINK, "up"),
        ("ip", "route", "add", "default", "via", network.host_ip),
        # The node routes between its pods' bridge and the link to the host.
        ("sysctl", "-qw", "net.ipv4.ip_forward=1"),
        # Service traffic between two pods on the bridge must pass kube-proxy's rules.
        ("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"),
    ]
    for argv in inside:
        _run("ip", "netns", "exec", ns, *argv)
    # The host reaches pod addresses (Prometheus scrapes, tests) over the link.
    _run("ip", "route", "add", network.pod_cidr, "via", network.node_ip)


def remove_network(network: NodeNetwork) -> None:
    """Delete the namespace (its bridge, links and iptables rules go with it) and the link."""
    _run("ip", "route", "del", network.pod_cidr, check=False)
    _run("ip", "link", "del", network.host_link, check=False)
    _run("ip", "netns", "del", network.netns, check=False)


# --- cgroups -----------------------------------------------------------------------------


def cgroup_dirs() -> list[Path]:
    """The node's cgroup root in every mounted v1 hierarchy."""
    return [
        path / CGROUP_ROOT
        for path in sorted(CGROUP_FS.iterdir())
        if (path / "cgroup.procs").exists()
    ]


# Local PersistentVolumes made at `up`: the managed Redis of a few services at a time.
LOCAL_VOLUME_COUNT = 6


def make_local_volumes(dirs: NodeDirs, count: int = LOCAL_VOLUME_COUNT) -> list[str]:
    """Empty folders for the node's local PersistentVolumes; returns their paths.

    World-writable, as a fresh disk's mount point would be made for any pod's user: the
    kubelet also applies the pod's fsGroup to local volumes, but a folder the pod's user
    cannot enter would fail before that.
    """
    paths = []
    for index in range(count):
        folder = dirs.local_volumes / f"pv-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
        paths.append(str(folder))
    return paths


def make_cgroup_root() -> None:
    """Create the kubelet's cgroupRoot; cpuset needs its cpus and mems before it has tasks."""
    for path in cgroup_dirs():
        path.mkdir(exist_ok=True)
        if path.parent.name == "cpuset":
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (path / knob).write_text((path.parent / knob).read_text())


def _cgroup_pids() -> set[int]:
    """Every process left anywhere below the node's cgroup root."""
    pids: set[int] = set()
    for root in cgroup_dirs():
        if root.exists():
            for procs_file in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids |= {int(p) for p in procs_file.read_text().split()}
    return pids


def remove_cgroups() -> None:
    """Kill what still runs below the cgroup root, then remove its folders deepest first."""
    for _ in range(50):
        pids = _cgroup_pids()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for root in cgroup_dirs():
        if root.exists():
            for folder in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if folder.is_dir():
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()


# --- mounts ------------------------------------------------------------------------------


def mounts_below(*roots: Path) -> list[str]:
    """Mount points at or below the given folders (from /proc/self/mountinfo)."""
    prefixes = [str(r.resolve()) for r in roots]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(point)
    return points


def unmount_below(*roots: Path) -> None:
    """Unmount everything under roots, deepest first (the kubelet bind-mounts its own dir)."""
    for _ in range(3):
        points = sorted(set(mounts_below(*roots)), key=len, reverse=True)
        if not points:
            return
        for point in points:
            _run("umount", "-l", point, check=False)


# --- processes ---------------------------------------------------------------------------


def write_configs(dirs: NodeDirs, network: NodeNetwork, binaries: Binaries) -> dict[str, list[str]]:
    """Write containerd's, CNI's, the kubelet's and kube-proxy's files; return their argv."""
    pki = dirs.state.pki
    for folder in (dirs.root, dirs.containerd_root, dirs.containerd_state, dirs.kubelet_root,
                   dirs.cni_conf, dirs.cni_ipam, dirs.pod_logs):  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
    containerd_toml = dirs.root / "containerd.toml"
    containerd_toml.write_text(
        containerd_config(dirs.containerd_root, dirs.containerd_state, dirs.socket, dirs.cni_conf)
    )
    (dirs.cni_conf / "10-tenfold.conflist").write_text(cni_conflist(network, dirs.cni_ipam))
    paths = KubeletPaths(
        root_dir=dirs.kubelet_root,
        pod_logs=dirs.pod_logs,
        ca=pki / "ca.crt",
        serving_cert=pki / "kubelet-serving.crt",
        serving_key=pki / "kubelet-serving.key",
        runtime_socket=dirs.socket,
    )
    kubelet_yaml = dirs.root / "kubelet.yaml"
    kubelet_yaml.write_text(
        yaml.safe_dump(kubelet_config(network, paths, f"/{CGROUP_ROOT}"), sort_keys=False)
    )
    proxy_yaml = dirs.root / "kube-proxy.yaml"
    proxy_yaml.write_text(
        yaml.safe_dump(
            kube_proxy_config(network, dirs.state.component_kubeconfig("kube-proxy")),
            sort_keys=False,
        )
    )
    return {
        "containerd": in_netns(network, "containerd", f"--config={containerd_toml}"),
        "kubelet": in_netns(
            network,
            *kubelet_args(
                binaries.kubelet,
                kubelet_yaml,
                dirs.state.component_kubeconfig("kubelet"),
                dirs.kubelet_root,
                network,
            ),
        ),
        "kube-proxy": in_netns(network, str(binaries.kube_proxy), f"--config={proxy_yaml}"),
    }


def ctr(dirs: NodeDirs, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run Debian's ctr against the node's containerd, in the namespace the CRI uses."""
    return _run("ctr", f"--address={dirs.socket}", "--namespace=k8s.io", *args, check=check)


def wait_containerd(dirs: NodeDirs, pid: int, timeout: float = 60.0) -> None:
    """Wait until containerd answers on its socket."""

    def exited() -> str | None:
        return None if procs.is_alive(pid) else "containerd exited (see logs/containerd.log)"

    health.wait_until(
        lambda: dirs.socket.exists() and ctr(dirs, "version", check=False).returncode == 0,
        "containerd to answer",
        timeout=timeout,
        abort=exited,
    )


# containerd 1.6 can lose a race between `ctr images import` unpacking a layer and its own
# garbage collector removing the same layer's snapshot, which the replaced image (an older
# build of the same ref) no longer holds: "parent snapshot ... does not exist: not found".
# A second import unpacks that layer again.
IMPORT_ATTEMPTS = 3


def import_archive(dirs: NodeDirs, archive: Path) -> None:
    """`ctr images import` of one archive, again when the snapshot race above hit it."""
    for attempt in range(1, IMPORT_ATTEMPTS + 1):
        try:
            ctr(dirs, "images", "import", str(archive))
            return
        except TestbedError as error:
            if "snapshot" not in str(error) or attempt == IMPORT_ATTEMPTS:
                raise


def import_images(dirs: NodeDirs, archives: dict[str, Path], log: Log) -> None:
    """Import each image archive unless containerd already holds that exact content.

    An archive's name carries its content key, recorded in an image label, so an unchanged
    image costs one `ctr images ls` and a changed one is imported again.
    """
    listed = ctr(dirs, "images", "ls").stdout
    for ref, archive in archives.items():
        marker = f"tenfold.dev/archive={archive.name}"
        present = any(ref in line and marker in line for line in listed.splitlines())
        if present:
            continue
        start = time.monotonic()
        if any(line.split(maxsplit=1)[0] == ref for line in listed.splitlines() if line):
            # An older build of this ref: remove it first (--sync: its content and
            # snapshots are freed now), so the store never holds two 6.9 GB copies.
            ctr(dirs, "images", "rm", "--sync", ref)
        import_archive(dirs, archive)
        ctr(dirs, "images", "label", ref, marker)
        log(f"imported {ref} in {time.monotonic() - start:.1f}s")


def ensure_images(log: Log) -> dict[str, Path]:
    """Build (or find cached) the node's images with hack/images/build.sh: ref -> archive."""
    start = time.monotonic()
    proc = subprocess.run(["bash", str(IMAGES_SCRIPT)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TestbedError(f"{IMAGES_SCRIPT} failed:\n{proc.stderr[-3000:]}")
    images = parse_image_lines(proc.stdout)
    log(f"images ready in {time.monotonic() - start:.1f}s: {', '.join(images)}")
    return images


def parse_image_lines(output: str) -> dict[str, Path]:
    """The `IMAGE <ref> <archive>` lines of the image build's output."""
    images = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "IMAGE":
            images[parts[1]] = Path(parts[2])
    if not images:
        raise TestbedError(f"{IMAGES_SCRIPT} printed no IMAGE lines")
    return images


def image_ref(images: dict[str, Path], name: str) -> str:
    """The one built image whose repository ends in /name."""
    for ref in images:
        if ref.rsplit(":", 1)[0].endswith(f"/{name}"):
            return ref
    raise TestbedError(f"no {name} image among {sorted(images)}")


# The node's processes, in the order they stop.
NODE_PROCESSES = ("kubelet", "kube-proxy", "containerd")


def teardown(state: StateDir, crictl_binary: Path | None, log: Log = print) -> None:
    """Remove every pod, container, mount, cgroup, namespace and link the node made.

    Pods first, through the CRI (so CNI releases their addresses and namespaces), then the
    node's processes, then whatever survived by force. Safe on a half-started node.

    The node's cgroups, image store mounts and network are the machine's: while another
    live test bed holds the node, only this one's own processes and mounts go.
    """
    dirs = NodeDirs(state)
    pids = _read_pids(state)
    marker = str(state.root)
    holder = _owner()
    if holder and holder.get("state") != marker and holder_alive(holder):
        procs.stop([pids[c] for c in NODE_PROCESSES if c in pids], marker)
        unmount_below(dirs.root)
        log(f"real node held by {holder['name']!r}: removed only this test bed's processes")
        return
    procs.stop([pids[c] for c in ("kubelet", "kube-proxy") if c in pids], marker)
    if crictl_binary and crictl_binary.exists() and dirs.socket.exists():
        endpoint = f"unix://{dirs.socket}"
        _run(str(crictl_binary), f"--runtime-endpoint={endpoint}", "--timeout=60s",
             "rmp", "--all", "--force", check=False)  # fmt: skip
    if "containerd" in pids:
        procs.stop([pids["containerd"]], marker)
    remove_cgroups()
    unmount_below(dirs.root, dirs.containerd_root)
    remove_stale_pod_netns()
    remove_network(NodeNetwork(NODE_SLOT))
    _remove_log_links(dirs)
    release(state)
    log("real node removed")


def _read_pids(state: StateDir) -> dict[str, int]:
    """The test bed's recorded pids, from its state file."""
    try:
        data = json.loads(state.state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: int(v) for k, v in data.get("pids", {}).items()}


def _netns_in_use() -> set[tuple[int, int]]:
    """(device, inode) of every network namespace some process is in."""
    used = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                info = (proc / "ns" / "net").stat()
                used.add((info.st_dev, info.st_ino))
    return used


def remove_stale_pod_netns() -> None:
    """Pod namespaces (cni-*) that no process uses any more: a sandbox that died unreleased."""
    netns_dir = Path("/run/netns")
    if not netns_dir.exists():
        return
    used = _netns_in_use()
    for entry in netns_dir.glob("cni-*"):
        with contextlib.suppress(OSError):
            info = entry.stat()
            if (info.st_dev, info.st_ino) in used:
                continue
            _run("umount", "-l", str(entry), check=False)
            entry.unlink()


def _remove_log_links(dirs: NodeDirs) -> None:
    """The kubelet links container logs from /var/log/containers; drop ours."""
    links = Path("/var/log/containers")
    if links.is_dir():
        for link in links.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and str(os.readlink(link)).startswith(str(dirs.pod_logs)):
                    link.unlink()


def node_ready(kubectl: Callable[..., subprocess.CompletedProcess]) -> bool:
    """Whether the real node reports Ready with no taint left."""
    proc = kubectl("get", "node", REAL_NODE_NAME, "-o", "json", check=False)
    if proc.returncode != 0:
        return False
    node = json.loads(proc.stdout)
    ready = any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in node.get("status", {}).get("conditions", [])
    )
    return ready and not node["spec"].get("taints")
