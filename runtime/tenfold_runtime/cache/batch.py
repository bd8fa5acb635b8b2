"""Per-item caching of batched embedding requests: split, fetch the misses, reassemble.

A JSON request whose only input is `TEXT` (BYTES, shape [N,1]) and whose only output is
`EMBEDDING` is cached per text: the cached rows are read, the missing texts go to Triton
as one smaller request, and the answer is rebuilt in the original order with the same
JSON shape Triton writes. Binary-extension requests never take this path.
"""

import json
from dataclasses import dataclass

import numpy as np

from tenfold.api.enums import Task
from tenfold.api.triton_io import TASK_IO
from tenfold_runtime.cache.codec import NUMPY_DTYPES, CorruptValueError, frame, unframe
from tenfold_runtime.cache.keys import STATEFUL_PARAMETERS

# The tensor names prepare gives every embedding model, read from the contract itself:
# tenfold_runtime.builders imports tritonclient's protobufs, 14 MiB of the sidecar's RSS.
ITEM_INPUT = TASK_IO[Task.EMBEDDING].inputs[0].name
ITEM_OUTPUT = TASK_IO[Task.EMBEDDING].outputs[0].name
ITEM_FIELD = f"{ITEM_INPUT}->{ITEM_OUTPUT}"


@dataclass(frozen=True)
class ItemRequest:
    """A batched embedding request, reduced to what the per-item path needs."""

    texts: tuple[str, ...]
    request_id: str | None
    parameters: dict


@dataclass(frozen=True)
class ItemValue:
    """One text's output row and what Triton said about the model that made it."""

    model_name: str
    model_version: str
    datatype: str
    row: bytes  # little-endian, NUMPY_DTYPES[datatype]


def _plain_json_output(outputs: object) -> bool:
    """Whether the request asks for exactly the embedding output, as JSON."""
    if outputs is None:
        return True
    if not isinstance(outputs, list) or len(outputs) != 1 or not isinstance(outputs[0], dict):
        return False
    parameters = outputs[0].get("parameters") or {}
    return outputs[0].get("name") == ITEM_OUTPUT and parameters in ({}, {"binary_data": False})


def parse_item_request(doc: dict) -> ItemRequest | None:
    """The per-item view of a parsed JSON request, or None if it must go whole."""
    inputs = doc.get("inputs")
    parameters = doc.get("parameters") or {}
    if not (isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict)):
        return None
    spec = inputs[0]
    shape = spec.get("shape")
    if (
        spec.get("name") != ITEM_INPUT
        or spec.get("datatype") != "BYTES"
        or spec.get("parameters")
        or not (isinstance(shape, list) and len(shape) == 2 and shape[1] == 1)
        or not _plain_json_output(doc.get("outputs"))
        or not isinstance(parameters, dict)
        or parameters.get("binary_data_output")
        or any(name in parameters for name in STATEFUL_PARAMETERS)
    ):
        return None
    texts = _flat_texts(spec.get("data"))
    if texts is None or len(texts) != shape[0] or not texts:
        return None
    request_id = doc.get("id")
    return ItemRequest(tuple(texts), None if request_id is None else str(request_id), parameters)


def _flat_texts(data: object) -> list[str] | None:
    """[N,1] text data, given flat or nested, as a flat list; None if it is anything else."""
    if not isinstance(data, list):
        return None
    flat = [row[0] if isinstance(row, list) and len(row) == 1 else row for row in data]
    return flat if all(isinstance(text, str) for text in flat) else None


def unique_misses(texts: tuple[str, ...], cached: dict[str, ItemValue]) -> list[str]:
    """Texts without a cached row, each once, in order of first appearance."""
    return list(dict.fromkeys(text for text in texts if text not in cached))


def build_subrequest(texts: list[str], parameters: dict) -> bytes:
    """The request for the missing texts only, shape [M,1]."""
    doc: dict = {
        "inputs": [
            {"name": ITEM_INPUT, "datatype": "BYTES", "shape": [len(texts), 1], "data": texts}
        ],
        "outputs": [{"name": ITEM_OUTPUT}],
    }
    if parameters:
        doc["parameters"] = parameters
    return json.dumps(doc, separators=(",", ":")).encode()


class RowsError(ValueError):
    """Triton's answer is not `count` rows of the embedding output."""


def rows_by_text(body: bytes, texts: list[str]) -> dict[str, ItemValue]:
    """Triton's answer to the subrequest for `texts`, one row per text."""
    rows = rows_from_response(body, len(texts))
    return dict(zip(texts, rows, strict=True))


def rows_from_response(body: bytes, count: int) -> list[ItemValue]:
    """Split Triton's answer to a subrequest into `count` rows; RowsError if it won't."""
    try:
        doc = json.loads(body)
        output = next(out for out in doc["outputs"] if out["name"] == ITEM_OUTPUT)
        dtype = NUMPY_DTYPES[output["datatype"]]
        matrix = np.asarray(output["data"], dtype=dtype).reshape(output["shape"])
        name, version = str(doc["model_name"]), str(doc.get("model_version", ""))
    except (ValueError, KeyError, TypeError, StopIteration) as exc:
        raise RowsError(f"not an {ITEM_OUTPUT} answer: {exc!r}") from exc
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise RowsError(f"{count} texts sent, shape {list(matrix.shape)} returned")
    return [ItemValue(name, version, output["datatype"], row.tobytes()) for row in matrix]


def encode_item(value: ItemValue) -> bytes:
    """One row as stored in the backend."""
    meta = {"m": value.model_name, "v": value.model_version, "t": value.datatype}
    return frame(meta, value.row)


def decode_item(blob: bytes) -> ItemValue:
    """Inverse of `encode_item`; CorruptValueError if the blob is not a row."""
    meta, row = unframe(blob)
    try:
        return ItemValue(str(meta["m"]), str(meta["v"]), str(meta["t"]), row)
    except KeyError as exc:
        raise CorruptValueError(f"item lacks {exc}") from exc


def assemble_response(request: ItemRequest, rows: list[ItemValue]) -> bytes:
    """Triton's JSON answer for the whole request, rows in request order."""
    first = rows[0]
    dtype = NUMPY_DTYPES[first.datatype]
    matrix = np.stack([np.frombuffer(row.row, dtype=dtype) for row in rows])
    doc: dict = {}
    if request.request_id is not None:
        doc["id"] = request.request_id
    doc["model_name"] = first.model_name
    doc["model_version"] = first.model_version
    doc["outputs"] = [
        {
            "name": ITEM_OUTPUT,
            "datatype": first.datatype,
            "shape": list(matrix.shape),
            "data": matrix.reshape(-1).tolist(),
        }
    ]
    return json.dumps(doc, separators=(",", ":")).encode()
