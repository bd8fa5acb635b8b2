"""prepare on the real MiniLM model: the guard rejects the naive int8 recipe."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tenfold.api.enums import Precision
from tenfold_runtime import cli, examples

from .conftest import embedding_config

pytestmark = pytest.mark.e2e


def test_naive_per_tensor_int8_is_rejected_by_the_guard(tmp_path):
    spec = examples.minilm_spec("naive", Precision.INT8, embedding_config("naive"), fallback=[])
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.model_dump_json())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tenfold_runtime.cli",
            "prepare",
            "--spec",
            str(spec_path),
            "--repository",
            str(tmp_path / "models"),
            "--int8-scheme",
            "dynamic-per-tensor",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == cli.EXIT_GUARD_REJECTED, result.stderr[-2000:]
    (attempt,) = json.loads(result.stdout)
    assert attempt["precision"] == "int8"
    assert attempt["accepted"] is False
    assert attempt["details"]["int8_scheme"] == "dynamic-per-tensor"
    # Measured here: mean cosine about 0.95 against fp32, far below the 0.99 the guard asks.
    assert attempt["accuracy"]["mean"] < 0.99
    assert "max_drop 0.0100" in attempt["reason"]
    assert not (tmp_path / "models" / "naive").exists()
