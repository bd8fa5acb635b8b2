"""The sidecar's HTTP side: KServe v2 inference through the cache, everything else passed
through to Triton, liveness and readiness, and /metrics on its own port.

gRPC is not proxied: the Service exposes Triton's gRPC port (8001) directly, so gRPC
clients bypass the cache.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tenfold_runtime.cache import batch, keys
from tenfold_runtime.cache.codec import CorruptValueError, decode_entry, encode_entry
from tenfold_runtime.cache.flight import SingleFlight
from tenfold_runtime.cache.manifest import ModelIdentity
from tenfold_runtime.cache.metrics import CacheMetrics
from tenfold_runtime.cache.store import GuardedCache

log = logging.getLogger(__name__)
T = TypeVar("T")

# Headers that belong to one hop, never forwarded (RFC 9110 section 7.6.1), plus the ones
# aiohttp computes itself.
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
     "upgrade", "host", "content-length"}
)  # fmt: skip
UPSTREAM_TIMEOUT = ClientTimeout(total=300, sock_connect=5)
READY_TIMEOUT = ClientTimeout(total=2)
MAX_REQUEST_BYTES = 128 * 1024 * 1024


class UpstreamError(Exception):
    """Triton could not be reached or did not answer."""


@dataclass(frozen=True)
class Upstream:
    """Triton's answer: status, headers and exact body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def response(self) -> web.Response:
        """The answer as an aiohttp response, unchanged."""
        return web.Response(status=self.status, body=self.body, headers=self.headers)


def decoded(decode: Callable[[bytes], T], blob: bytes | None) -> T | None:
    """`decode(blob)`, or None for an absent or corrupt value (both are misses)."""
    if blob is None:
        return None
    try:
        return decode(blob)
    except CorruptValueError:
        return None


def forwardable(headers) -> dict[str, str]:
    """`headers` without hop-by-hop ones."""
    return {name: value for name, value in headers.items() if name.lower() not in HOP_HEADERS}


