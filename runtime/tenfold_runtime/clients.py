"""Embedding requests with tritonclient, over HTTP or gRPC (KServe v2), for tools and tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tenfold_runtime.builders import EMBEDDING_INPUT, EMBEDDING_OUTPUT


def text_input(module: Any, texts: Sequence[str], **options: bool) -> Any:
    """The TEXT input ([n, 1] BYTES) for either tritonclient flavour (pass its module).

    `options` go to set_data_from_numpy (HTTP only: binary_data=False sends JSON).
    """
    array = np.array([[t.encode()] for t in texts], dtype=object)
    tensor = module.InferInput(EMBEDDING_INPUT, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array, **options)
    return tensor


def embed_http(client: Any, model: str, texts: Sequence[str], *, binary: bool = True) -> np.ndarray:
    """EMBEDDING rows for `texts`, sent as one HTTP request.

    `binary=False` sends the texts as JSON, the form the cache sidecar caches per item.
    """
    import tritonclient.http as httpclient

    tensor = text_input(httpclient, texts, binary_data=binary)
    return client.infer(model, [tensor]).as_numpy(EMBEDDING_OUTPUT)


def embed_grpc(client: Any, model: str, texts: Sequence[str]) -> np.ndarray:
    """EMBEDDING rows for `texts`, sent as one gRPC request."""
    import tritonclient.grpc as grpcclient

    result = client.infer(model, [text_input(grpcclient, texts)])
    return result.as_numpy(EMBEDDING_OUTPUT)
