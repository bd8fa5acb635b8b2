"""Replica limits: [minReplicas, maxReplicas], then the hard cost cap.

The one home of both rules. The controller (the Deployment's replicas), the policy (each
scaling decision) and `tenfold render` all go through `limit_replicas`, so what runs, what
the autoscaler decides and what a reviewer sees can never disagree. The price math itself
is tenfold.api.cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenfold.api.cost import ServiceCost
from tenfold.api.enums import AutoscalingMode
from tenfold.api.spec import AutoscalingSpec, InferenceServiceSpec


@dataclass(frozen=True)
class Limited:
    """Replicas after the limits, what the bounds alone allowed, and the budget's shortfall."""

    replicas: int
    wanted: int
    """Replicas within [minReplicas, maxReplicas], before the budget."""
    shortfall: int
    """wanted - replicas: how many replicas the budget refused (BudgetLimited)."""

    @property
    def limited(self) -> bool:
        """True when the budget, not demand, set the replica count."""
        return self.shortfall > 0


def limit_replicas(wanted: int, autoscaling: AutoscalingSpec, affordable: int | None) -> Limited:
    """`wanted` within the replica bounds (in every mode but off), then capped at what the
    budget pays for (`affordable`, from api.cost.max_affordable_replicas; None: no cap)."""
    if autoscaling.mode is not AutoscalingMode.OFF:
        wanted = max(autoscaling.min_replicas, min(autoscaling.max_replicas, wanted))
    if affordable is None or wanted <= affordable:
        return Limited(replicas=wanted, wanted=wanted, shortfall=0)
    return Limited(replicas=affordable, wanted=wanted, shortfall=wanted - affordable)


def scale_target(spec: InferenceServiceSpec) -> int:
    """The replica count asked for: the scale subresource's value, else minReplicas (nobody
    has scaled the service yet)."""
    return spec.replicas if spec.replicas is not None else spec.autoscaling.min_replicas


@dataclass(frozen=True)
class ToRun:
    """What the Deployment gets: its replicas, and the extra pods a rollout may start."""

    replicas: int
    surge: int


def rollout_surge(replicas: int, affordable: int | None) -> int:
    """Extra pods a rolling update may start beside `replicas`: one while the budget pays
    for one more replica, else none. `affordable` is api.cost.ServiceCost.affordable: every
    pod of the service priced (sidecar with each replica, the managed Redis once), so the
    surge pod too is paid for in full.

    A surge pod runs (and is paid for) beside the pod it replaces until it is Ready, so at
    the cap the pods are replaced in place instead, one at a time: the budget holds in every
    state, at the price of one replica's capacity during the rollout (and, for a single
    replica at the cap, a moment with no Ready pod).
    """
    return 1 if affordable is None or replicas < affordable else 0


def replicas_to_run(spec: InferenceServiceSpec, cost: ServiceCost) -> ToRun:
    """Replicas the Deployment gets: the scale target, within the limits, and its surge.

    In auto and recommend modes the bounds apply to manual scaling too; in off mode only
    the budget does.
    """
    affordable = cost.affordable(spec.budget.hourly_cap())
    replicas = limit_replicas(scale_target(spec), spec.autoscaling, affordable).replicas
    return ToRun(replicas=replicas, surge=rollout_surge(replicas, affordable))
