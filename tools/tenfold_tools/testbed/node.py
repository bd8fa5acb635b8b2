"""The test bed's real node, as data: addresses, and the configuration of containerd, the
kubelet, kube-proxy and CNI (pure: nothing is written or run here).

The node lives in a network namespace of its own, joined to the host by a veth pair:

    host  tfh<slot> 10.253.<slot>.1/30  ── veth ──  eth0 10.253.<slot>.2/30  node netns
                                                    cni0 10.244.<slot>.1/24  pods' bridge

so that its bridge, its pods' routes and kube-proxy's iptables rules never touch the host's
own tables, several test beds can run side by side (one slot each), and `down` removes all
of it by deleting the namespace. The apiserver listens on the host side of the link; the
host reaches pod addresses through a route over the link. No address leaves the machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tenfold_tools.testbed.nodes import TESTBED_LABEL

MAX_SLOTS: Final = 200
NETNS_PREFIX: Final = "tenfold-node-"
HOST_LINK_PREFIX: Final = "tfh"
NODE_LINK: Final = "eth0"
POD_BRIDGE: Final = "cni0"
CLUSTER_DOMAIN: Final = "cluster.local"
# The tenth address of the Service range, as kubeadm picks for cluster DNS.
CLUSTER_DNS_IP: Final = "10.96.0.10"
# The real node plays the cpu pool (see nodes.yaml); KWOK keeps the GPU pools.
REAL_NODE_NAME: Final = "tenfold-cpu-0"
REAL_NODE_INSTANCE_TYPE: Final = "local-2vcpu"
REAL_NODE_LABEL: Final = "tenfold.dev/node"
KUBELET_PORT: Final = 10250
MAX_PODS: Final = 40
# Images the node runs before anything else: the sandbox and cluster DNS.
PAUSE_IMAGE: Final = "docker.io/tenfold/pause:3.10"


@dataclass(frozen=True)
class NodeNetwork:
    """Addresses and names of one test bed's node, derived from its slot (1..MAX_SLOTS)."""

    slot: int

    def __post_init__(self) -> None:
        if not 1 <= self.slot <= MAX_SLOTS:
            raise ValueError(f"slot {self.slot} is outside 1..{MAX_SLOTS}")

    @property
    def netns(self) -> str:
        """The node's network namespace (under /run/netns)."""
        return f"{NETNS_PREFIX}{self.slot}"

    @property
    def host_link(self) -> str:
        """The host end of the veth pair (15 characters at most, as Linux wants)."""
        return f"{HOST_LINK_PREFIX}{self.slot}"

    @property
    def host_ip(self) -> str:
        """The host's address on the link: the apiserver listens here."""
        return f"10.253.{self.slot}.1"

    @property
    def node_ip(self) -> str:
        """The node's InternalIP: the kubelet serves here."""
        return f"10.253.{self.slot}.2"

    @property
    def link_prefix(self) -> int:
        """Prefix length of the point-to-point link."""
        return 30

    @property
    def pod_cidr(self) -> str:
        """The pods' subnet on the node's bridge."""
        return f"10.244.{self.slot}.0/24"


def containerd_config(root: Path, state: Path, socket: Path, cni_conf: Path) -> str:
    """containerd's config.toml: CRI with runc on cgroupfs, CNI from Debian's plugins.

    restrict_oom_score_adj: this VM's root lacks CAP_SYS_RESOURCE, so no process may lower
    oom_score_adj below 0; the kubelet asks -998 for sandboxes and runc would fail
    ("can't get final child's PID from pipe"). The option clamps the request instead.
    """
    return f"""version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"""


