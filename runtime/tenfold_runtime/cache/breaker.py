"""A circuit breaker so that a dead Redis costs one timeout now and then, not per request."""

import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed until `threshold` failures in a row, then open for a cooldown that doubles
    on each failed probe (up to `max_cooldown`); after the cooldown one probe is let
    through (half-open) and its outcome closes or reopens the circuit."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 0.5,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._clock = clock
        self._failures = 0
        self._trips = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        """Whether calls are being refused (open, or half-open with a probe out)."""
        return self._open_until is not None

    def allow(self) -> bool:
        """Whether a call may go to the backend now."""
        if self._open_until is None:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        self._failures = 0
        self._trips = 0
        self._open_until = None
        self._probing = False

    def release(self) -> None:
        """A call ended without an outcome (it was cancelled): let the next call probe."""
        self._probing = False

    def record_failure(self) -> None:
        """A call failed: count it, and open the circuit on the threshold or a failed probe."""
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            cooldown = min(self._max_cooldown, self._base_cooldown * 2**self._trips)
            self._trips += 1
            self._open_until = self._clock() + cooldown
            self._probing = False