@dataclass
class Sidecar:
    """One sidecar: the service and model it caches for, its cache, and its way to Triton."""

    service: keys.ServiceRef
    identity: ModelIdentity
    upstream_url: str
    cache: GuardedCache
    metrics: CacheMetrics
    session: ClientSession | None = None
    flight: SingleFlight = field(default_factory=SingleFlight)
    space: str = field(init=False)  # the key prefix of this service's model build

    def __post_init__(self) -> None:
        self.space = keys.space(self.service, self.identity)

    async def start(self) -> None:
        """Open the connection pool to Triton, and the cache's to its backend (in the
        background: a Redis not up yet must not hold the sidecar's start).

        Bodies pass as they are: no decompression, and no Accept-Encoding of aiohttp's
        own, which would make Triton compress answers the client never asked to compress.
        """
        self.session = ClientSession(
            connector=TCPConnector(limit=256),
            timeout=UPSTREAM_TIMEOUT,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
        )
        self.cache.warm()

    async def close(self) -> None:
        """Finish writes in flight, then close Triton's pool and the backend."""
        await self.flight.drain()
        if self.session is not None:
            await self.session.close()
        await self.cache.close()

    async def forward(self, method: str, path: str, headers, body: bytes) -> Upstream:
        """Send one request to Triton and read its whole answer."""
        assert self.session is not None, "start() first"
        try:
            async with self.session.request(
                method, self.upstream_url + path, headers=forwardable(headers), data=body
            ) as response:
                payload = await response.read()
                return Upstream(response.status, forwardable(response.headers), payload)
        except (ClientError, TimeoutError) as exc:
            self.metrics.upstream_errors.inc()
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc

    # --- whole requests -------------------------------------------------------------

    async def serve_whole(
        self, request: web.Request, key: str, body: bytes
    ) -> tuple[web.Response, bool]:
        """A hit from the cache, or one Triton call per key whose 200 answer is stored;
        (answer, whether Triton was asked)."""
        (blob,) = await self.cache.get_many([key])
        entry = decoded(decode_entry, blob)
        if entry is not None:
            self.metrics.record_lookups("whole", 1, 0)
            payload, headers = entry
            return web.Response(body=payload, headers=headers), False
        self.metrics.record_lookups("whole", 0, 1)

        async def fetch() -> Upstream:
            return await self.forward("POST", request.path_qs, request.headers, body)

        async def store(answer: Upstream) -> None:
            if answer.status == 200:
                await self.cache.set_many({key: encode_entry(answer.body, answer.headers)})

        answer = await self.flight.do(key, fetch, store)
        return answer.response(), True

    # --- batched embedding requests ---------------------------------------------------

    async def serve_items(
        self, request: web.Request, item: batch.ItemRequest, url_version: str, body: bytes
    ) -> tuple[web.Response, bool]:
        """Rows from the cache, the missing ones from one Triton call; (answer, went up)."""
        item_keys = {
            text: keys.item_key(self.space, url_version, batch.ITEM_FIELD, text, item.parameters)
            for text in dict.fromkeys(item.texts)
        }
        blobs = await self.cache.get_many(list(item_keys.values()))
        values = zip(item_keys, (decoded(batch.decode_item, b) for b in blobs), strict=True)
        cached = {text: value for text, value in values if value is not None}
        missing = batch.unique_misses(item.texts, cached)
        hit_count = sum(text in cached for text in item.texts)
        self.metrics.record_lookups("item", hit_count, len(item.texts) - hit_count)
        if not missing:
            rows = [cached[text] for text in item.texts]
            return web.json_response(body=batch.assemble_response(item, rows)), False
        answer = await self._fetch_misses(request.path_qs, missing, item.parameters, item_keys)
        if answer.status != 200:
            return answer.response(), True
        if not cached and missing == list(item.texts) and item.request_id is None:
            return answer.response(), True  # the subrequest was this very request
        try:
            fetched = batch.rows_by_text(answer.body, missing)
        except batch.RowsError:
            # A 200 that is not the rows asked for: let Triton answer the original request.
            return await self._bypass(request, body), True
        rows = [cached.get(text) or fetched[text] for text in item.texts]
        return web.json_response(body=batch.assemble_response(item, rows)), True

    async def _fetch_misses(
        self, path: str, missing: list[str], parameters: dict, item_keys: dict[str, str]
    ) -> Upstream:
        """One Triton call for the missing texts (shared by identical concurrent calls);
        its rows are stored after the callers have their answer."""
        sub = batch.build_subrequest(missing, parameters)

        async def fetch() -> Upstream:
            return await self.forward("POST", path, {"Content-Type": "application/json"}, sub)

        async def store(answer: Upstream) -> None:
            if answer.status != 200:
                return
            try:
                rows = batch.rows_by_text(answer.body, missing)
            except batch.RowsError:
                return
            await self.cache.set_many({item_keys[t]: batch.encode_item(v) for t, v in rows.items()})

        # The path is in the flight key: /infer and /versions/N/infer may differ.
        flight_key = f"{self.space}f:{keys.sha256_hex(path.encode() + b' ' + sub)}"
        return await self.flight.do(flight_key, fetch, store)

    # --- handlers ---------------------------------------------------------------------

    async def on_infer(self, request: web.Request) -> web.Response:
        """POST /v2/models/{model}[/versions/{version}]/infer."""
        started = time.perf_counter()
        body = await request.read()
        result = "bypass"
        try:
            response, result = await self._infer(request, body)
        except UpstreamError as exc:
            response = web.json_response({"error": f"upstream unavailable: {exc}"}, status=502)
        self.metrics.latency.labels(result).observe(time.perf_counter() - started)
        return response

    async def _infer(self, request: web.Request, body: bytes) -> tuple[web.Response, str]:
        """Route one inference request to the item path, the whole path, or straight up."""
        model = request.match_info["model"]
        url_version = request.match_info.get("version", "")
        # Only the manifest's model has a known identity; a compressed body can't be keyed.
        if model != self.identity.model_name or "Content-Encoding" in request.headers:
            return await self._bypass(request, body), "bypass"
        header_length = request.headers.get("Inference-Header-Content-Length")
        try:
            doc, tail = keys.split_body(body, header_length)
            item = None if header_length is not None else batch.parse_item_request(doc)
            if item is None:
                accept = request.headers.get("Accept-Encoding", "")
                key = keys.request_key(self.space, url_version, doc, tail, accept)
        except keys.NotCacheableError as exc:
            log.debug("not cacheable: %s", exc)
            return await self._bypass(request, body), "bypass"
        if item is not None:
            response, went_up = await self.serve_items(request, item, url_version, body)
        else:
            response, went_up = await self.serve_whole(request, key, body)
        return response, "miss" if went_up else "hit"

    async def _bypass(self, request: web.Request, body: bytes) -> web.Response:
        """Pass a request to Triton unchanged."""
        answer = await self.forward(request.method, request.path_qs, request.headers, body)
        return answer.response()

    async def on_passthrough(self, request: web.Request) -> web.Response:
        """Anything that is not inference: health, metadata, config, repository API."""
        try:
            return await self._bypass(request, await request.read())
        except UpstreamError as exc:
            return web.json_response({"error": f"upstream unavailable: {exc}"}, status=502)

    async def on_healthz(self, _: web.Request) -> web.Response:
        """Liveness: the process answers."""
        return web.Response(text="ok")

    async def on_readyz(self, _: web.Request) -> web.Response:
        """Readiness: Triton behind the sidecar is ready (the cache is optional)."""
        assert self.session is not None, "start() first"
        try:
            async with self.session.get(
                self.upstream_url + "/v2/health/ready", timeout=READY_TIMEOUT
            ) as response:
                ready = response.status == 200
        except (ClientError, TimeoutError):
            ready = False
        return web.Response(status=200 if ready else 503, text="ready" if ready else "not ready")

    async def on_metrics(self, _: web.Request) -> web.Response:
        """Prometheus exposition of this sidecar's registry."""
        resident = getattr(self.cache.backend, "resident_bytes", None)
        if resident is not None:
            self.metrics.resident_bytes.set(resident)
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )


