"""Bad input at volume: 1,000 generated specs, `tenfold validate`, the apiserver, the operator.

For each spec drawn by tests/spec_generator.py (valid and invalid, from the CRD's schema):
the in-process validation (what `tenfold validate` and the operator run) and the
apiserver's server-side dry run agree, and every refusal names a field. Each spec the
apiserver accepts then goes down the operator's own path, from the body the apiserver
returns: `reconcile.parse_body`, `reconcile.desired` (what a reconcile writes), every child
dry-run as `apply` writes it (server-side apply, the tenfold field manager, in the service's
namespace), and the first status tick (observed status, the autoscaler without Prometheus,
the conditions) dry-run as a status patch; no step may raise. Then the running operator
handles every accepted spec as a real object. Counts are printed (`-s`); docs/reliability.md
quotes them.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

from tenfold import constants
from tenfold.api.resource import InferenceService, InvalidSpecError, parse_inference_service
from tenfold.api.status import ConditionType
from tenfold.autoscale.loop import Autoscaler
from tenfold.autoscale.signals import SignalsUnavailableError
from tenfold.controller import conditions, metrics
from tenfold.controller import reconcile as rc
from tenfold.controller.config import OperatorConfig
from tenfold_tools.testbed import Kubectl, Testbed, wait_established
from tests.integration.operator_support import OperatorProcess, load_manifest, wait_for
from tests.spec_generator import EXAMPLES, specs

SPECS = 1000
NAME = "generated"
STATUS_TARGET = "status-target"
MERGE_PATCH = "application/merge-patch+json"  # as kopf patches a status
# The operator's defaults; this test bed has no price ConfigMap, so cluster_prices finds none.
CONFIG = OperatorConfig()
PRICES: dict[str, float] = {}
SERVICE_MONITOR_CRD = "monitoring.coreos.com_servicemonitors.yaml"
GENERATION_SETTINGS = settings(max_examples=SPECS, deadline=None, database=None, derandomize=True)


def manifest(spec: dict[str, Any], name: str = NAME) -> dict[str, Any]:
    return {
        "apiVersion": f"{constants.API_GROUP}/{constants.API_VERSION}",
        "kind": constants.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def dry_run_create(
    api: client.CustomObjectsApi, namespace: str, body: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """(the object as the apiserver would store it, None) or (None, its refusal)."""
    try:
        stored = api.create_namespaced_custom_object(
            constants.API_GROUP, constants.API_VERSION, namespace, constants.PLURAL, body,
            dry_run="All",
        )  # fmt: skip
    except ApiException as error:
        assert error.status == 422, error.body
        return None, str(error.body)
    return stored, None


class NoPrometheus:
    """The autoscaler's signal source in a test bed without Prometheus."""

    def fetch_all(self, at: float) -> dict:
        raise SignalsUnavailableError("no Prometheus in this test bed")


def first_tick_status(
    body: dict[str, Any],
    service: InferenceService,
    settled: dict[str, Any],
    deployment: dict[str, Any],
    seen: Counter[str],
) -> dict[str, Any]:
    """What the operator's first status tick writes (actions.refresh_status): the Deployment
    as the dry run returned it, no pods yet, no Prometheus, no refused cluster price."""
    key = (service.namespace, service.name)
    observed = rc.observed_status(service, settled, {key: [deployment]}, {})

    async def scale(namespace: str, name: str, replicas: int) -> None:
        seen["scale decisions (not written)"] += 1

    autoscaler = Autoscaler(CONFIG.autoscale, scale, source=NoPrometheus())
    scaling = asyncio.run(
        autoscaler.tick(
            service.namespace, service.name, body["spec"], {**settled, **observed},
            emit=lambda kind, reason, message: None,
            generation=service.generation, cluster_prices=PRICES,
        )
    )  # fmt: skip
    current = {**observed, **scaling}
    before = settled.get("conditions") or []
    current["conditions"] = conditions.merge_conditions(
        current.get("conditions") or before, conditions.price_conditions(None, before),
        service.generation, rc.now_rfc3339(),
    )  # fmt: skip
    metrics.record_status(service.namespace, service.name, {**settled, **current},
                          service.spec.budget.hourly_cap())  # fmt: skip
    return {**settled, **current}


class ChildrenDryRun:
    """Writes what a reconcile decides (reconcile.desired) as apply.py does, dry run."""

    def __init__(self, api_client: Any) -> None:
        self._client = dynamic.DynamicClient(api_client)

    def _resource(self, obj: dict[str, Any]) -> Any:
        return self._client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])

    def write(self, wanted: rc.Desired, namespace: str, seen: Counter[str]) -> dict[str, Any]:
        """Dry-run every child; returns the Deployment as the apiserver would store it."""
        for obj in wanted.create_once:
            self._client.create(self._resource(obj), body=obj, namespace=namespace,
                                field_manager=constants.FIELD_MANAGER, dry_run="All")  # fmt: skip
            seen[f"children accepted: {obj['kind']}"] += 1
        deployment: dict[str, Any] = {}
        for obj in wanted.objects:
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]
            stored = self._client.server_side_apply(
                self._resource(obj), body=obj, namespace=namespace,
                field_manager=constants.FIELD_MANAGER, force_conflicts=True, dry_run="All",
            )  # fmt: skip
            seen[f"children accepted: {obj['kind']}"] += 1
            if obj["kind"] == "Deployment":
                deployment = stored.to_dict()
        return deployment