def cni_conflist(network: NodeNetwork, ipam_dir: Path) -> str:
    """A bridge network for the node's pods (loopback is added by containerd itself).

    hairpinMode lets a pod reach itself through its own Service; ipMasq hides pod
    addresses behind the node's when they talk to the host (the apiserver).
    """
    config = {
        "cniVersion": "0.4.0",
        "name": "tenfold",
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass(frozen=True)
class KubeletPaths:
    """Files the kubelet reads or owns, all inside the test bed's state folder."""

    root_dir: Path
    pod_logs: Path
    ca: Path
    serving_cert: Path
    serving_key: Path
    runtime_socket: Path


def kubelet_config(network: NodeNetwork, paths: KubeletPaths, cgroup_root: str) -> dict[str, Any]:
    """The KubeletConfiguration of the real node.

    cgroupfs under a cgroup root of the test bed's own, so two test beds never share
    `kubepods` and `down` can remove what the node made; cgroup v1 is what this VM has.
    Eviction and image GC thresholds are low: the test bed shares the disk with the
    machine, and an evicted Triton pod would read as a tenfold bug.
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": network.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(paths.serving_cert),
        "tlsPrivateKeyFile": str(paths.serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(paths.ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{paths.runtime_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # No upstream resolver: nothing outside the machine is reachable anyway.
        "resolvConf": "",
        "podLogsDir": str(paths.pod_logs),
        # Inside the state folder, not /usr/libexec: nothing of the node outlives `down`.
        "volumePluginDir": str(paths.root_dir / "volume-plugins"),
        "maxPods": MAX_PODS,
        "serializeImagePulls": False,
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": True,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
    }


def kubelet_args(
    kubelet: Path, config: Path, kubeconfig: Path, root_dir: Path, network: NodeNetwork
) -> list[str]:
    """The kubelet's command line (everything else is in its config file)."""
    labels = {
        "node.kubernetes.io/instance-type": REAL_NODE_INSTANCE_TYPE,
        TESTBED_LABEL: "true",
        REAL_NODE_LABEL: "real",
    }
    return [
        str(kubelet),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={root_dir}",
        f"--hostname-override={REAL_NODE_NAME}",
        f"--node-ip={network.node_ip}",
        "--node-labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
    ]


def kube_proxy_config(network: NodeNetwork, kubeconfig: Path) -> dict[str, Any]:
    """kube-proxy in iptables mode, inside the node's namespace.

    conntrack maxPerCore 0 leaves the machine-wide conntrack table size alone.
    """
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": REAL_NODE_NAME,
        "bindAddress": network.node_ip,
        "clusterCIDR": network.pod_cidr,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0},
    }


# The default StorageClass of the real node: local volumes made ahead of time, as a
# cluster without a dynamic provisioner (or the local static provisioner) offers them.
LOCAL_STORAGE_CLASS: Final = "local"
LOCAL_VOLUME_SIZE: Final = "2Gi"


def local_storage_objects(paths: list[str]) -> list[dict[str, Any]]:
    """A default StorageClass with no provisioner, and one local PersistentVolume per path
    on the real node. Claims bind when their pod is scheduled (WaitForFirstConsumer), so a
    claim never binds to a volume on a node its pod cannot run on."""
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": LOCAL_STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    }
    hostname = {"key": "kubernetes.io/hostname", "operator": "In", "values": [REAL_NODE_NAME]}
    on_the_node = {"nodeSelectorTerms": [{"matchExpressions": [hostname]}]}
    volumes = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{REAL_NODE_NAME}-local-{index}"},
            "spec": {
                "capacity": {"storage": LOCAL_VOLUME_SIZE},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": LOCAL_STORAGE_CLASS,
                "local": {"path": path},
                "nodeAffinity": {"required": on_the_node},
            },
        }
        for index, path in enumerate(paths)
    ]
    return [storage_class, *volumes]


def coredns_objects(image: str) -> list[dict[str, Any]]:
    """CoreDNS as cluster DNS: its RBAC, a Deployment on the real node and the kube-dns
    Service at CLUSTER_DNS_IP. It listens on 1053, so it needs no capability to bind."""
    labels = {"k8s-app": "kube-dns"}
    corefile = (
        f".:1053 {{\n    errors\n    health :8080\n    ready :8181\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n"
        f"    cache 30\n    loop\n    reload\n}}\n"
    )
    meta = {"name": "coredns", "namespace": "kube-system"}
    container = {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 1053, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            # The binary carries the file capability cap_net_bind_service (as upstream's
            # image does); exec fails unless the container may hold it, as in kubeadm's
            # manifest. The restricted profile allows this one capability.
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    rules = [
        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
         "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["list", "watch"]},
    ]  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns",
                       "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": {"Corefile": corefile}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "nodeSelector": {REAL_NODE_LABEL: "real"},
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": CLUSTER_DNS_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]  # fmt: skip
