"""The InferenceTuning resource's pure parts: the Job, its summary, and what its end means."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenfold.api.catalog import load_catalog
from tenfold.api.enums import Engine, Precision
from tenfold.api.resource import InvalidSpecError, parse_inference_service, parse_tuning_spec
from tenfold.api.status import ConditionType
from tenfold.api.tuning import InferenceTuningStatus
from tenfold.constants import TUNING_APPLY_ANNOTATION
from tenfold.controller import tuning as tn
from tenfold.plan.deployment import build_pod_spec
from tenfold.plan.tuning import (
    SERVICE_FILE,
    TUNING_FILE,
    TUNING_LABEL,
    build_tuning_job,
    tuning_job_name,
    tuning_selector,
)
from tenfold.tune.search import Level, Mode, Outcome, Result, Trial, search
from tenfold.tune.space import (
    Candidate,
    SearchSpace,
    start_candidate,
    tuning_space,
    validate_space,
)
from tenfold.tune.summary import (
    MESSAGE_LIMIT,
    SummaryError,
    decode,
    encode,
    failure,
    summarize,
    trial_row,
)
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.cli import main
from tenfold_runtime.tune import request_texts
from tenfold_runtime.tune_cli import merge_tuning, read_service, read_tuning, space_from_args

ROOT = Path(__file__).resolve().parents[2]
SERVICE = yaml.safe_load((ROOT / "examples" / "minilm-cpu.yaml").read_text())
TUNING = yaml.safe_load((ROOT / "examples" / "minilm-tuning.yaml").read_text())
RECORDED = ROOT / "docs" / "data" / "tune-brute-results.json"


def _stored(document: dict[str, Any], generation: int = 3) -> dict[str, Any]:
    """A manifest as the apiserver returns it: namespace, uid and generation set."""
    stored = copy.deepcopy(document)
    stored["metadata"].update(namespace="team-a", uid=f"uid-{document['kind']}")
    stored["metadata"]["generation"] = generation
    return stored


def _trial(precision: Precision, window: int, *, accepted: bool, measured: bool = True) -> Trial:
    candidate = Candidate(precision, window, 8, 1)
    reason = None if accepted else "p95 above the SLO 200 ms (265.2 ms at best) " * 3
    return Trial(
        candidate,
        Outcome(accuracy=0.0096),
        hourly=0.0863,
        throughput=700.0 if accepted else None,
        p95_ms=26.3 if accepted else None,
        cost_per_1k=3.33e-5 if accepted else None,
        reason=reason,
        measured=measured,
    )


# -- the summary: the Job's termination message -------------------------------------------


def test_a_summary_round_trips_into_the_status_fields() -> None:
    trials = (
        _trial(Precision.FP32, 5000, accepted=False),
        _trial(Precision.MIXED, 5000, accepted=True),
    )
    result = Result(trials, trials[1], "no neighbour improves")
    fields = decode(encode(summarize(result, 36, "spec: {}\n")))
    assert fields["grid"] == 36 and fields["stopped"] == "no neighbour improves"
    assert fields["patch"] == "spec: {}\n" and fields["trialsOmitted"] == 0
    assert [t["accepted"] for t in fields["trials"]] == [False, True]
    assert fields["winner"] == fields["trials"][1]
    assert (
        fields["winner"]["precision"] == "mixed"
        and fields["winner"]["costPer1kRequests"] == 3.33e-5
    )
    assert "throughput" not in fields["trials"][0]  # unmeasured values are left out, not null
    # every field is one the CRD's status schema has (the apiserver drops any other)
    InferenceTuningStatus.model_validate(fields)


def test_a_long_search_fits_the_kubelets_limit_keeping_the_winner() -> None:
    refused = [_trial(Precision.INT8, w, accepted=False, measured=False) for w in range(100, 140)]
    slow = [_trial(Precision.FP32, w, accepted=False) for w in range(200, 240)]
    fine = [_trial(Precision.MIXED, w, accepted=True) for w in range(300, 340)]
    trials = tuple(refused + slow + fine)
    result = Result(trials, fine[0], "budget: 120 trials")
    text = encode(summarize(result, 120, "spec:\n  batching: {maxBatchSize: 8}\n"))
    assert len(text.encode()) <= MESSAGE_LIMIT
    fields = decode(text)
    assert fields["winner"]["maxQueueDelayMicroseconds"] == 300
    assert fields["trialsOmitted"] == 120 - len(fields["trials"])
    # refused-unmeasured rows go first: none of them is left while a measured row was dropped
    assert all(t["measured"] for t in fields["trials"])


def test_a_refusal_and_a_crash_log_decode_apart() -> None:
    assert decode(encode(failure("spec.serviceName is 'other'"))) == {
        "error": "spec.serviceName is 'other'"
    }
    with pytest.raises(SummaryError):
        decode("Traceback (most recent call last):\n  MemoryError")


def test_tune_writes_the_summary_the_operator_reads(tmp_path: Path) -> None:
    summary = tmp_path / "termination-log"
    code = main(
        [
            "tune",
            "-f",
            str(ROOT / "examples" / "minilm-cpu.yaml"),
            "--levels", "4,16",
            "--mode", "quick",
            "--replay", str(RECORDED),
            "--output", str(tmp_path / "out"),
            "--summary", str(summary),
        ]
    )  # fmt: skip
    assert code == 0
    fields = decode(summary.read_text())
    assert fields["winner"]["precision"] == "mixed" and fields["grid"] == 36
    assert "maxBatchSize: 8" in fields["patch"]
    # int8's rejection is one prepare: the guard's own reason, every int8 row refused
    int8 = [t for t in fields["trials"] if t["precision"] == "int8"]
    assert int8 and all("accuracy guard" in t["reason"] for t in int8)


def refusal(tmp_path: Path, *args: str) -> str:
    """`tune` on the example with `args`: it must exit 2, and its summary's error is returned."""
    summary = tmp_path / "termination-log"
    example = str(ROOT / "examples" / "minilm-cpu.yaml")
    output = str(tmp_path / "out")
    code = main(["tune", "-f", example, *args, "--output", output, "--summary", str(summary)])
    assert code == 2
    return str(decode(summary.read_text())["error"])