@pytest.fixture(scope="module")
def service_monitor_crd(testbed: Testbed, kubectl: Kubectl) -> Iterator[None]:
    """prometheus-operator's ServiceMonitor CRD, so that the plan's ServiceMonitors are
    checked against their own schema too; removed after the module."""
    crd = testbed.binaries.prometheus_operator_crds / SERVICE_MONITOR_CRD
    kubectl("apply", "--server-side", "-f", str(crd))
    wait_established(kubectl, "-f", str(crd))
    yield
    kubectl("delete", "-f", str(crd), "--wait=false", check=False)


def test_generated_specs_pass_validate_the_apiserver_and_the_operator_path(
    crd: None, service_monitor_crd: None, k8s_api: Any, namespace: str
):
    custom = client.CustomObjectsApi(k8s_api)
    children = ChildrenDryRun(k8s_api)
    seen: Counter[str] = Counter()
    # A stored service to dry-run the status patches on (the status schema does not depend
    # on the spec); the generated ones are dry-run only, under NAME.
    stored = load_manifest(EXAMPLES / "minilm-cpu.yaml", STATUS_TARGET)
    custom.create_namespaced_custom_object(
        constants.API_GROUP, constants.API_VERSION, namespace, constants.PLURAL, stored
    )

    def check(spec: dict[str, Any]) -> None:
        body = manifest(spec)
        accepted, refused = dry_run_create(custom, namespace, body)
        try:
            parse_inference_service(body, namespace)
        except InvalidSpecError as invalid:
            assert refused is not None, ("validate refused, the apiserver accepted", invalid, spec)
            assert all(error.path.startswith("spec") for error in invalid.errors), (invalid, spec)
            assert "spec." in refused, (refused, spec)
            rc.invalid_status(str(invalid), {}, 1)  # what the operator would write
            seen["refused by both"] += 1
            return
        assert accepted is not None, f"the apiserver refused, validate accepted: {refused}\n{spec}"
        seen["accepted by both"] += 1
        # From here on, the operator's path on the body the apiserver would hand it.
        service = rc.parse_body(accepted)
        wanted = rc.desired(service, CONFIG, PRICES)
        deployment = children.write(wanted, namespace, seen)
        status = first_tick_status(accepted, service, wanted.status, deployment, seen)
        custom.patch_namespaced_custom_object_status(
            constants.API_GROUP, constants.API_VERSION, namespace, constants.PLURAL,
            STATUS_TARGET, {"status": status}, dry_run="All", _content_type=MERGE_PATCH,
        )  # fmt: skip
        seen["status patches accepted"] += 1

    started = time.monotonic()
    for spec in drawn_specs():
        check(spec)
    print(f"generated specs: {SPECS}; {dict(sorted(seen.items()))}; "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    assert seen["accepted by both"] + seen["refused by both"] == SPECS
    assert seen["accepted by both"] and seen["refused by both"]


@functools.cache
def drawn_specs() -> tuple[dict[str, Any], ...]:
    """The generated specs, drawn once (derandomized), so that both tests see the same."""
    drawn: list[dict[str, Any]] = []

    @GENERATION_SETTINGS
    @given(specs())
    def collect(spec: dict[str, Any]) -> None:
        drawn.append(spec)

    collect()
    assert len(drawn) == SPECS, len(drawn)
    return tuple(drawn)


def accepted_specs() -> list[dict[str, Any]]:
    """The drawn specs that validate accepts: the test above proves that the apiserver
    accepts exactly these."""
    found = []
    for spec in drawn_specs():
        try:
            parse_inference_service(manifest(spec), "default")
        except InvalidSpecError:
            continue
        found.append(spec)
    assert found
    return found


def handled(service: dict[str, Any], deployments: set[str]) -> str | None:
    """How the operator answered a service: its children, or a Degraded condition."""
    status = service.get("status") or {}
    name = service["metadata"]["name"]
    if status.get("observedGeneration") == service["metadata"]["generation"] and (
        name in deployments
    ):
        return "children"
    for condition in status.get("conditions") or []:
        if condition["type"] == ConditionType.DEGRADED.value and condition["status"] == "True":
            return f"Degraded: {condition['reason']}"
    return None


def test_the_operator_handles_every_accepted_generated_spec(
    service_monitor_crd: None, quiet_operator: OperatorProcess, k8s_api: Any, namespace: str
):
    custom = client.CustomObjectsApi(k8s_api)
    apps = client.AppsV1Api(k8s_api)
    accepted = accepted_specs()
    for index, spec in enumerate(accepted):
        custom.create_namespaced_custom_object(
            constants.API_GROUP, constants.API_VERSION, namespace, constants.PLURAL,
            manifest(spec, f"{NAME}-{index:03d}"),
        )  # fmt: skip
    started = time.monotonic()

    def answers() -> Counter[str] | None:
        listed = custom.list_namespaced_custom_object(
            constants.API_GROUP, constants.API_VERSION, namespace, constants.PLURAL
        )
        names = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items}
        outcomes = [handled(service, names) for service in listed["items"]]
        complete = None not in outcomes and len(outcomes) == len(accepted)
        return Counter(outcomes) if complete else None

    outcomes = wait_for(answers, f"the operator's answer to {len(accepted)} services", timeout=240)
    print(f"operator on {len(accepted)} accepted generated specs: {dict(outcomes)}; "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
