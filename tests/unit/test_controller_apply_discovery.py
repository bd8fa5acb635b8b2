"""A kind the cluster stopped serving (its CRD deleted) is told apart from a missing
namespace, and forgotten by the discovery cache the dynamic client keeps on disk."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import NotFoundError

from tenfold.controller import apply
from tenfold.controller.apply import is_unserved_kind


def not_found(message: str, details: dict | None = None) -> NotFoundError:
    error = ApiException(status=404, reason="Not Found")
    body = {"kind": "Status", "status": "Failure", "message": message, "code": 404}
    error.body = json.dumps({**body, **({"details": details} if details else {})})
    return NotFoundError(error)


def test_a_kind_no_longer_served_is_told_apart_from_a_missing_namespace() -> None:
    assert is_unserved_kind(not_found("the server could not find the requested resource"))
    missing_namespace = not_found(
        'namespaces "team-a" not found', {"name": "team-a", "kind": "namespaces"}
    )
    assert not is_unserved_kind(missing_namespace)
    gone_group = ApiException(status=404, reason="Not Found")
    gone_group.body = "404 page not found\n"
    assert is_unserved_kind(NotFoundError(gone_group))


def test_an_unserved_kind_becomes_missing_and_is_forgotten(monkeypatch) -> None:
    forgotten: list[tuple[str, str]] = []
    monkeypatch.setattr(apply, "forget_kind", lambda v, k: forgotten.append((v, k)))
    with pytest.raises(apply.MissingApiError, match="does not serve ServiceMonitor"):
        with apply.missing_if_unserved("monitoring.coreos.com/v1", "ServiceMonitor"):
            raise not_found("the server could not find the requested resource")
    assert forgotten == [("monitoring.coreos.com/v1", "ServiceMonitor")]
    with pytest.raises(NotFoundError):
        with apply.missing_if_unserved("v1", "Service"):
            raise not_found('namespaces "a" not found', {"name": "a", "kind": "namespaces"})
    assert len(forgotten) == 1
