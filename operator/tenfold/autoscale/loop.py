"""The autoscaler's tick: shared signals, per-service decision, actuation, status patch.

The controller's status loop (controller/status_loop.py) calls
`default_autoscaler(settings).tick` for each InferenceService every `tick_seconds`. All
services share one `SignalCache`, so Prometheus sees one round of queries per tick however
many services there are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client

from tenfold.api.catalog import GpuCatalog, load_catalog
from tenfold.api.cost import service_cost
from tenfold.api.enums import AutoscalingMode
from tenfold.api.spec import InferenceServiceSpec
from tenfold.autoscale.actuator import apply_scale, off_loop
from tenfold.autoscale.limits import scale_target
from tenfold.autoscale.policy import History, PolicyParams, decide
from tenfold.autoscale.report import Costs, Event, build_events, build_status_patch
from tenfold.autoscale.signals import (
    PrometheusSignalSource,
    ServiceKey,
    ServiceSignals,
    SignalsUnavailableError,
    availability,
)

# Through real Triton on the 2-core development machine, MiniLM (Python backend, 5 ms
# batching window) served 288 req/s at concurrency 16 per replica (docs/architecture.md,
# measured figures).
DEFAULT_CAPACITY_PER_REPLICA = 288.0

Emit = Callable[[str, str, str], None]
"""emit(type, reason, message): posts a Kubernetes Event on the InferenceService."""
Scale = Callable[[str, str, int], Awaitable[None]]
"""scale(namespace, name, replicas): writes replicas through the scale subresource."""


@dataclass(frozen=True)
class AutoscaleSettings:
    """Every autoscaler setting (read from the environment by controller.config)."""

    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    tick_seconds: float = 5.0
    max_signal_age_seconds: float = 30.0
    rate_window: str = "15s"
    query_timeout_seconds: float = 3.0
    capacity_per_replica: float = DEFAULT_CAPACITY_PER_REPLICA
    prometheus_ca_file: str | None = None


class SignalSource(Protocol):
    """Anything that reads every service's signals at one instant."""

    def fetch_all(self, at: float) -> dict[ServiceKey, ServiceSignals]:
        """Signals by (namespace, service); raises SignalsUnavailableError."""
        ...


@dataclass(frozen=True)
class Snapshot:
    """One round of signals for all services, or the error that prevented it."""

    fetched_at: float
    services: Mapping[ServiceKey, ServiceSignals] = field(default_factory=dict)
    error: str | None = None


class SignalCache:
    """Refreshes all services' signals at most once per `max_age_seconds`."""

    def __init__(
        self,
        source: SignalSource,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`max_age_seconds` is the tick: every service's timer in one tick shares a round."""
        self._source = source
        self._max_age = max_age_seconds
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    def _current(self) -> Snapshot | None:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - snapshot.fetched_at < self._max_age:
            return snapshot
        return None

    async def get(self) -> Snapshot:
        """The current round, fetching a new one if the last is a tick old."""
        async with self._lock:  # timers of many services fire together: one fetch for all
            snapshot = self._current()
            if snapshot is None:
                snapshot = await self._fetch()
                self._snapshot = snapshot
            return snapshot

    async def _fetch(self) -> Snapshot:
        at = self._clock()
        try:
            services = await off_loop(self._source.fetch_all, at)
        except SignalsUnavailableError as error:
            return Snapshot(fetched_at=at, error=str(error))
        return Snapshot(fetched_at=at, services=services)


class Autoscaler:
    """Per-process autoscaler state: settings, the shared signal cache, the stabilization
    histories of every service and the way to scale."""

    def __init__(
        self,
        settings: AutoscaleSettings,
        scale: Scale,
        source: SignalSource | None = None,
        clock: Callable[[], float] = time.time,
        catalog: GpuCatalog | None = None,
    ) -> None:
        """`source` defaults to Prometheus at settings.prometheus_url."""
        self.settings = settings
        self._scale = scale
        self._clock = clock
        self._catalog = catalog or load_catalog()
        self._signals = SignalCache(
            source
            or PrometheusSignalSource(
                settings.prometheus_url,
                settings.rate_window,
                settings.query_timeout_seconds,
                ca_file=settings.prometheus_ca_file,
            ),
            settings.tick_seconds,
            clock,
        )
        self._histories: dict[ServiceKey, History] = {}

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted service's history."""
        self._histories.pop((namespace, name), None)

    async def tick(
        self,
        namespace: str,
        name: str,
        spec: InferenceServiceSpec | Mapping[str, Any],
        status: Mapping[str, Any],
        *,
        emit: Emit,
        generation: int = 0,
        capacity_per_replica: float | None = None,
        cluster_prices: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Decide, act (mode auto), post events, and return the status patch (camelCase).

        `status` is the current status (its conditions, readyReplicas, replicas and
        lastDecision are read); an invalid `spec` raises pydantic.ValidationError.
        `cluster_prices` are the cluster's price overrides (the price ConfigMap).
        """
        # The status tick passes the spec it parsed (and keeps per version): not again here.
        model = (
            spec
            if isinstance(spec, InferenceServiceSpec)
            else InferenceServiceSpec.model_validate(dict(spec))
        )
        auto = model.autoscaling
        snapshot = await self._signals.get()
        now = self._clock()
        key = (namespace, name)
        signals = snapshot.services.get(key)
        missing = availability(signals, snapshot.error, now, self.settings.max_signal_age_seconds)
        current = scale_target(model)
        cost = service_cost(model, self._catalog, cluster_prices)
        cap = model.budget.hourly_cap()
        params = PolicyParams(
            capacity_per_replica or auto.requests_per_replica or self.settings.capacity_per_replica
        )
        decision = decide(
            auto,
            current,
            None if missing else signals,
            now=now,
            history=self._histories.get(key) or History.seeded(current, now),
            params=params,
            affordable=cost.affordable(cap),
            unavailable=missing,
            ready=status.get("readyReplicas"),
        )
        self._histories[key] = decision.history
        events = build_events(decision, current, auto.mode, status)
        applied = auto.mode is AutoscalingMode.AUTO
        if decision.act:
            try:
                await self._scale(namespace, name, decision.replicas)
            except Exception as error:  # reported, and the next tick tries again
                applied = False
                events = [Event("Warning", "ScaleFailed", f"scale to {decision.replicas}: {error}")]
        for event in events:
            emit(event.type, event.reason, event.message)
        running = status.get("replicas")
        return build_status_patch(
            decision,
            current=current,
            mode=auto.mode,
            applied=applied,
            signals=signals,
            costs=Costs(cost, current if running is None else int(running), cap),
            now=now,
            generation=generation,
            previous=status,
        )


_default: Autoscaler | None = None


def default_autoscaler(
    settings: AutoscaleSettings, api: client.CustomObjectsApi | None = None
) -> Autoscaler:
    """The process-wide autoscaler, created on the first call with `settings`, scaling through
    `api` (default: the kubernetes client's default configuration)."""
    global _default
    if _default is None:
        custom = api or client.CustomObjectsApi()

        async def scale(namespace: str, name: str, replicas: int) -> None:
            await apply_scale(custom, namespace, name, replicas)

        _default = Autoscaler(settings, scale)
    return _default
