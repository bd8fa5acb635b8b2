"""Bad input at volume: 1,000 generated specs, `tenfold validate` against the apiserver.

For each spec drawn by tests/spec_generator.py (valid and invalid, from the CRD's schema):
the in-process validation (what `tenfold validate` and the operator run) and the
apiserver's server-side dry run agree; every refusal names a field; and every accepted
spec renders children (the operator's plan) that the apiserver accepts too, dry run.
Counts are printed (`-s`); docs/reliability.md quotes them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tenfold import constants
from tenfold.api.catalog import load_catalog
from tenfold.api.resource import InvalidSpecError, parse_inference_service
from tenfold.plan import build_plan
from tests.integration.operator_support import dry_run_refusal
from tests.spec_generator import specs

SPECS = 1000
NAME = "generated"


def manifest(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{constants.API_GROUP}/{constants.API_VERSION}",
        "kind": constants.KIND,
        "metadata": {"name": NAME},
        "spec": spec,
    }


def server_refusal(api: client.CustomObjectsApi, namespace: str, body: dict) -> str | None:
    """The apiserver's refusal of a create (dry run), None when it accepts."""
    refusal = dry_run_refusal(api, namespace, body)
    return str(refusal["message"]) if refusal else None


def test_validate_and_the_apiserver_agree_on_generated_specs(
    crd: None, k8s_api: Any, namespace: str
):
    custom = client.CustomObjectsApi(k8s_api)
    children_api = dynamic.DynamicClient(k8s_api)
    catalog = load_catalog()
    seen: Counter[str] = Counter()

    @settings(max_examples=SPECS, deadline=None, database=None, derandomize=True)
    @given(specs())
    def check(spec: dict[str, Any]) -> None:
        body = manifest(spec)
        refused = server_refusal(custom, namespace, body)
        try:
            service = parse_inference_service(body, namespace)
        except InvalidSpecError as invalid:
            assert refused is not None, f"validate refused, the apiserver accepted: {invalid}"
            assert all(error.path.startswith("spec") for error in invalid.errors), invalid
            assert "spec." in refused, refused
            seen["refused by both"] += 1
            return
        assert refused is None, f"the apiserver refused, validate accepted: {refused}\n{spec}"
        seen["accepted by both"] += 1
        for child in build_plan(NAME, namespace, service.spec, replicas=1, catalog=catalog,
                                uid="00000000-0000-0000-0000-000000000000"):  # fmt: skip
            try:
                resource = children_api.resources.get(
                    api_version=child["apiVersion"], kind=child["kind"]
                )
            except ResourceNotFoundError:  # ServiceMonitor: no prometheus-operator CRD here
                seen[f"children skipped ({child['kind']}: kind not served)"] += 1
                continue
            children_api.server_side_apply(
                resource, body=child, namespace=namespace,
                field_manager=constants.FIELD_MANAGER, dry_run="All",
            )  # fmt: skip
            seen["children accepted"] += 1

    check()
    print(f"generated specs: {SPECS}; {dict(seen)}")
    assert seen["accepted by both"] and seen["refused by both"]
