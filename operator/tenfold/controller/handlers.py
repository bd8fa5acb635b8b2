"""Every kopf registration of the operator, and nothing else.

Each handler has an explicit id and delegates to `actions` (InferenceServices) or
`tuning_actions` (InferenceTunings); logic lives there and below.
The operator's settings are read from the environment here, once, and passed down.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from tenfold import constants
from tenfold.controller import actions, observe, status_loop, tuning_actions
from tenfold.controller.config import OperatorConfig
from tenfold.controller.drift import WATCHED_CHILDREN
from tenfold.controller.leadership import Leadership
from tenfold.controller.metrics import serve as serve_metrics
from tenfold.controller.settings import configure
from tenfold.plan.labels import APP_NAME, LABEL_NAME
from tenfold.plan.tuning import TUNING_APP_NAME

# Index functions and the child-event handler are async: kopf runs a sync handler on its
# thread pool, where every watch event of a pod or a Deployment then waited behind the apply
# handlers of a burst of creations. They compute in the loop; only I/O takes a thread.
RESOURCE = (constants.API_GROUP, constants.API_VERSION, constants.PLURAL)
TUNING = (constants.API_GROUP, constants.API_VERSION, constants.TUNING_PLURAL)
CONFIG = OperatorConfig.from_env()


@kopf.on.startup(id="configure")
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Apply tenfold's kopf settings, serve the operator's metrics, start the status loop."""
    configure(settings)
    serve_metrics(CONFIG.metrics_port)
    deployments, pods = kwargs["deployments_by_service"], kwargs["pods_by_service"]

    async def refresh(body: Any, emit: Any) -> dict:
        return await actions.refresh_status(body, CONFIG, deployments, pods, emit)

    # The indexes are kopf's live views: empty now, filled as its watches list and follow.
    leadership = memo.get("leadership") or Leadership.alone()  # `tenfold run` passes one
    memo.status_loop = asyncio.create_task(
        status_loop.run(kwargs["services_by_name"], refresh, leadership, CONFIG.tick_seconds)
    )


@kopf.on.cleanup(id="stop-status-loop")
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the status loop before kopf closes its loop."""
    task = memo.get("status_loop")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# kopf retries an exception that is not its own (a connection refused while the apiserver
# restarts) after 60 s by default; the control plane's return should be met within seconds.
UNEXPECTED_ERROR_BACKOFF = 5.0


@kopf.on.resume(*RESOURCE, id="apply-plan-resume", backoff=UNEXPECTED_ERROR_BACKOFF)
@kopf.on.create(*RESOURCE, id="apply-plan-create", backoff=UNEXPECTED_ERROR_BACKOFF)
@kopf.on.update(*RESOURCE, id="apply-plan-update", field="spec", backoff=UNEXPECTED_ERROR_BACKOFF)
def on_spec(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Apply the plan whenever the spec is new, changed, or the operator restarted."""
    actions.apply_service(body, patch, CONFIG)


@kopf.index(
    "apps", "v1", "deployments",
    id="deployments_by_service",
    labels={constants.LABEL_MANAGED_BY: constants.MANAGED_BY},
)  # fmt: skip
async def deployments_by_service(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict:
    """The serving Deployment of each service (named after it), as the watch last saw it."""
    return {(namespace, name): observe.deployment_entry(body)}


@kopf.index("", "v1", "pods", id="pods_by_service", labels={LABEL_NAME: APP_NAME})
async def pods_by_service(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict:
    """The serving pods of each service (by their instance label), as last seen."""
    return {(namespace, labels.get(constants.LABEL_INSTANCE)): observe.pod_entry(body)}


@kopf.index(*RESOURCE, id="services_by_name")
async def services_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict:
    """Every InferenceService, from the watch (a child's drift is repaired from its owner's
    body without a GET)."""
    return {(namespace, name): observe.service_entry(body)}


async def on_child_event(type: str | None, body: kopf.Body, **kwargs: Any) -> None:  # noqa: A002
    """A child changed: apply its owner's plan again if that was drift (deleted, edited).

    `type` (kopf's name) is the watch event's, None for the initial listing.
    """
    await actions.repair_drift(type, body, kwargs["services_by_name"], CONFIG)


for _group, _version, _plural in WATCHED_CHILDREN:
    kopf.on.event(
        _group,
        _version,
        _plural,
        id=f"repair-{_plural}",
        labels={constants.LABEL_MANAGED_BY: constants.MANAGED_BY},
    )(on_child_event)


@kopf.on.delete(*RESOURCE, id="forget-metrics", optional=True)
def on_delete(namespace: str | None, name: str, **_: Any) -> None:
    """Drop the deleted service's metric series (optional: adds no finalizer)."""
    actions.forget_service(namespace or "", name, CONFIG)


@kopf.on.resume(*TUNING, id="tuning-resume", backoff=UNEXPECTED_ERROR_BACKOFF)
@kopf.on.create(*TUNING, id="tuning-create", backoff=UNEXPECTED_ERROR_BACKOFF)
@kopf.on.update(*TUNING, id="tuning-update", field="spec", backoff=UNEXPECTED_ERROR_BACKOFF)
def on_tuning_spec(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    """Start the search of a new tuning generation (its Job), or say why it cannot start."""
    tuning_actions.start_tuning(body, patch, kwargs["services_by_name"], CONFIG.runtime_image)


# The Job watch reports a search's end at once; this timer catches an end the watch missed
# (an operator restart, a failed read) and a Job deleted by hand.
TUNING_CHECK_SECONDS = 30.0


@kopf.timer(
    *TUNING, id="tuning-check", interval=TUNING_CHECK_SECONDS, backoff=UNEXPECTED_ERROR_BACKOFF
)
def on_tuning_tick(body: kopf.Body, **kwargs: Any) -> None:
    """Report this tuning's Job if it ended unseen."""
    tuning_actions.check_tuning(body, kwargs["services_by_name"])


@kopf.on.event("batch", "v1", "jobs", id="tuning-jobs", labels={LABEL_NAME: TUNING_APP_NAME})
def on_tuning_job(type: str | None, body: kopf.Body, **kwargs: Any) -> None:  # noqa: A002
    """A tuning's Job changed: once it has ended, its tuning gets the trials and winner."""
    tuning_actions.observe_job(type, body, kwargs["services_by_name"])
