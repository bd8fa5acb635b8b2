"""A real local Kubernetes cluster for tests and demos: a real cpu node, fake GPU nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes
built from their Go modules (hack/testbed/build.sh); the cpu node is a real kubelet with
containerd, CNI, kube-proxy and CoreDNS in a network namespace of its own (`realnode`),
running images built here (hack/images/build.sh); KWOK plays the kubelets of the GPU nodes
(and, with --kwok-only, of fake cpu nodes too).
Use `python -m tenfold_tools.testbed up|down|status|env`, or `up()`/`down()`.
"""

from tenfold_tools.testbed.cluster import (
    Kubectl,
    Testbed,
    assert_is_testbed,
    down,
    is_up,
    load,
    start_component,
    status,
    stop_component,
    up,
    wait_established,
)
from tenfold_tools.testbed.layout import DEFAULT_NAME, TestbedError, Versions, load_versions

__all__ = [
    "DEFAULT_NAME",
    "Kubectl",
    "Testbed",
    "TestbedError",
    "Versions",
    "assert_is_testbed",
    "down",
    "is_up",
    "load",
    "load_versions",
    "start_component",
    "status",
    "stop_component",
    "up",
    "wait_established",
]
