"""Apply the plan: server-side apply with one field manager, then prune what left the plan."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from kubernetes.dynamic.exceptions import ConflictError, NotFoundError, ResourceNotFoundError

from tenfold import constants
from tenfold.controller.kube import dynamic_client
from tenfold.plan import CHILD_KINDS, child_selector


class MissingApiError(RuntimeError):
    """The cluster lacks a kind the plan needs (e.g. ServiceMonitor without its CRD)."""


# kopf runs sync handlers on a thread pool, and the dynamic client's discovery cache is not
# thread-safe: looking up a kind the cluster lacks rebuilds that cache, and two rebuilds at
# once made one of them fail with KeyError('resources') (seen in the integration suite).
_DISCOVERY_LOCK = threading.Lock()
# Each miss costs a full API discovery, so a kind found missing is not asked for again for
# this long; a CRD installed later (ServiceMonitor) is picked up within it.
MISSING_KIND_TTL_SECONDS = 60.0
_missing_until: dict[tuple[str, str], float] = {}


def _resource(api_version: str, kind: str) -> Any:
    key = (api_version, kind)
    with _DISCOVERY_LOCK:
        if _missing_until.get(key, 0.0) > time.monotonic():
            raise MissingApiError(f"the cluster does not serve {kind} ({api_version})")
        try:
            return dynamic_client().resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            _missing_until[key] = time.monotonic() + MISSING_KIND_TTL_SECONDS
            raise MissingApiError(f"the cluster does not serve {kind} ({api_version})") from None


def is_unserved_kind(error: NotFoundError) -> bool:
    """A 404 that means the kind is not served, not that a namespace is missing.

    An apply creates a missing object, so its 404 is either a missing namespace (a Status
    whose details name the namespace) or a kind the apiserver does not serve: a Status
    without details ("the server could not find the requested resource") or, for a group
    whose CRD is gone, the plain "404 page not found".
    """
    body = getattr(error, "body", None)
    try:
        status = json.loads(body.decode() if isinstance(body, bytes) else str(body or ""))
    except ValueError:
        return True
    return not (isinstance(status, dict) and (status.get("details") or {}).get("kind"))


def forget_kind(api_version: str, kind: str) -> None:
    """Drop the discovery cache and count the kind as missing for a while.

    The dynamic client keeps discovery in a file under the temp folder that outlives the
    process, so a CRD deleted since (prometheus-operator uninstalled) still looked served to
    a new operator, and every apply of its kind failed with 404 until someone removed the
    file; the next lookup discovers again.
    """
    with _DISCOVERY_LOCK:
        dynamic_client().resources.invalidate_cache()
        _missing_until[(api_version, kind)] = time.monotonic() + MISSING_KIND_TTL_SECONDS


@contextmanager
def missing_if_unserved(api_version: str, kind: str) -> Iterator[None]:
    """Turn a call's 404 for a kind the apiserver no longer serves into MissingApiError,
    forgetting the kind (forget_kind); any other 404 passes through."""
    try:
        yield
    except NotFoundError as error:
        if not is_unserved_kind(error):
            raise
        forget_kind(api_version, kind)
        raise MissingApiError(f"the cluster does not serve {kind} ({api_version})") from None


def apply_object(obj: Mapping[str, Any]) -> None:
    """Server-side apply one object as the tenfold field manager.

    force_conflicts: tenfold owns these children; a field another manager took by hand is
    taken back, which is what "apply the plan again" must mean for reconciliation.
    """
    resource = _resource(obj["apiVersion"], obj["kind"])
    with missing_if_unserved(obj["apiVersion"], obj["kind"]):
        response = dynamic_client().server_side_apply(
            resource,
            body=dict(obj),
            namespace=obj["metadata"].get("namespace"),
            field_manager=constants.FIELD_MANAGER,
            force_conflicts=True,
            serialize=False,  # no objects built from the answer
        )
    release(response)


def release(response: Any) -> None:
    """Hand an unread answer's connection back to the pool.

    The client streams answers (urllib3's preload_content=False), and a connection whose
    answer was never read stays out of its pool: each apply opened a TLS connection of its
    own, 4,001 for the 4,000 applies of a restart with 1,000 services (docs/reliability.md).
    """
    response.drain_conn()
    response.release_conn()


# The applies of one stage run at once (plan.apply_stages), on threads of their own: the
# handler's thread waits for them, and these threads never wait on anything but the apiserver.
_APPLY_TOGETHER = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tenfold-apply")


def apply_objects(stages: Iterable[Iterable[Mapping[str, Any]]]) -> None:
    """Apply stage after stage, the objects of each stage at once; the first error of a
    stage is raised once all of that stage's applies ended, and later stages wait."""
    for stage in stages:
        futures = [_APPLY_TOGETHER.submit(apply_object, obj) for obj in stage]
        wait(futures)
        for future in futures:
            future.result()


def create_once(obj: Mapping[str, Any]) -> bool:
    """Create `obj` unless it exists; True when this call created it.

    For what must be made once and then left alone (a generated password): the operator
    needs only `create` on it, never `get` or `update`, so it can neither read nor change
    what it made.
    """
    resource = _resource(obj["apiVersion"], obj["kind"])
    try:
        dynamic_client().create(
            resource,
            body=dict(obj),
            namespace=obj["metadata"].get("namespace"),
            field_manager=constants.FIELD_MANAGER,
        )
    except ConflictError:  # 409 AlreadyExists
        return False
    return True


# Ask for a listing's metadata only, as client-go's metadata informers do: owners and names
# are all a resync or a prune reads, and turning whole bodies into the dynamic client's
# objects and back was most of the operator's CPU at rest (docs/reliability.md, scale).
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


def _list_metadata(resource: Any, namespace: str, selector: str, **params: str) -> list[dict]:
    """The metadata of each object of `resource` in `namespace` matching `selector`."""
    response = resource.get(
        namespace=namespace,
        label_selector=selector,
        header_params={"Accept": METADATA_ONLY},
        serialize=False,
        **params,
    )
    items = json.loads(response.data).get("items") or []  # an empty list comes as null
    return [{"metadata": item.get("metadata") or {}} for item in items]


def list_managed(namespace: str, api_version: str, kind: str) -> list[dict[str, Any]]:
    """Every `kind` tenfold manages in `namespace` (metadata only), from the apiserver's watch
    cache (resourceVersion "0": no etcd read)."""
    resource = _resource(api_version, kind)
    selector = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}"
    return _list_metadata(resource, namespace, selector, resource_version="0")


def prune_children(name: str, namespace: str, keep: Iterable[Mapping[str, Any]]) -> list[str]:
    """Delete children that the current plan no longer contains; returns what was deleted.

    The plan says which kinds it makes and how its children are labelled (CHILD_KINDS,
    child_selector), so pruning can never look for what the plan does not write.
    """
    wanted = {(o["kind"], o["metadata"]["name"]) for o in keep}
    deleted = []
    for api_version, kind in CHILD_KINDS:
        try:
            resource = _resource(api_version, kind)
        except MissingApiError:
            continue
        try:
            with missing_if_unserved(api_version, kind):
                listed = _list_metadata(resource, namespace, child_selector(name))
        except MissingApiError:
            continue
        for item in listed:
            child_name = item["metadata"].get("name")
            if (kind, child_name) not in wanted:
                try:
                    resource.delete(name=child_name, namespace=namespace)
                    deleted.append(f"{kind}/{child_name}")
                except NotFoundError:
                    pass
    return deleted
