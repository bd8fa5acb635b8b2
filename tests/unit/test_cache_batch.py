"""Per-item caching of batched embedding requests: split and reassemble."""

import json

import numpy as np

from tenfold_runtime.cache import batch
from tenfold_runtime.cache.codec import decode_entry, encode_entry


def embedding_request(texts, **extra) -> dict:
    shape = [len(texts), 1]
    return {
        "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": shape, "data": texts}]
    } | extra


def triton_answer(texts, dim=4) -> bytes:
    """What Triton would answer: row i is [i, i, ...] per text's index in `texts`."""
    rows = np.stack([np.full(dim, float(len(t)), dtype=np.float32) for t in texts])
    doc = {
        "model_name": "embed",
        "model_version": "1",
        "outputs": [
            {"name": "EMBEDDING", "datatype": "FP32", "shape": list(rows.shape),
             "data": rows.reshape(-1).tolist()}
        ],
    }  # fmt: skip
    return json.dumps(doc).encode()


def test_parse_accepts_flat_and_nested_texts():
    flat = batch.parse_item_request(embedding_request(["a", "b"]))
    nested = batch.parse_item_request(embedding_request([["a"], ["b"]]))
    assert flat == nested == batch.ItemRequest(("a", "b"), None, {})


def test_parse_refuses_what_must_go_whole():
    assert (
        batch.parse_item_request(embedding_request(["a"], parameters={"binary_data_output": True}))
        is None
    )
    assert batch.parse_item_request(embedding_request(["a"], outputs=[{"name": "OTHER"}])) is None
    wrong_shape = embedding_request(["a", "b"])
    wrong_shape["inputs"][0]["shape"] = [3, 1]
    assert batch.parse_item_request(wrong_shape) is None
    two_inputs = embedding_request(["a"])
    two_inputs["inputs"].append(two_inputs["inputs"][0])
    assert batch.parse_item_request(two_inputs) is None


def test_only_unique_misses_go_up_in_order():
    cached = {"b": batch.ItemValue("embed", "1", "FP32", b"")}
    assert batch.unique_misses(("c", "b", "a", "c"), cached) == ["c", "a"]


def test_split_and_reassemble_equals_the_whole_answer():
    texts = [f"text-{i}" * (i % 5 + 1) for i in range(32)]
    whole = triton_answer(texts)
    cached_texts = texts[:20]
    cached = dict(
        zip(cached_texts, batch.rows_from_response(triton_answer(cached_texts), 20), strict=True)
    )
    # Round-trip through storage, as the sidecar does.
    cached = {t: batch.decode_item(batch.encode_item(v)) for t, v in cached.items()}
    request = batch.parse_item_request(embedding_request(texts))
    missing = batch.unique_misses(request.texts, cached)
    assert len(missing) == 12
    sub = json.loads(batch.build_subrequest(missing, {}))
    assert sub["inputs"][0]["shape"] == [12, 1]
    fetched = dict(zip(missing, batch.rows_from_response(triton_answer(missing), 12), strict=True))
    rows = [cached.get(t) or fetched[t] for t in texts]
    assert json.loads(batch.assemble_response(request, rows)) == json.loads(whole)


def test_reassembled_answer_echoes_the_request_id():
    request = batch.parse_item_request(embedding_request(["a"], id="r1"))
    rows = batch.rows_from_response(triton_answer(["a"]), 1)
    assert json.loads(batch.assemble_response(request, rows))["id"] == "r1"


def test_whole_entry_round_trip_keeps_bytes_and_replayed_headers():
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "9",
               "Date": "now"}  # fmt: skip
    body, kept = decode_entry(encode_entry(b"\x00raw\xff", headers))
    assert body == b"\x00raw\xff"
    assert kept == {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": "9",
    }
