"""A real local Kubernetes control plane for tests and demos, with fake GPU nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes
built from their Go modules (hack/testbed/build.sh); KWOK plays the kubelets of fake CPU
and GPU nodes. Use `python -m tenfold_tools.testbed up|down|status|env`, or `up()`/`down()`.
"""

from tenfold_tools.testbed.cluster import (
    Kubectl,
    Testbed,
    assert_is_testbed,
    down,
    is_up,
    load,
    status,
    up,
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
    "status",
    "up",
]
