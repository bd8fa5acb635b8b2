"""Single flight: concurrent callers asking for the same key share one upstream call."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Fetch = Callable[[], Awaitable[Any]]
After = Callable[[Any], Awaitable[None]]


class SingleFlight:
    """Runs at most one fetch per key at a time; everyone asking meanwhile gets its result.

    The fetch runs in its own task, so a leader whose client goes away does not cancel
    the followers' answer. The key stays registered until `after` (the cache write) ends,
    so a request arriving between the answer and the write still joins instead of going
    upstream a second time.
    """

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._calls)

    async def do(self, key: str, fetch: Fetch, after: After | None = None) -> Any:
        """The result of `fetch()` for `key`, calling it only if no call is in flight."""
        future = self._calls.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # Nobody may be left to read an exception (all callers cancelled): mark it read.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._calls[key] = future
            task = asyncio.create_task(self._lead(key, future, fetch, after))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future)

    async def _lead(self, key: str, future: asyncio.Future, fetch: Fetch, after: After | None):
        """Run the fetch, publish its outcome, then run `after` before letting the key go."""
        try:
            try:
                value = await fetch()
            except Exception as exc:  # every caller gets the same failure
                future.set_exception(exc)
                return
            future.set_result(value)
            if after is not None:
                await after(value)
        finally:
            if not future.done():
                future.cancel()
            self._calls.pop(key, None)

    async def drain(self) -> None:
        """Wait for every fetch and write in flight (used on shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
