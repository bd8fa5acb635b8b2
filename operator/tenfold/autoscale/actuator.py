"""The one side effect of the autoscaler: writing replicas through the scale subresource.

Going through `/scale` (not a patch of the spec) lets GitOps tools own the rest of the spec
without fighting the autoscaler; the controller renders the Deployment from spec.replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from kubernetes import client

from tenfold.constants import API_GROUP, API_VERSION, PLURAL

T = TypeVar("T")
# The autoscaler's blocking calls (the Prometheus round, a scale) run on threads of their
# own. On the default pool, which kopf gives its sync handlers, a Prometheus round waited
# behind a burst of creations applying their plans, and every service's tick waited on it.
_AUTOSCALER_IO = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tenfold-autoscale")


async def off_loop(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` on the autoscaler's own threads."""
    return await asyncio.get_running_loop().run_in_executor(_AUTOSCALER_IO, partial(call, *args))


async def apply_scale(
    api: client.CustomObjectsApi, namespace: str, name: str, replicas: int
) -> None:
    """Set spec.replicas of one InferenceService via its scale subresource (merge patch).

    The kubernetes client is synchronous; a thread keeps the operator's event loop free.
    """
    await off_loop(
        api.patch_namespaced_custom_object_scale,
        API_GROUP,
        API_VERSION,
        namespace,
        PLURAL,
        name,
        {"spec": {"replicas": replicas}},
    )
