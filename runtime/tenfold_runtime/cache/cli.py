"""`tenfold-runtime cache`: parse the flags the operator renders and run the sidecar."""

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web
from pydantic import ValidationError

from tenfold.api.enums import CacheMode
from tenfold.api.sidecar import SidecarSettings
from tenfold_runtime.cache.keys import ServiceRef
from tenfold_runtime.cache.manifest import ManifestError, ModelIdentity, read_manifest
from tenfold_runtime.cache.metrics import CacheMetrics
from tenfold_runtime.cache.proxy import (
    Sidecar,
    build_metrics_app,
    build_proxy_app,
    drop_old_builds,
)
from tenfold_runtime.cache.store import (
    Backend,
    GuardedCache,
    MemoryBackend,
    RedisBackend,
    RedisCredentials,
)

log = logging.getLogger("tenfold_runtime.cache")
FIELDS = SidecarSettings.model_fields


def build_parser() -> argparse.ArgumentParser:
    """Flags named after SidecarSettings, exactly as `SidecarSettings.to_args()` renders."""
    parser = argparse.ArgumentParser(
        prog="tenfold-runtime cache",
        description="Versioned KServe v2 HTTP cache in front of Triton (gRPC goes to Triton "
        "directly, uncached).",
    )
    parser.add_argument("--listen", default=FIELDS["listen"].default)
    parser.add_argument("--upstream", default=FIELDS["upstream"].default)
    parser.add_argument("--metrics-listen", default=FIELDS["metrics_listen"].default)
    parser.add_argument(
        "--backend", choices=[CacheMode.MEMORY.value, CacheMode.REDIS.value],
        default=FIELDS["backend"].default.value,
    )  # fmt: skip
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--ttl-seconds", type=int, default=FIELDS["ttl_seconds"].default)
    parser.add_argument("--max-bytes", type=int, default=FIELDS["max_bytes"].default)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--service-namespace", required=True)
    parser.add_argument("--service-name", required=True)
    parser.add_argument("--redis-timeout-ms", type=int, default=FIELDS["redis_timeout_ms"].default)
    return parser


def parse_settings(argv: list[str]) -> SidecarSettings:
    """SidecarSettings from command-line flags; exits with a usage error if they are bad."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = SidecarSettings(**vars(args))
    except ValidationError as exc:
        parser.error(str(exc))
    if settings.backend == CacheMode.REDIS and not settings.redis_url:
        parser.error("--backend=redis needs --redis-url")
    return settings


def split_hostport(address: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def build_backend(settings: SidecarSettings) -> Backend:
    """The backend the settings name."""
    if settings.backend == CacheMode.REDIS:
        if not settings.redis_url:
            raise ValueError("--backend=redis needs --redis-url")
        timeout_s = settings.redis_timeout_ms / 1000
        credentials = RedisCredentials.from_env(os.environ)
        return RedisBackend(
            settings.redis_url, settings.ttl_seconds, timeout_s, credentials=credentials
        )
    return MemoryBackend(settings.max_bytes, settings.ttl_seconds)


def build_sidecar(settings: SidecarSettings, identity: ModelIdentity) -> Sidecar:
    """A sidecar for one model build of one InferenceService."""
    metrics = CacheMetrics()
    cache = GuardedCache(build_backend(settings), settings.redis_timeout_ms / 1000, metrics)
    service = ServiceRef(settings.service_namespace, settings.service_name)
    return Sidecar(service, identity, settings.upstream.rstrip("/"), cache, metrics)


async def serve(settings: SidecarSettings, identity: ModelIdentity) -> None:
    """Run the proxy and metrics servers until SIGTERM or SIGINT."""
    sidecar = build_sidecar(settings, identity)
    await sidecar.start()
    # No access log: one log line per request would cost more than a cache hit.
    runners = [
        web.AppRunner(build_proxy_app(sidecar), access_log=None),
        web.AppRunner(build_metrics_app(sidecar), access_log=None),
    ]
    for runner, address in zip(runners, (settings.listen, settings.metrics_listen), strict=True):
        await runner.setup()
        await web.TCPSite(runner, *split_hostport(address)).start()
    cleanup = asyncio.create_task(drop_old_builds(sidecar))
    log.info(
        "cache sidecar on %s -> %s, backend %s, keys under %s",
        settings.listen, settings.upstream, settings.backend.value, sidecar.space,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()
    cleanup.cancel()
    await sidecar.close()


def main(argv: list[str]) -> int:
    """Entry point of `tenfold-runtime cache`; returns the exit status."""
    settings = parse_settings(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        identity = read_manifest(settings.manifest)
    except ManifestError as exc:
        print(f"tenfold-runtime cache: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(settings, identity))
    return 0
