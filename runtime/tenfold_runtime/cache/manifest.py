"""The model identity the cache is keyed by, read from the prepare manifest.

`tenfold-runtime prepare` writes `/models/<model>/tenfold-manifest.json`. Its key names are
read through `identity_from_manifest` alone, which accepts the spellings in `ALIASES`, so a
rename on the writer's side is a one-line change here.
"""

import json
from dataclasses import dataclass
from pathlib import Path


class ManifestError(ValueError):
    """The manifest is unreadable or lacks a field the cache key needs."""


@dataclass(frozen=True)
class ModelIdentity:
    """Everything about the served model that changes its answers."""

    model_name: str
    digest: str
    version: str
    precision: str
    runtime_version: str
    spec_digest: str = ""  # the whole prepare spec (e.g. layers kept at full precision)


# Field of ModelIdentity -> manifest keys accepted for it, first match wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "model_name": ("model_name", "name"),
    "digest": ("digest", "model_digest", "source_digest"),
    "version": ("version", "model_version"),
    "precision": ("precision_served", "precision"),
    "runtime_version": ("runtime_version",),
}
# Fields that narrow the key further when the manifest has them.
OPTIONAL: dict[str, tuple[str, ...]] = {"spec_digest": ("spec_digest",)}


def _first(doc: dict, keys: tuple[str, ...]) -> str | None:
    """The first of `keys` that `doc` holds with a non-empty value, as a string."""
    value = next((doc[key] for key in keys if doc.get(key) not in (None, "")), None)
    return None if value is None else str(value)


def identity_from_manifest(doc: dict) -> ModelIdentity:
    """The model identity in a parsed manifest; ManifestError names a missing key."""
    fields = {}
    for field, keys in ALIASES.items():
        value = _first(doc, keys)
        if value is None:
            raise ManifestError(f"manifest lacks {' or '.join(map(repr, keys))}")
        fields[field] = value
    for field, keys in OPTIONAL.items():
        fields[field] = _first(doc, keys) or ""
    return ModelIdentity(**fields)


def read_manifest(path: str | Path) -> ModelIdentity:
    """Read and parse the manifest file at `path`."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"manifest {path} is not a JSON object")
    return identity_from_manifest(doc)
