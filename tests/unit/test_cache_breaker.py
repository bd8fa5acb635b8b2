"""The circuit breaker in front of the cache backend, on a fake clock."""

from tenfold_runtime.cache.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_probes_after_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=1.0, max_cooldown=8.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert not breaker.is_open
    breaker.record_failure()
    assert breaker.is_open and not breaker.allow()
    clock.now = 1.0
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.record_success()
    assert not breaker.is_open and breaker.allow()


def test_failed_probes_double_the_cooldown_up_to_the_cap():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=1.0, max_cooldown=3.0, clock=clock)
    breaker.record_failure()
    opened = []
    for _ in range(3):
        start = clock.now
        while not breaker.allow():
            clock.now += 0.5
        opened.append(clock.now - start)
        breaker.record_failure()
    assert opened == [1.0, 2.0, 3.0]


def test_success_resets_the_failure_count():
    breaker = CircuitBreaker(threshold=2, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert not breaker.is_open


def test_a_released_probe_lets_the_next_call_probe():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=1.0, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()