def build_proxy_app(sidecar: Sidecar) -> web.Application:
    """The app on the proxy port."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_get("/healthz", sidecar.on_healthz)
    app.router.add_get("/readyz", sidecar.on_readyz)
    app.router.add_post("/v2/models/{model}/infer", sidecar.on_infer)
    app.router.add_post("/v2/models/{model}/versions/{version}/infer", sidecar.on_infer)
    app.router.add_route("*", "/{tail:.*}", sidecar.on_passthrough)
    return app


def build_metrics_app(sidecar: Sidecar) -> web.Application:
    """The app on the metrics port."""
    app = web.Application()
    app.router.add_get("/metrics", sidecar.on_metrics)
    return app


async def drop_old_builds(sidecar: Sidecar, limit: int = 1_000_000) -> None:
    """Delete entries of this service's older builds (bounded); TTL covers what is left.

    Only the service's own family is scanned: other services' entries, in this namespace or
    another, are never touched, whatever model they serve.
    """
    family = keys.family(sidecar.service)
    try:
        dropped = await asyncio.wait_for(
            sidecar.cache.backend.drop_family(family, sidecar.space, limit), 60
        )
    except Exception as exc:  # a failed cleanup only leaves entries to their TTL
        sidecar.metrics.backend_errors.labels("drop").inc()
        log.warning("could not drop older builds' cache entries: %r", exc)
        return
    if dropped:
        log.info("dropped %d entries of older model builds", dropped)
