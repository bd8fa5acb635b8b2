"""A slow Redis, not a dead one: a TCP proxy on loopback that holds every reply for a while.

The sidecar's fault tests kill Redis (connections refused) or stop it (connections accepted,
never answered). A Redis that answers late, a busy or swapping one, or one across a congested
link, is the third failure, and the one a timeout and a circuit breaker must tell apart from
a healthy Redis: below the sidecar's Redis timeout every call succeeds and costs the delay;
above it every call times out. The proxy runs its own event loop on a thread, so it costs
the load's loop nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

CHUNK = 65536


class SlowLink:
    """`with SlowLink(target_port, delay_s) as port:` Redis, reached at `port`, replying
    `delay_s` late (requests pass at once, replies in order)."""

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port, self.delay_s = target_port, delay_s
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> int:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the slow link did not start")
        return self.port

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            # The connections still open (the sidecar's pool) end with the link.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            redis_in, redis_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_out.close()
            return
        # Cancelled only when the link stops; asyncio's stream callback reports a server
        # task that ends cancelled as an error, so the cancellation ends here.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(client_in, redis_out, 0.0),
                self._pipe(redis_in, client_out, self.delay_s),
                return_exceptions=True,
            )

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float) -> None:
        try:
            while chunk := await source.read(CHUNK):
                if delay:
                    await asyncio.sleep(delay)
                sink.write(chunk)
                await sink.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()
