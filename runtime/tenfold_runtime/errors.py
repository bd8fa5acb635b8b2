"""What `prepare` raises: the init container's exit code and termination message come from these."""

from __future__ import annotations

from tenfold_runtime import guard


class PrepareError(RuntimeError):
    """prepare cannot produce a model that honours the spec."""


class GuardRejectedError(PrepareError):
    """No precision on the ladder passed the accuracy guard."""

    def __init__(self, decision: guard.Decision) -> None:
        lines = [f"{a.precision}: {a.reason}" for a in decision.attempts]
        super().__init__("accuracy guard rejected every precision: " + "; ".join(lines))
        self.decision = decision
