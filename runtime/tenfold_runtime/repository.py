"""The Triton model repository as `prepare` writes it: model folders swapped in whole, each
config.pbtxt with the served model's own width, and the manifest's provenance (version, time).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from tenfold.api.enums import Task
from tenfold.constants import PREPARE_MANIFEST_FILE
from tenfold_runtime import builders

VERSION_DIR = "1"


def runtime_version() -> str:
    """The installed tenfold distribution's version."""
    try:
        return metadata.version("tenfold")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def now() -> str:
    """UTC timestamp in ISO 8601, seconds precision."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_model_folder(
    repository: Path,
    name: str,
    config_text: str,
    fill_version: Callable[[Path], None],
    manifest: dict[str, object] | None = None,
) -> Path:
    """Write model folder `name` next to the final one, then swap it in (never half-written).

    `fill_version` writes the version folder's files; if it raises, nothing is swapped in.
    """
    final = repository / name
    staging = repository / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    version_dir = staging / VERSION_DIR
    version_dir.mkdir(parents=True)
    try:
        (staging / "config.pbtxt").write_text(config_text)
        fill_version(version_dir)
        if manifest is not None:
            (staging / PREPARE_MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def served_config(config_text: str, task: Task, width: int) -> str:
    """A config.pbtxt from the operator with the loaded model's own output width."""
    return builders.with_output_dims(config_text, builders.output_dims(task, width))
