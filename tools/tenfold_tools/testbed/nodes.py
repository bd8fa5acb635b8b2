"""Fake KWOK nodes of the test bed: pools from nodes.yaml turned into Node objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from tenfold.constants import GPU_PRODUCT_LABEL, GPU_RESOURCE

NODES_FILE: Final = Path(__file__).with_name("nodes.yaml")
# KWOK is started with --manage-nodes-with-annotation-selector on this annotation, so it
# only ever touches the nodes the test bed made.
KWOK_ANNOTATION: Final = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE: Final = "fake"
TESTBED_LABEL: Final = "tenfold.dev/testbed"
MAX_PODS: Final = "110"


@dataclass(frozen=True)
class GpuShape:
    """The GPUs of one node: GFD product string, device count and memory per GPU."""

    product: str
    count: int
    memory_mib: int


@dataclass(frozen=True)
class NodePool:
    """A group of identical fake nodes."""

    name: str
    count: int
    instance_type: str
    cpu: str
    memory: str
    gpu: GpuShape | None = None


def load_pools(path: Path = NODES_FILE) -> list[NodePool]:
    """Read the node pools from the YAML data file."""
    data = yaml.safe_load(path.read_text())
    pools = []
    for raw in data["pools"]:
        gpu = raw.get("gpu")
        pools.append(
            NodePool(
                name=raw["name"],
                count=int(raw["count"]),
                instance_type=raw["instanceType"],
                cpu=str(raw["cpu"]),
                memory=str(raw["memory"]),
                gpu=GpuShape(gpu["product"], int(gpu["count"]), int(gpu["memoryMiB"]))
                if gpu
                else None,
            )
        )
    return pools


# The taint GPU node pools of the clouds carry, so that only pods asking for GPUs (tenfold's
# GPU replicas tolerate it) land there.
GPU_TAINT: Final = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}


def build_node(pool: NodePool, index: int, gpu_taint: bool = False) -> dict[str, Any]:
    """Build one Node object (with the status KWOK keeps) for the pool's index-th node.

    gpu_taint: taint GPU nodes as the clouds do. With a real node in the test bed, a pod
    that asks for no GPU must run there, not on a KWOK node that only pretends to run it.
    """
    name = f"tenfold-{pool.name}-{index}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": pool.instance_type,
        "type": "kwok",
        TESTBED_LABEL: "true",
    }
    capacity = {"cpu": pool.cpu, "memory": pool.memory, "pods": MAX_PODS}
    if pool.gpu:
        labels |= {
            GPU_PRODUCT_LABEL: pool.gpu.product,
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.count": str(pool.gpu.count),
            "nvidia.com/gpu.memory": str(pool.gpu.memory_mib),
        }
        capacity[GPU_RESOURCE] = str(pool.gpu.count)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE},
        },
        # No kwok.x-k8s.io/node taint: pods must schedule here without tolerations.
        "spec": {"taints": [dict(GPU_TAINT)]} if pool.gpu and gpu_taint else {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def build_nodes(pools: list[NodePool], gpu_taint: bool = False) -> list[dict[str, Any]]:
    """Build every Node object of the given pools."""
    return [build_node(pool, i, gpu_taint) for pool in pools for i in range(pool.count)]
