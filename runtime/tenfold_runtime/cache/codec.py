"""How values are laid out in the backend: a small JSON header, then raw bytes.

A whole-request entry keeps Triton's exact response bytes with the headers needed to
replay them; a per-item entry keeps one embedding row as raw little-endian numbers.
"""

import json

# Response headers that change how a client reads the body; replayed on a hit.
REPLAYED_HEADERS = ("Content-Type", "Inference-Header-Content-Length", "Content-Encoding")

# KServe v2 datatypes with a fixed-width little-endian layout (Triton's binary layout too).
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


class CorruptValueError(ValueError):
    """A stored value does not decode; the caller treats it as a miss."""


def frame(meta: dict, payload: bytes) -> bytes:
    """`meta` as JSON behind a 4-byte length, then `payload`."""
    header = json.dumps(meta, separators=(",", ":")).encode()
    return len(header).to_bytes(4, "big") + header + payload


def unframe(blob: bytes) -> tuple[dict, bytes]:
    """Inverse of `frame`."""
    size = int.from_bytes(blob[:4], "big")
    try:
        meta = json.loads(blob[4 : 4 + size])
    except ValueError as exc:
        raise CorruptValueError(str(exc)) from exc
    if len(blob) < 4 + size or not isinstance(meta, dict):
        raise CorruptValueError("truncated or malformed header")
    return meta, blob[4 + size :]


def encode_entry(body: bytes, headers: dict[str, str]) -> bytes:
    """A whole response: its exact body and the replayed subset of its headers."""
    kept = {name: headers[name] for name in REPLAYED_HEADERS if name in headers}
    return frame(kept, body)


def decode_entry(blob: bytes) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a stored whole response."""
    headers, body = unframe(blob)
    return body, headers
