"""The search space of a service, the winner's patch, and `tenfold-runtime tune`'s bad input."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from tenfold.api.enums import Precision
from tenfold.api.resource import parse_inference_service
from tenfold.api.tuning import InferenceTuningSpec
from tenfold.tune.patch import build_patch
from tenfold.tune.space import (
    Candidate,
    SearchSpace,
    SearchSpaceError,
    candidate_spec,
    default_space,
    precision_prepare_spec,
    validate_space,
)
from tenfold_runtime.cli import main
from tenfold_runtime.tune_cli import merge_tuning, read_tuning, space_from_args

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minilm-cpu.yaml"


@pytest.fixture
def manifest() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_the_default_space_walks_the_guard_ladder_around_the_service(manifest: dict) -> None:
    space = default_space(candidate_spec(manifest["spec"], Candidate(Precision.INT8, 5000, 32, 1)))
    assert space.precisions == (Precision.INT8, Precision.MIXED, Precision.FP32)
    assert space.windows_us == (1250, 5000, 20000)
    assert space.max_batch_sizes == (8, 32)
    assert space.instances == (1, 2)
    assert len(validate_space(manifest["spec"], space).specs) == space.size() == 36


def test_a_candidate_changes_only_the_tuned_fields(manifest: dict) -> None:
    spec = candidate_spec(manifest["spec"], Candidate(Precision.FP32, 1250, 8, 2))
    assert spec.batching.max_queue_delay_microseconds == 1250
    assert spec.batching.preferred_batch_sizes == [8]  # 16 and 32 exceed the batch limit
    assert spec.runtime.instances_per_replica == 2
    assert spec.quantization.guard.fallback == [Precision.MIXED, Precision.FP32]
    assert spec.hardware.cpu == "2" and spec.autoscaling.target_p95_latency_ms == 200


def test_each_precision_is_prepared_alone(manifest: dict) -> None:
    prepare = precision_prepare_spec(
        "minilm", manifest["spec"], Candidate(Precision.INT8, 5000, 32, 1)
    )
    assert prepare.precision is Precision.INT8 and prepare.guard.fallback == []
    assert prepare.guard.max_drop == 0.01


def test_a_space_the_rules_refuse_names_the_field(manifest: dict) -> None:
    space = SearchSpace((Precision.FP32,), (5000, 300_000), (32,), (1,))
    with pytest.raises(SearchSpaceError, match=r"spec\.batching\.maxQueueDelayMicroseconds"):
        validate_space(manifest["spec"], space)
    with pytest.raises(SearchSpaceError, match=r"spec\.runtime\.instancesPerReplica"):
        validate_space(manifest["spec"], SearchSpace((Precision.FP32,), (5000,), (32,), (17,)))


def test_an_empty_space_is_refused(manifest: dict) -> None:
    with pytest.raises(SearchSpaceError, match="no value for maxBatchSize"):
        validate_space(manifest["spec"], SearchSpace((Precision.FP32,), (5000,), (), (1,)))


def test_the_patch_holds_only_what_changes(manifest: dict) -> None:
    patch = build_patch(manifest, Candidate(Precision.MIXED, 5000, 32, 2))
    assert patch == {
        "apiVersion": "serving.tenfold.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "minilm"},
        "spec": {"quantization": {"precision": "mixed"}, "runtime": {"instancesPerReplica": 2}},
    }
    assert build_patch(manifest, Candidate(Precision.INT8, 5000, 32, 1)) is None


def _tune(tmp_path: Path, *args: str) -> int:
    return main(["tune", "--output", str(tmp_path / "out"), *args])


def test_tune_refuses_a_file_that_is_not_an_inference_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert _tune(tmp_path, "-f", str(path)) == 2
    assert "expected one InferenceService, found 0" in capsys.readouterr().err


def test_tune_refuses_an_invalid_service_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(EXAMPLE.read_text().replace("maxBatchSize: 32", "maxBatchSize: 5000"))
    assert _tune(tmp_path, "-f", str(path)) == 2
    assert "spec.batching.maxBatchSize" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--windows-us", "5000,300000"], "spec.batching.maxQueueDelayMicroseconds"),
        (["--max-trials", "0"], "at least one trial"),
        (["--minutes", "0"], "above zero minutes"),
        (["--instances", ""], "no value for instancesPerReplica"),
        (["--precisions", "int3"], "--precisions"),
        (["--precisions", "int4"], "spec.quantization.precision"),
    ],
)
def test_tune_refuses_bad_spaces_and_budgets_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert _tune(tmp_path, "-f", str(EXAMPLE), *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing prepared, nothing served


def _tuning(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "tuning.yaml"
    document = {
        "apiVersion": "serving.tenfold.dev/v1alpha1",
        "kind": "InferenceTuning",
        "metadata": {"name": "t"},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"serviceName": "other"}, "spec.serviceName is 'other'"),
        ({"serviceName": "minilm", "budget": {"maxTrials": 0}}, "spec.budget.maxTrials"),
        (
            {"serviceName": "minilm", "searchSpace": {"maxQueueDelayMicroseconds": [300000]}},
            "spec.batching.maxQueueDelayMicroseconds",
        ),
    ],
)
def test_tune_refuses_a_bad_tuning_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: dict, message: str
) -> None:
    assert _tune(tmp_path, "-f", str(EXAMPLE), "--tuning", str(_tuning(tmp_path, spec))) == 2
    assert message in capsys.readouterr().err


def _args(**given: object) -> argparse.Namespace:
    """The tune command's tuned options, none given on the command line but `given`."""
    keys = ("mode", "objective", "levels", "measure_ms", "max_trials", "minutes", "precisions")
    blank = dict.fromkeys((*keys, "rates", "windows_us", "batch_sizes", "instances"))
    return argparse.Namespace(**{**blank, **given})


def test_the_command_line_wins_over_the_tuning_file() -> None:
    tuning = InferenceTuningSpec.model_validate(
        {
            "serviceName": "minilm",
            "mode": "brute",
            "searchSpace": {"instancesPerReplica": [1], "maxBatchSizes": [16]},
            "budget": {"maxTrials": 9},
        }
    )
    merged = merge_tuning(_args(batch_sizes=(8,)), tuning)
    assert merged.mode == "brute" and merged.objective == "cost" and merged.max_trials == 9
    assert merged.levels == (4, 16) and merged.measure_ms == 2000
    service = parse_inference_service(yaml.safe_load(EXAMPLE.read_text()))
    space = space_from_args(service, tuning, merged)
    default = default_space(service.spec)
    assert space.max_batch_sizes == (8,) and space.instances == (1,)
    # the axes neither gives are the service's defaults
    assert (space.precisions, space.windows_us) == (default.precisions, default.windows_us)


def test_tune_refuses_a_replay_file_that_is_not_a_results_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "results.json"
    bad.write_text("{}")
    assert _tune(tmp_path, "-f", str(EXAMPLE), "--replay", str(bad)) == 2
    assert "cannot start: KeyError('trials')" in capsys.readouterr().err


def test_the_example_tuning_reads_as_the_documented_run() -> None:
    service = parse_inference_service(yaml.safe_load(EXAMPLE.read_text()))
    tuning = read_tuning(EXAMPLE.with_name("minilm-tuning.yaml"), service)
    args = merge_tuning(_args(), tuning)
    assert space_from_args(service, tuning, args) == default_space(service.spec)
    assert (args.mode, args.levels, args.measure_ms) == ("quick", (4, 16), 2000)
    assert (args.max_trials, args.minutes) == (20, 15)
