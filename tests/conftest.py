"""Shared test helpers: paths and example loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


def load_example(name: str) -> dict:
    """The first document of an example manifest."""
    return yaml.safe_load((EXAMPLES / name).read_text())


@pytest.fixture
def minilm_manifest() -> dict:
    """The MiniLM CPU example as a dict (a fresh copy per test)."""
    return load_example("minilm-cpu.yaml")
