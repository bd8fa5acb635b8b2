"""Text requests with tritonclient, over HTTP or gRPC (KServe v2), for tools and tests: the
EMBEDDING rows of an embedding model, or the output a model of another task answers with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tenfold.api.enums import Task
from tenfold_runtime.builders import TEXT_INPUT, output_name


def text_input(module: Any, texts: Sequence[str], name: str = TEXT_INPUT, **options: bool) -> Any:
    """The TEXT input (or another string input: a reranker's QUERY, DOCUMENT; [n, 1] BYTES) for
    either tritonclient flavour (pass its module).

    `options` go to set_data_from_numpy (HTTP only: binary_data=False sends JSON).
    """
    array = np.array([[t.encode()] for t in texts], dtype=object)
    tensor = module.InferInput(name, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array, **options)
    return tensor


def embed_http(
    client: Any,
    model: str,
    texts: Sequence[str],
    *,
    binary: bool = True,
    task: Task = Task.EMBEDDING,
) -> np.ndarray:
    """EMBEDDING rows (or `task`'s output) for `texts`, sent as one HTTP request.

    `binary=False` sends the texts as JSON, the form the cache sidecar caches per item.
    """
    import tritonclient.http as httpclient

    tensor = text_input(httpclient, texts, binary_data=binary)
    return client.infer(model, [tensor]).as_numpy(output_name(task))


def embed_grpc(
    client: Any, model: str, texts: Sequence[str], *, task: Task = Task.EMBEDDING
) -> np.ndarray:
    """EMBEDDING rows (or `task`'s output) for `texts`, sent as one gRPC request."""
    import tritonclient.grpc as grpcclient

    result = client.infer(model, [text_input(grpcclient, texts)])
    return result.as_numpy(output_name(task))
