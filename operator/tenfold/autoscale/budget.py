"""The clamp that enforces the hard cost cap (the budget math itself is tenfold.api.cost)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Clamped:
    """Replicas after the budget clamp, and how many demand wanted beyond it."""

    replicas: int
    shortfall: int

    @property
    def limited(self) -> bool:
        """True when the budget, not demand, set the replica count."""
        return self.shortfall > 0


def clamp(wanted: int, affordable: int | None) -> Clamped:
    """Cap `wanted` at what the budget pays for; the shortfall feeds BudgetLimited."""
    if affordable is None or wanted <= affordable:
        return Clamped(replicas=wanted, shortfall=0)
    return Clamped(replicas=affordable, shortfall=wanted - affordable)
