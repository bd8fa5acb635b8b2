"""The one side effect of the autoscaler: writing replicas through the scale subresource.

Going through `/scale` (not a patch of the spec) lets GitOps tools own the rest of the spec
without fighting the autoscaler; the controller renders the Deployment from spec.replicas.
"""

from __future__ import annotations

import asyncio

from kubernetes import client

from tenfold.constants import API_GROUP, API_VERSION, PLURAL


async def apply_scale(
    api: client.CustomObjectsApi, namespace: str, name: str, replicas: int
) -> None:
    """Set spec.replicas of one InferenceService via its scale subresource (merge patch).

    The kubernetes client is synchronous; a thread keeps the operator's event loop free.
    """
    await asyncio.to_thread(
        api.patch_namespaced_custom_object_scale,
        API_GROUP,
        API_VERSION,
        namespace,
        PLURAL,
        name,
        {"spec": {"replicas": replicas}},
    )
