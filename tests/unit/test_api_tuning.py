"""The InferenceTuning kind (issue 15): generated, validated and documented, not reconciled."""

from __future__ import annotations

import io

import pytest
import yaml
from pydantic import ValidationError

from tenfold import constants
from tenfold.api.crd import build_tuning_crd, render_crd
from tenfold.api.enums import Precision, TuningAction, TuningMode, TuningObjective
from tenfold.api.tuning import InferenceTuningSpec
from tenfold.cli import main
from tests.conftest import REPO_ROOT

COMMITTED = REPO_ROOT / "crds" / "serving.tenfold.dev_inferencetunings.yaml"


def test_committed_tuning_crd_matches_generated() -> None:
    assert COMMITTED.read_text() == render_crd(constants.TUNING_KIND), (
        "run `make crds` and commit crds/"
    )


def test_the_tuning_crd_is_structural_and_in_tenfolds_group() -> None:
    crd = build_tuning_crd()
    assert crd["metadata"]["name"] == f"inferencetunings.{constants.API_GROUP}"
    assert crd["spec"]["names"]["shortNames"] == ["tftune"]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    for keyword in ("$ref", "anyOf", "allOf", "oneOf", "title:", "$defs"):
        assert keyword not in text
    assert schema["properties"]["spec"]["required"] == ["serviceName"]
    space = schema["properties"]["spec"]["properties"]["searchSpace"]["properties"]
    listed = {"preferredBatchSizes", "sequenceBuckets"}  # values that are lists themselves
    assert {s["x-kubernetes-list-type"] for n, s in space.items() if n not in listed} == {"set"}
    assert {space[n]["x-kubernetes-list-type"] for n in listed} == {"atomic"}


def test_a_tuning_names_only_its_service_and_gets_the_defaults() -> None:
    spec = InferenceTuningSpec.model_validate({"serviceName": "minilm"})
    assert spec.mode is TuningMode.QUICK and spec.objective is TuningObjective.COST
    assert spec.action is TuningAction.RECOMMEND
    assert spec.load.concurrency == [4, 16] and spec.search_space.precisions == []
    assert spec.budget.max_trials is None and spec.budget.minutes is None


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "serviceName"),
        ({"serviceName": "Not_A_Label"}, "serviceName"),
        ({"serviceName": "m", "budget": {"maxTrials": 0}}, "maxTrials"),
        ({"serviceName": "m", "budget": {"minutes": 0}}, "minutes"),
        ({"serviceName": "m", "load": {"concurrency": []}}, "concurrency"),
        ({"serviceName": "m", "searchSpace": {"instancesPerReplica": [17]}}, "instancesPerReplica"),
        ({"serviceName": "m", "searchSpace": {"precisions": ["int3"]}}, "precisions"),
        ({"serviceName": "m", "searchSpace": {"maxBatchSizes": [8, 8]}}, "maxBatchSizes"),
        ({"serviceName": "m", "mode": "random"}, "mode"),
        ({"serviceName": "m", "extra": 1}, "extra"),
    ],
)
def test_bad_tunings_are_refused_naming_the_field(document: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        InferenceTuningSpec.model_validate(document)


def test_the_search_space_reads_as_written() -> None:
    spec = InferenceTuningSpec.model_validate(
        {
            "serviceName": "minilm",
            "searchSpace": {
                "precisions": ["mixed", "fp32"],
                "maxQueueDelayMicroseconds": [1250, 5000],
                "maxBatchSizes": [8, 32],
                "instancesPerReplica": [1],
            },
            "mode": "brute",
            "action": "apply",
        }
    )
    assert spec.search_space.precisions == [Precision.MIXED, Precision.FP32]
    assert spec.search_space.max_queue_delay_microseconds == [1250, 5000]
    assert spec.mode is TuningMode.BRUTE and spec.action is TuningAction.APPLY


def test_tenfold_crd_prints_the_tuning_crd(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert main(["crd", "--kind", "InferenceTuning"]) == 0
    assert out.getvalue() == COMMITTED.read_text()
