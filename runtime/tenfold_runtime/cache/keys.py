"""Cache keys: every part of a KServe v2 request that can change Triton's answer.

A key is `tenfold:cache:<namespace>/<service>:<model>:<build>:<kind>:<sha256>`:

- `<namespace>/<service>` is the Kubernetes namespace and name of the InferenceService
  whose sidecar wrote it (its `family`): two teams serving a model of the same name on one
  Redis never read each other's entries, and a sidecar's clean-up of older builds matches
  only its own family. Neither part can hold `/`, `:` or a glob character (both are
  Kubernetes names), so one family is never a prefix of another.
- `<build>` hashes the model identity (digest, version, served precision, runtime
  version), so a rollout starts from an empty space and can never read an older model's
  entries.
- the last hash covers the request itself, made canonical so that spelling differences
  (key order, nested vs flat data, 1 vs 1.0 for a float tensor) map to the same key:
  inputs are hashed as the tensor bytes Triton would see, not as JSON text.
"""

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from tenfold_runtime.cache.codec import NUMPY_DTYPES
from tenfold_runtime.cache.manifest import ModelIdentity

KEY_ROOT = "tenfold:cache:"
# Request parameters that tie an answer to server-side state: never cached.
STATEFUL_PARAMETERS = ("sequence_id", "sequence_start", "sequence_end", "shared_memory_region")


class NotCacheableError(ValueError):
    """The request cannot be keyed safely; it goes to Triton untouched."""


def canonical_json(value: object) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def glob_escape(text: str) -> str:
    """`text` with Redis MATCH wildcards escaped."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


@dataclass(frozen=True)
class ServiceRef:
    """The InferenceService a sidecar caches for: the tenant part of every key.

    The uid is left out on purpose: a service deleted and created again under the same
    name in the same namespace is the same tenant, and the build hash already keeps it from
    reading answers of any other model build; entries of an identical build are still
    right answers. With the uid in the key a re-created service would start cold and leave
    its predecessor's entries behind until their TTL, for no gain in correctness.
    """

    namespace: str
    name: str


def family(service: ServiceRef) -> str:
    """The prefix of every key one InferenceService writes, whatever model build wrote it."""
    return f"{KEY_ROOT}{service.namespace}/{service.name}:"


def family_pattern(prefix: str) -> str:
    """The Redis MATCH pattern of every key under `prefix` (e.g. a `family`)."""
    return glob_escape(prefix) + "*"


def space(service: ServiceRef, identity: ModelIdentity) -> str:
    """The key prefix of one exact model build of one service: a new digest or precision
    gets a new one, and so does the same build served by another service."""
    build = sha256_hex(canonical_json(asdict(identity)))[:24]
    return f"{family(service)}{identity.model_name}:{build}:"


def flatten(data: object) -> list:
    """KServe v2 allows nested (row-major) or flat tensor data; both flatten the same."""
    if not isinstance(data, list):
        return [data]
    flat: list = []
    for element in data:
        flat.extend(flatten(element) if isinstance(element, list) else [element])
    return flat


def bytes_element(value: object) -> bytes:
    """One BYTES element as Triton lays it out: 4-byte little-endian length, then bytes."""
    if not isinstance(value, str):
        raise NotCacheableError("BYTES data must be strings in JSON")
    raw = value.encode()
    return len(raw).to_bytes(4, "little") + raw


def tensor_bytes(datatype: str, data: object) -> bytes:
    """The bytes of a JSON tensor in Triton's binary layout."""
    flat = flatten(data)
    if datatype == "BYTES":
        return b"".join(bytes_element(value) for value in flat)
    dtype = NUMPY_DTYPES.get(datatype)
    if dtype is None:
        raise NotCacheableError(f"datatype {datatype!r} is not keyed")
    values = np.asarray(flat)
    # An integer tensor given floats is an error for Triton; do not alias it to ints.
    if np.dtype(dtype).kind in "iub" and values.size and values.dtype.kind not in "iub":
        raise NotCacheableError(f"non-integer data for {datatype}")
    try:
        return values.astype(dtype, casting="unsafe").tobytes()
    except (TypeError, ValueError, OverflowError) as exc:
        raise NotCacheableError(str(exc)) from exc


