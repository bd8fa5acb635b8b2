"""The tenfold CLI: validate and crd (render is covered with the plan)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import yaml

from tenfold import cli
from tenfold.cli import main
from tests.conftest import EXAMPLES, REPO_ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m tenfold.cli` as users run the console script."""
    return subprocess.run(
        [sys.executable, "-m", "tenfold.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )


def test_validate_accepts_every_valid_example():
    for example in EXAMPLES.glob("*.yaml"):
        if example.name.startswith("invalid"):
            continue
        result = run_cli("validate", "-f", str(example))
        assert result.returncode == 0, result.stderr


def test_validate_rejects_invalid_example_naming_fields():
    result = run_cli("validate", "-f", str(EXAMPLES / "invalid-bf16-on-t4.yaml"))
    assert result.returncode == 1
    assert "spec.quantization.precision: precision bf16 is not supported on gpuType T4" in (
        result.stderr
    )
    assert "spec.budget.maxCostPerHour" in result.stderr


def test_validate_reports_missing_file():
    assert run_cli("validate", "-f", "no-such-file.yaml").returncode == 2


def test_crd_command_prints_the_crd(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["crd"]) == 0
    assert "kind: CustomResourceDefinition" in out.getvalue()


def test_prepare_spec_prints_what_the_init_container_reads():
    from tenfold.api.prepare import PrepareSpec

    result = run_cli("prepare-spec", "-f", str(EXAMPLES / "minilm-onnx-int8.yaml"))
    assert result.returncode == 0, result.stderr
    spec = PrepareSpec.model_validate_json(result.stdout)
    assert (spec.model_name, spec.backend.value) == ("minilm-onnx", "onnxruntime")
    assert set(spec.step_configs) == {"minilm-onnx-tokenizer", "minilm-onnx-encoder"}


def test_prepare_spec_names_bad_fields():
    result = run_cli("prepare-spec", "-f", str(EXAMPLES / "invalid-bf16-on-t4.yaml"))
    assert result.returncode == 1
    assert "spec.quantization.precision" in result.stderr


def test_replicas_draw_distinct_priorities_unless_one_is_given():
    from tenfold.controller.settings import peering_priority

    # kopf pauses every operator of a peering when the highest priority is shared.
    assert peering_priority(None, "tenfold", draw=lambda n: 41) == 42
    drawn = {peering_priority(None, "tenfold") for _ in range(50)}
    assert len(drawn) > 45 and min(drawn) >= 1
    assert peering_priority(7, "tenfold") == 7
    assert peering_priority(None, None) == 0  # standalone: no peers to rank against


def test_validate_names_the_bad_field_of_an_inference_tuning(tmp_path):
    document = yaml.safe_load((EXAMPLES / "minilm-tuning.yaml").read_text())
    document["spec"]["mode"] = "fastest"
    path = tmp_path / "tuning.yaml"
    path.write_text(yaml.safe_dump(document))
    result = run_cli("validate", "-f", str(path))
    assert result.returncode == 1
    assert "minilm-cost: spec.mode:" in result.stderr


def test_tenfold_tune_is_the_runtimes_tune(monkeypatch: pytest.MonkeyPatch) -> None:
    # through the console script, as a pipeline runs it: the runtime's own refusal comes back
    found = subprocess.run(
        [sys.executable, "-m", "tenfold.cli", "tune", "-f", str(EXAMPLES / "minilm-cpu.yaml"),
         "--max-trials", "0", "--output", "/tmp/tenfold-tune-cli-test"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert found.returncode == 2
    assert "tune: --max-trials/--minutes:" in found.stderr
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    assert cli.main(["tune", "-f", "x.yaml"]) == cli.EXIT_USAGE


def test_run_refuses_a_peering_for_a_namespaced_operator():
    # The status loop reads the cluster-wide peering only; the chart refuses this too.
    found = run_cli("run", "--peering=ha", "--namespace=team-a")
    assert found.returncode == 2
    assert "--peering needs a cluster-wide operator" in found.stderr
