"""Real Triton fixtures, shared by every e2e test that needs a served model.

`minilm_repository` prepares the packaged MiniLM model once per session with the runtime's own
`prepare` (the init container's code path) into a fresh folder:

    minilm-fp32   fp32, dynamic batching window of BATCH_WINDOW_US
    minilm-int8   int8 requested, guarded (default max_drop 0.01: the guard may serve mixed)

`triton` starts the real tritonserver from the nvidia-pytriton wheel on that repository with
the container command the operator renders (free loopback ports) and stops it at the end.
`http_client` / `grpc_client` are tritonclient clients on it; `embed_http` / `embed_grpc`
(from tenfold_runtime.clients) send texts and return the EMBEDDING rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenfold.api.enums import Precision
from tenfold_runtime import examples
from tenfold_runtime.clients import embed_grpc, embed_http, text_input
from tenfold_runtime.local import TritonHandle, container_command, start_triton
from tenfold_runtime.prepare import prepare

FP32_MODEL = "minilm-fp32"
INT8_MODEL = "minilm-int8"
# Wide enough that a burst from 16 client threads lands in one window even when CI's two
# cores schedule those threads slowly (5 ms let some runs execute every request alone).
BATCH_WINDOW_US = 50_000
PREFERRED_BATCH_SIZES = (4, 8)
MAX_BATCH_SIZE = 32
RESPONSE_CACHE_BYTES = 16 * 1024 * 1024


def embedding_config(name: str, **overrides: object) -> str:
    """The config.pbtxt the operator would render for an embedding model under test."""
    settings: dict[str, object] = {
        "max_batch_size": MAX_BATCH_SIZE,
        "max_queue_delay_microseconds": BATCH_WINDOW_US,
        "preferred_batch_size": PREFERRED_BATCH_SIZES,
    }
    return examples.config_pbtxt(name, **(settings | overrides))  # type: ignore[arg-type]


@dataclass(frozen=True)
class PreparedRepository:
    """A model repository written by `prepare`, with each model's manifest."""

    path: Path
    manifests: dict[str, dict]


@pytest.fixture(scope="session")
def minilm_repository(tmp_path_factory: pytest.TempPathFactory) -> PreparedRepository:
    """MiniLM prepared at fp32 and at guarded int8, once per session."""
    root = tmp_path_factory.mktemp("models")
    manifests = {
        name: prepare(examples.minilm_spec(name, precision, embedding_config(name)), root)
        for name, precision in ((FP32_MODEL, Precision.FP32), (INT8_MODEL, Precision.INT8))
    }
    return PreparedRepository(root, manifests)


@pytest.fixture(scope="session")
def triton(
    minilm_repository: PreparedRepository, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonHandle]:
    """tritonserver serving `minilm_repository`, started as the Deployment's command."""
    log_path = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    handle = start_triton(
        minilm_repository.path,
        command=container_command(cache_bytes=RESPONSE_CACHE_BYTES),
        log_path=log_path,
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def http_client(triton: TritonHandle) -> Iterator[object]:
    """A tritonclient HTTP client, closed after the test (so shutdown is not held up)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(triton.http_url, concurrency=16)
    yield client
    client.close()


@pytest.fixture
def grpc_client(triton: TritonHandle) -> Iterator[object]:
    """A tritonclient gRPC client, closed after the test."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton.grpc_url)
    yield client
    client.close()


def model_counts(client: object, model: str) -> tuple[int, int]:
    """(inference_count, execution_count) from Triton's statistics for `model`."""
    stats = client.get_inference_statistics(model)["model_stats"][0]  # type: ignore[attr-defined]
    return int(stats["inference_count"]), int(stats["execution_count"])


def counts_after(
    client: object, model: str, before: tuple[int, int], requests: int, timeout: float = 10.0
) -> tuple[int, int]:
    """Inferences and executions since `before`, once all `requests` are counted.

    Triton records statistics just after it sends a response, so they may lag the answers.
    """
    deadline = time.monotonic() + timeout
    while True:
        inferences, executions = model_counts(client, model)
        if inferences - before[0] >= requests or time.monotonic() > deadline:
            return inferences - before[0], executions - before[1]
        time.sleep(0.05)


__all__ = ["embed_grpc", "embed_http", "text_input"]  # re-exported for the test modules