def canonical_inputs(inputs: object, binary_tail: bytes) -> list[dict]:
    """Each input reduced to name, type, shape, parameters and a hash of its tensor bytes.

    Binary-extension inputs take their bytes from `binary_tail` in request order, which is
    why the sort by name happens last.
    """
    if not isinstance(inputs, list) or not inputs:
        raise NotCacheableError("no inputs")
    offset = 0
    reduced = []
    for spec in inputs:
        parameters = dict(spec.get("parameters") or {})
        if any(name in parameters for name in STATEFUL_PARAMETERS):
            raise NotCacheableError("input in shared memory or stateful")
        size = parameters.pop("binary_data_size", None)
        if size is None:
            raw = tensor_bytes(str(spec.get("datatype")), spec.get("data"))
        else:
            raw = binary_tail[offset : offset + int(size)]
            offset += int(size)
        reduced.append(
            {
                "name": spec.get("name"),
                "datatype": spec.get("datatype"),
                "shape": spec.get("shape"),
                "parameters": parameters,
                "sha256": sha256_hex(raw),
            }
        )
    if offset != len(binary_tail):
        raise NotCacheableError("binary data does not match binary_data_size")
    return sorted(reduced, key=lambda item: str(item["name"]))


def canonical_outputs(outputs: object) -> list[dict] | None:
    """Requested outputs sorted by name; None (all outputs) stays distinct from a list."""
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise NotCacheableError("outputs must be a list")
    reduced = []
    for spec in outputs:
        parameters = dict(spec.get("parameters") or {})
        if "shared_memory_region" in parameters:
            raise NotCacheableError("output in shared memory")
        reduced.append({"name": spec.get("name"), "parameters": parameters})
    return sorted(reduced, key=lambda item: str(item["name"]))


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON header and the binary tail of a request (binary extension or plain JSON)."""
    try:
        size = len(body) if header_length is None else int(header_length)
        doc = json.loads(body[:size])
    except ValueError as exc:
        raise NotCacheableError(f"unparsable request: {exc}") from exc
    if not isinstance(doc, dict):
        raise NotCacheableError("request is not a JSON object")
    return doc, body[size:]


def request_key(
    space: str, url_version: str, doc: dict, binary_tail: bytes, accept_encoding: str
) -> str:
    """The whole-request key; raises NotCacheableError for requests that must not be cached.

    The request `id` is part of the key because Triton echoes it in the answer; the
    Accept-Encoding header is because Triton may compress the answer.
    """
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict) or any(p in parameters for p in STATEFUL_PARAMETERS):
        raise NotCacheableError("stateful or malformed parameters")
    try:
        canonical = {
            "url_version": url_version,
            "id": doc.get("id"),
            "inputs": canonical_inputs(doc.get("inputs"), binary_tail),
            "outputs": canonical_outputs(doc.get("outputs")),
            "parameters": parameters,
            "accept_encoding": accept_encoding,
        }
    except (AttributeError, TypeError, ValueError) as exc:
        # A malformed request goes to Triton untouched, which answers with the reason.
        raise NotCacheableError(f"malformed request: {exc}") from exc
    return f"{space}r:{sha256_hex(canonical_json(canonical))}"


def item_key(space: str, url_version: str, field: str, text: str, parameters: dict) -> str:
    """The key of one text's row of output in a batched request; `field` names the input
    and output the row links, e.g. "TEXT->EMBEDDING"."""
    canonical = {
        "url_version": url_version,
        "field": field,
        "parameters": parameters,
        "text_sha256": sha256_hex(text.encode()),
    }
    return f"{space}i:{sha256_hex(canonical_json(canonical))}"
