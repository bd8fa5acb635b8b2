"""The operator's settings: every TENFOLD_* variable, read once at start and passed down.

The handlers module reads them when it loads (the timer interval is a decorator argument);
everything below receives the object instead of looking at the environment itself. kopf's
own settings are in settings.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from tenfold.autoscale.loop import AutoscaleSettings
from tenfold.plan import DEFAULT_RUNTIME_IMAGE, REDIS_IMAGE

DEFAULT_METRICS_PORT = 9102


@dataclass(frozen=True)
class OperatorConfig:
    """Operator-wide settings; the defaults suit a local run."""

    namespace: str = "tenfold-system"
    prices_configmap: str = "tenfold-gpu-prices"
    tick_seconds: float = 5.0
    # How often the children are listed to catch a deletion a watch gap hid (resync.py).
    resync_seconds: float = 20.0
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    redis_image: str = REDIS_IMAGE
    metrics_port: int = DEFAULT_METRICS_PORT
    autoscale: AutoscaleSettings = field(default_factory=AutoscaleSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OperatorConfig:
        """Settings from the environment; each variable that is unset keeps its default.

        TENFOLD_NAMESPACE, TENFOLD_PRICES_CONFIGMAP, TENFOLD_TICK_SECONDS (status refresh),
        TENFOLD_RESYNC_SECONDS (how often the children are listed),
        TENFOLD_RUNTIME_IMAGE, TENFOLD_REDIS_IMAGE, TENFOLD_METRICS_PORT; the autoscaler's
        TENFOLD_PROMETHEUS_URL,
        TENFOLD_AUTOSCALE_TICK_SECONDS (else the status tick), TENFOLD_METRICS_MAX_AGE_SECONDS,
        TENFOLD_RATE_WINDOW, TENFOLD_PROMETHEUS_TIMEOUT_SECONDS, TENFOLD_CAPACITY_PER_REPLICA,
        TENFOLD_PROMETHEUS_CA_FILE (a CA bundle for an https Prometheus; certificates are
        always verified).
        """
        base, scaling = cls(), AutoscaleSettings()
        tick = float(env.get("TENFOLD_TICK_SECONDS", base.tick_seconds))
        autoscale = AutoscaleSettings(
            prometheus_url=env.get("TENFOLD_PROMETHEUS_URL", scaling.prometheus_url),
            tick_seconds=float(env.get("TENFOLD_AUTOSCALE_TICK_SECONDS", tick)),
            max_signal_age_seconds=float(
                env.get("TENFOLD_METRICS_MAX_AGE_SECONDS", scaling.max_signal_age_seconds)
            ),
            rate_window=env.get("TENFOLD_RATE_WINDOW", scaling.rate_window),
            query_timeout_seconds=float(
                env.get("TENFOLD_PROMETHEUS_TIMEOUT_SECONDS", scaling.query_timeout_seconds)
            ),
            capacity_per_replica=float(
                env.get("TENFOLD_CAPACITY_PER_REPLICA", scaling.capacity_per_replica)
            ),
            prometheus_ca_file=env.get("TENFOLD_PROMETHEUS_CA_FILE") or None,
        )
        return cls(
            namespace=env.get("TENFOLD_NAMESPACE", base.namespace),
            prices_configmap=env.get("TENFOLD_PRICES_CONFIGMAP", base.prices_configmap),
            tick_seconds=tick,
            resync_seconds=float(env.get("TENFOLD_RESYNC_SECONDS", base.resync_seconds)),
            runtime_image=env.get("TENFOLD_RUNTIME_IMAGE", base.runtime_image),
            redis_image=env.get("TENFOLD_REDIS_IMAGE", base.redis_image),
            metrics_port=int(env.get("TENFOLD_METRICS_PORT", base.metrics_port)),
            autoscale=autoscale,
        )
