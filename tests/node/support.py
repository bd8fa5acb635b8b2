"""Helpers shared by the real-node tests: the CPU example beside a client pod, and reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenfold_tools.testbed import Kubectl
from tenfold_tools.testbed.workloads import SLEEPER, python_pod
from tests.conftest import load_example
from tests.integration.operator_support import wait_ready
from tests.node.test_node_basics import wait_pod_ready

# Prepare quantizes and guards MiniLM on two shared cores, then Triton loads it.
SERVING_TIMEOUT = 900.0
# The Triton model of examples/minilm-local.yaml (spec.model.name), whatever the service's name.
EXAMPLE_MODEL = "minilm"


def budget_paying_for(replicas: int, spec: dict[str, Any]) -> float:
    """An hourly budget that pays for `replicas` replicas of the service `spec` and not one
    more: its fixed part (a managed Redis) plus replicas and a half, at the catalog's prices,
    priced by the product's own api.cost (the sidecar included)."""
    from tenfold.api.catalog import load_catalog
    from tenfold.api.cost import service_cost
    from tenfold.api.resource import parse_spec

    cost = service_cost(parse_spec(spec), load_catalog())
    return round(cost.fixed + (replicas + 0.5) * cost.per_replica, 4)


def serve_example_beside_a_client(
    kubectl: Kubectl,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    client_image: str,
    client: str = "client",
) -> dict:
    """examples/minilm-local.yaml as `name`, its spec's top-level fields replaced by `spec`,
    and an idle client pod of `client_image`; returns the service once both are Ready."""
    document = load_example("minilm-local.yaml")
    document["metadata"]["name"] = name
    document["spec"].update(spec)
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))
    pod = python_pod(client, client_image, SLEEPER)
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    service = wait_ready(kubectl, namespace, name, SERVING_TIMEOUT)
    wait_pod_ready(kubectl, namespace, client)
    return service


def write_report(title: str, filename: str, report: dict[str, Any]) -> None:
    """Print a test's measured report and keep it under results/ (the docs cite these)."""
    text = json.dumps(report, indent=2)
    print(f"{title}:", text)
    Path("results").mkdir(exist_ok=True)
    (Path("results") / filename).write_text(text + "\n")