def test_tune_puts_bad_input_in_the_summary_too(tmp_path: Path) -> None:
    other = tmp_path / "tuning.yaml"
    other.write_text(yaml.safe_dump({**TUNING, "spec": {**TUNING["spec"], "serviceName": "bert"}}))
    assert "spec.serviceName is 'bert'" in refusal(tmp_path, "--tuning", str(other))


# -- the Job: one replica of the service, as far as measuring goes -------------------------


def test_the_job_runs_where_and_as_the_service_runs() -> None:
    service = _stored(SERVICE)
    service["spec"]["hardware"].update(
        nodeSelector={"pool": "inference"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
    )
    parsed = parse_inference_service(service)
    job = build_tuning_job(
        "minilm-cost", "team-a", 3, "uid-t", parse_tuning_spec(TUNING["spec"]), parsed.spec,
        precisions=3,
    )  # fmt: skip
    pod = job["spec"]["template"]["spec"]
    served = build_pod_spec("minilm", "team-a", parsed.spec, load_catalog(), "tenfold/runtime:x")
    for key in ("affinity", "nodeSelector", "tolerations", "securityContext"):
        assert pod[key] == served[key], key
    container = pod["containers"][0]
    assert container["resources"] == served["containers"][0]["resources"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 15 * 60 + 15 * 60  # budget + slack
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "--summary" in container["command"]
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == (
        "InferenceTuning",
        "minilm-cost",
        True,
    )
    # no instance label: a service's prune or selector can never match the tuning's objects
    labels = job["metadata"]["labels"]
    assert "app.kubernetes.io/instance" not in labels and labels[TUNING_LABEL] == "minilm-cost"


def test_job_names_fit_a_label_for_any_tuning_name() -> None:
    assert tuning_job_name("minilm-cost", 2) == "minilm-cost-tune-2"
    long = "a" * 200
    assert len(tuning_job_name(long, 12345)) <= 63
    assert tuning_job_name(long, 1) != tuning_job_name("a" * 199, 1)


def test_the_configmap_holds_what_tune_reads(tmp_path: Path) -> None:
    started = tn.start(_stored(TUNING, 2), _stored(SERVICE), default_image="tenfold/runtime:x")
    config_map, job = started.objects
    assert (config_map["kind"], job["kind"]) == ("ConfigMap", "Job")
    assert config_map["metadata"]["name"] == started.job == "minilm-cost-tune-2"
    assert started.service_generation == 3
    for key in (SERVICE_FILE, TUNING_FILE):
        (tmp_path / key).write_text(config_map["data"][key])
    service, _ = read_service(tmp_path / SERVICE_FILE)
    assert read_tuning(tmp_path / TUNING_FILE, service).service_name == "minilm"


# -- refusals before anything runs ---------------------------------------------------------


def test_a_missing_service_is_refused_and_retried() -> None:
    with pytest.raises(tn.TuningRefusedError) as refused:
        tn.start(_stored(TUNING), None, default_image="x")
    assert refused.value.reason == "ServiceNotFound" and refused.value.retry
    assert "'minilm' does not exist in namespace 'team-a'" in refused.value.message


def test_a_space_the_services_rules_refuse_names_the_field() -> None:
    tuning = _stored(TUNING)
    tuning["spec"]["searchSpace"]["maxQueueDelayMicroseconds"] = [5000, 400000]
    with pytest.raises(tn.TuningRefusedError) as refused:
        tn.start(tuning, _stored(SERVICE), default_image="x")
    assert refused.value.reason == "SearchSpaceRefused" and not refused.value.retry
    assert "spec.batching.maxQueueDelayMicroseconds" in refused.value.message


def test_an_invalid_tuning_names_the_field() -> None:
    tuning = _stored(TUNING)
    tuning["spec"]["budget"]["maxTrials"] = 0
    with pytest.raises(tn.TuningRefusedError) as refused:
        tn.start(tuning, _stored(SERVICE), default_image="x")
    assert refused.value.reason == "InvalidSpec" and "budget.maxTrials" in refused.value.message


# -- what a finished Job means -------------------------------------------------------------


def _job(kind: str, reason: str = "", message: str = "") -> dict[str, Any]:
    cond = {"type": kind, "status": "True", "reason": reason, "message": message}
    return {"status": {"conditions": [cond]}}


def _pod(**terminated: Any) -> dict[str, Any]:
    return {
        "status": {"containerStatuses": [{"name": "tune", "state": {"terminated": terminated}}]}
    }


def _reasons(found: tn.JobOutcome) -> dict[str, tuple[str, str]]:
    return {u.type.value: (u.status.value, u.reason) for u in found.conditions}


def test_a_finished_search_recommends_its_winner() -> None:
    trials = (_trial(Precision.MIXED, 5000, accepted=True),)
    message = encode(
        summarize(Result(trials, trials[0], "no neighbour improves"), 36, "spec: {}\n")
    )
    found = tn.outcome(_job("Complete"), [_pod(exitCode=0, reason="Completed", message=message)])
    assert _reasons(found)["Ready"] == ("True", "Recommended")
    assert found.fields["winner"]["throughput"] == 700.0


def test_no_winner_is_not_a_failure() -> None:
    trials = (_trial(Precision.FP32, 5000, accepted=False),)
    message = encode(summarize(Result(trials, None, "no neighbour improves"), 4, None))
    found = tn.outcome(_job("Failed", "BackoffLimitExceeded"), [_pod(exitCode=1, message=message)])
    assert _reasons(found)["Ready"] == ("False", "NoWinner")
    assert _reasons(found)["Degraded"] == ("False", "NoWinner")
    assert len(found.fields["trials"]) == 1


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], "its pod is gone"),
        ([_pod(exitCode=137, reason="OOMKilled", message="")], "OOMKilled, exit code 137"),
        ([_pod(exitCode=1, reason="Error", message="Traceback ... MemoryError")], "MemoryError"),
    ],
)
def test_a_job_that_died_is_degraded_with_what_the_cluster_recorded(
    pods: list[dict[str, Any]], expected: str
) -> None:
    job = _job("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    found = tn.outcome(job, pods)
    assert _reasons(found)["Degraded"] == ("True", "JobFailed")
    message = next(u.message for u in found.conditions if u.type is ConditionType.DEGRADED)
    assert "BackoffLimitExceeded" in message and expected in message
    assert found.fields == {}


@pytest.mark.parametrize("annotations", [None, {TUNING_APPLY_ANNOTATION: "yes"}, {"other": "x"}])
def test_apply_patches_only_a_service_that_allows_it(annotations: dict | None) -> None:
    """The operator patches with its own rights: a tuning's author who may not edit the
    service must not change it through them, so the service's editor consents."""
    tuning = parse_tuning_spec({**TUNING["spec"], "action": "apply"})
    service = _stored(SERVICE, generation=4)
    if annotations is not None:
        service["metadata"]["annotations"] = annotations
    why = tn.may_apply(tuning, {"serviceGeneration": 4}, service)
    assert why is not None and f"{TUNING_APPLY_ANNOTATION}=allowed" in why


def test_apply_leaves_a_service_edited_since_the_search_alone() -> None:
    tuning = parse_tuning_spec({**TUNING["spec"], "action": "apply"})
    service = _stored(SERVICE, generation=4)
    service["metadata"]["annotations"] = {TUNING_APPLY_ANNOTATION: "allowed"}
    assert tn.may_apply(tuning, {"serviceGeneration": 4}, service) is None
    why = tn.may_apply(tuning, {"serviceGeneration": 3}, service)
    assert why is not None and "generation 3 then, 4 now" in why
    assert tn.may_apply(tuning, {"serviceGeneration": 4}, None) == "the service no longer exists"
    patch = tn.service_patch(
        yaml.safe_dump({"apiVersion": "x", "kind": "InferenceService", "spec": {"a": 1}})
    )
    assert patch == {"spec": {"a": 1}}


def test_the_recorded_run_is_the_documented_one() -> None:
    data = json.loads(RECORDED.read_text())
    assert data["command"].startswith("tenfold-runtime tune -f examples/minilm-cpu.yaml")
    assert data["grid"] == 36 and data["mode"] == "brute"


def test_a_job_deleted_by_hand_is_reported_as_failed() -> None:
    found = tn.vanished("minilm-cost-tune-2")
    assert _reasons(found)["Degraded"] == ("True", "JobFailed")
    assert "minilm-cost-tune-2 was deleted before it ended" in found.conditions[0].message


# -- the team's own inputs -----------------------------------------------------------------


def _with_inputs(document: dict[str, Any]) -> dict[str, Any]:
    tuning = copy.deepcopy(document)
    tuning["spec"]["load"]["inputs"] = {"configMapName": "traffic", "key": "sample.txt"}
    return tuning


def test_the_job_mounts_the_teams_inputs_and_sends_them() -> None:
    started = tn.start(_with_inputs(_stored(TUNING)), _stored(SERVICE), default_image="x")
    pod = started.objects[1]["spec"]["template"]["spec"]
    (volume,) = [
        v for v in pod["volumes"] if "configMap" in v and v["configMap"]["name"] == "traffic"
    ]
    assert volume["configMap"]["items"] == [{"key": "sample.txt", "path": "inputs.txt"}]
    command = pod["containers"][0]["command"]
    assert command[command.index("--inputs") + 1] == "/etc/tenfold/tuning-inputs/inputs.txt"


def test_missing_inputs_are_refused_and_retried() -> None:
    with pytest.raises(tn.TuningRefusedError) as refused:
        tn.start(
            _with_inputs(_stored(TUNING)),
            _stored(SERVICE),
            default_image="x",
            inputs_key_found=False,
        )
    assert refused.value.reason == "InputsNotFound" and refused.value.retry
    assert "spec.load.inputs: ConfigMap 'traffic' with key 'sample.txt'" in refused.value.message


def test_requests_are_the_given_inputs_else_the_built_in_calibration_set() -> None:
    service = parse_inference_service(_stored(SERVICE))
    assert request_texts(service, ["mine"]) == ["mine"]
    assert request_texts(service) == builtin_calibration(service.spec.model.task)


def test_an_empty_inputs_file_is_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "inputs.txt"
    empty.write_text("\n  \n")
    error = refusal(tmp_path, "--inputs", str(empty))
    assert "--inputs: " in error and "no input in it" in error


def test_request_rates_are_a_set_of_positive_rates_and_reach_the_command_line() -> None:
    spec = copy.deepcopy(TUNING["spec"])
    spec["load"]["requestRates"] = [50, 50]
    with pytest.raises(InvalidSpecError, match="spec.load.requestRates: a value is listed twice"):
        parse_tuning_spec(spec)
    spec["load"]["requestRates"] = [0]
    with pytest.raises(InvalidSpecError, match="requestRates"):
        parse_tuning_spec(spec)
    spec["load"]["requestRates"] = [25, 50.5]
    tuning = parse_tuning_spec(spec)
    keys = ("mode", "objective", "levels", "rates", "measure_ms", "max_trials", "minutes")
    blank = argparse.Namespace(**dict.fromkeys(keys))
    assert merge_tuning(blank, tuning).rates == (25.0, 50.5)


# -- list-valued axes ----------------------------------------------------------------------


def test_preferred_batch_sizes_and_buckets_are_axes_of_whole_lists() -> None:
    spec = copy.deepcopy(TUNING["spec"])
    spec["searchSpace"] = {
        "precisions": ["mixed"],
        "maxQueueDelayMicroseconds": [5000],
        "maxBatchSizes": [8, 32],
        "instancesPerReplica": [1],
        "preferredBatchSizes": [[], [8, 16, 32]],
        "sequenceBuckets": [[32, 128]],
    }
    tuning = parse_tuning_spec(spec)
    service = parse_inference_service(_stored(SERVICE))
    space = tuning_space(service.spec, tuning.search_space)
    assert space.size() == 4
    specs = validate_space(SERVICE["spec"], space).specs
    small = Candidate(Precision.MIXED, 5000, 8, 1, (8, 16, 32), (32, 128))
    # sizes above the candidate's maxBatchSize are dropped, as Triton requires
    assert specs[small].batching.preferred_batch_sizes == [8]
    assert specs[small].batching.sequence_buckets == [32, 128]
    assert "preferred=[8, 16, 32] buckets=[32, 128]" in small.label()
    # the climb starts from the service's own lists when the axis holds them
    assert start_candidate(service.spec, space).preferred_batch_sizes == (8, 16, 32)
    trial = _trial(Precision.MIXED, 5000, accepted=True)
    row = decode(encode(summarize(Result((trial,), trial, "x"), 1, None)))["trials"][0]
    assert "preferredBatchSizes" not in row  # as written: not searched, not shown
    listed = Trial(small, trial.outcome, trial.hourly, 700.0, 26.0, 3e-5)
    row = decode(encode(summarize(Result((listed,), listed, "x"), 1, None)))["trials"][0]
    assert row["preferredBatchSizes"] == [8, 16, 32] and row["sequenceBuckets"] == [32, 128]
    InferenceTuningStatus.model_validate({"trials": [row]})
    spec["searchSpace"]["sequenceBuckets"] = [[32, 128], [32, 128]]
    with pytest.raises(InvalidSpecError, match="sequenceBuckets: a value is listed twice"):
        parse_tuning_spec(spec)


def test_backends_are_an_axis_each_prepared_apart() -> None:
    spec = copy.deepcopy(TUNING["spec"])
    spec["searchSpace"] = {"precisions": ["int8"], "backends": ["python", "onnxruntime"]}
    tuning = parse_tuning_spec(spec)
    service = parse_inference_service(_stored(SERVICE))
    space = tuning_space(service.spec, tuning.search_space)
    specs = validate_space(SERVICE["spec"], space).specs
    onnx = [c for c in specs if c.backend == "onnxruntime"]
    assert onnx and all(specs[c].runtime.backend == "onnxruntime" for c in onnx)
    python = next(c for c in specs if c.backend == "python")
    assert python.prepare_key() != onnx[0].prepare_key()
    assert start_candidate(service.spec, space).backend == "python"  # the service's own
    row = trial_row(Trial(onnx[0], Outcome(), 0.1, reason="no backend"))
    assert (
        decode(encode({**summarize(Result((), None, "x"), 1, None), "rows": [row]}))["trials"][0][
            "backend"
        ]
        == "onnxruntime"
    )


def test_combinations_the_rules_refuse_are_shown_not_measured() -> None:
    spec = copy.deepcopy(TUNING["spec"])
    spec["searchSpace"] = {
        "precisions": ["int8", "fp32"],
        "maxQueueDelayMicroseconds": [5000],
        "maxBatchSizes": [8],
        "instancesPerReplica": [1],
        "backends": ["python", "onnxruntime"],
        "engines": ["torch", "onnxruntime"],
    }
    service = parse_inference_service(_stored(SERVICE))
    space = tuning_space(service.spec, parse_tuning_spec(spec).search_space)
    checked = validate_space(SERVICE["spec"], space)
    # the engine runs inside the Python backend only: with the onnxruntime backend it is refused
    refused = list(checked.refused)
    assert len(refused) == 2 and all(
        (c.backend, c.engine) == ("onnxruntime", "onnxruntime") for c in refused
    )
    assert all("spec.runtime.engine" in checked.refused[c] for c in refused)
    measured: list[Candidate] = []

    def evaluate(candidate: Candidate) -> Outcome:
        measured.append(candidate)
        return Outcome(levels=(Level(4, 100.0, 20.0),))

    result = search(
        space, evaluate, lambda c: 0.1, slo_ms=200, mode=Mode.BRUTE, refused=checked.refused
    )
    assert not set(refused) & set(measured) and len(measured) == 6
    shown = [t for t in result.trials if t.candidate in checked.refused]
    assert len(shown) == 2 and not any(t.measured for t in shown)
    assert all(t.reason == checked.refused[t.candidate] for t in shown)


def test_the_command_line_keeps_the_tunings_axes_it_has_no_flag_for() -> None:
    service, _ = read_service(ROOT / "examples" / "minilm-cpu.yaml")
    tuning = read_tuning(ROOT / "examples" / "minilm-tuning-engines.yaml", service)
    keys = ("mode", "objective", "levels", "rates", "measure_ms", "max_trials", "minutes")
    flags = dict.fromkeys((*keys, "precisions", "windows_us", "batch_sizes", "instances"))
    space = space_from_args(
        service, tuning, merge_tuning(argparse.Namespace(**{**flags, "instances": (2,)}), tuning)
    )
    assert space.engines == ("torch", "onnxruntime") and space.instances == (2,)


def test_a_guard_rejection_holds_for_its_engine_only() -> None:
    space = SearchSpace(
        (Precision.INT8,), (5000,), (8,), (1,), engines=(Engine.TORCH, Engine.ONNXRUNTIME)
    )
    calls: list[Candidate] = []

    def evaluate(candidate: Candidate) -> Outcome:
        calls.append(candidate)
        if candidate.engine is Engine.TORCH:  # torch's int8 fails, onnxruntime's passes
            return Outcome(rejected="accuracy guard: drop 0.0231", precision_rejected=True)
        return Outcome(levels=(Level(4, 900.0, 20.0),), accuracy=0.0062)

    result = search(space, evaluate, lambda c: 0.1, slo_ms=200, mode=Mode.BRUTE)
    assert [c.engine for c in calls] == [Engine.TORCH, Engine.ONNXRUNTIME]
    assert result.winner is not None and result.winner.candidate.engine is Engine.ONNXRUNTIME


def test_a_long_tunings_selector_is_a_valid_label_selector() -> None:
    key, _, value = tuning_selector("t" * 200).partition("=")
    assert key == TUNING_LABEL and len(value) <= 63
    assert tuning_selector("minilm-cost") == f"{TUNING_LABEL}=minilm-cost"


def test_a_gpu_service_is_refused_until_the_gpu_image_can_tune() -> None:
    gpu = yaml.safe_load((ROOT / "examples" / "fp16-t4.yaml").read_text())
    tuning = _stored(TUNING)
    tuning["spec"]["serviceName"] = gpu["metadata"]["name"]
    tuning["spec"]["searchSpace"] = {}
    with pytest.raises(tn.TuningRefusedError) as refused:
        tn.start(tuning, _stored(gpu), default_image="x")
    assert refused.value.reason == "GpuNotSupported" and not refused.value.retry
    assert "gpuType 'T4'" in refused.value.message
