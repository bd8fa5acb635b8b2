"""What can be served: admission, `tenfold validate` and prepare refuse the same combinations.

The whole matrix (task × format × backend × guard metric × cpu or GPU) is checked against an
oracle written out by hand (tests/serving_oracle.py), so that a change of the table in
api/serving.py has to be made twice to pass: once in the table, once in the oracle.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tenfold.api.catalog import load_catalog
from tenfold.api.enums import Backend, GuardMetric, ModelFormat, Precision, Task
from tenfold.api.prepare import PrepareSpec
from tenfold.api.resource import InvalidSpecError, parse_spec
from tenfold.api.rules import build_rules, serving_rules
from tenfold.api.serving import SERVING, ServedPath, ServingTable
from tenfold.cli import EXIT_INVALID, main
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold_runtime.prepare import PrepareError, check_servable
from tests.serving_oracle import (
    ENGINE_MATRIX,
    MATRIX,
    PRECISION_MATRIX,
    SERVED,
    engine_fields,
    engine_spec_of,
    expected_fields,
    precision_fields,
    precision_spec_of,
    spec_of,
)


def refused_fields(spec: dict) -> dict[str, list[str]]:
    """Field path → reasons; empty when the spec is accepted."""
    try:
        parse_spec(spec)
    except InvalidSpecError as invalid:
        found: dict[str, list[str]] = {}
        for error in invalid.errors:
            found.setdefault(error.path, []).append(error.reason)
        return found
    return {}


def test_the_table_accounts_for_every_value_once():
    assert SERVING.check_complete() == []
    assert {(str(p.task), str(p.format), str(p.backend)) for p in SERVING.served} == SERVED


def admission_mismatches(matrix, make, expected) -> list[str]:
    """The choices of `matrix` whose spec (`make`) is refused on other fields than `expected`."""
    wrong = []
    for choice in matrix:
        got = set(refused_fields(make(*choice)))
        if got != expected(*choice):
            wrong.append(f"{'/'.join(choice)}: refused on {sorted(got)}")
    return wrong


def test_admission_refuses_exactly_what_the_runtime_cannot_serve():
    wrong = admission_mismatches(MATRIX, spec_of, expected_fields)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("choice", "field", "words"),
    [
        (("generation", "huggingface", "vllm", "cosine", "L4"),
         "spec.model.task", "generation needs an LLM backend"),
        (("reranking", "huggingface", "onnxruntime", "rankAgreement", "cpu"),
         "spec.runtime.backend",
         "reranking models of format huggingface are served by backend python"),
        (("embedding", "huggingface", "python", "rankAgreement", "cpu"),
         "spec.quantization.guard.metric",
         "guard metric rankAgreement does not fit task embedding, which is guarded by cosine"),
        (("generation", "huggingface", "vllm", "cosine", "L4"),
         "spec.runtime.backend", "backend vllm is not served"),
        (("embedding", "onnx", "onnxruntime", "cosine", "cpu"),
         "spec.runtime.backend", "embedding models of format onnx are served by backend python"),
        (("embedding", "onnx", "python", "cosine", "L4"),
         "spec.model.format", "format onnx is served on gpuType cpu only: a user's ONNX file"),
        (("embedding", "torchscript", "pytorch", "cosine", "cpu"),
         "spec.runtime.backend",
         "embedding models of format torchscript are served by backend python"),
        (("classification", "torchscript", "python", "top1Agreement", "T4"),
         "spec.model.format", "format torchscript is served on gpuType cpu only"),
        (("embedding", "python", "python", "cosine", "cpu"),
         "spec.model.format", "format python is not served"),
        (("embedding", "huggingface", "tensorrt", "cosine", "T4"),
         "spec.runtime.backend", "tenfold builds no TensorRT engines"),
        (("embedding", "huggingface", "tensorrt", "cosine", "cpu"),
         "spec.runtime.backend", "the tensorrt and vllm backends need a GPU"),
        (("embedding", "huggingface", "python", "top1Agreement", "cpu"),
         "spec.quantization.guard.metric",
         "guard metric top1Agreement does not fit task embedding, which is guarded by cosine"),
        (("classification", "huggingface", "python", "cosine", "cpu"),
         "spec.quantization.guard.metric", "guarded by top1Agreement or logitMSE"),
    ],
)  # fmt: skip
def test_each_refusal_names_the_field_and_the_reason(choice, field, words):
    reasons = refused_fields(spec_of(*choice))[field]
    assert any(words in reason for reason in reasons), reasons


def prepare_spec(task: str, fmt: str, backend: str, metric: str, gpu: str) -> PrepareSpec:
    return PrepareSpec.model_validate(
        {
            "model_name": "m",
            "source": "/models/m",
            "format": fmt,
            "task": task,
            "precision": "fp32",
            "guard": {
                "metric": SERVING.guard_metric(Task(task), GuardMetric(metric) if metric else None)
            },
            "backend": backend,
            "device": "cpu" if gpu == "cpu" else "cuda",
            "config_pbtxt": 'name: "m"',
        }
    )


def disagreement(reasons: list[str], spec: PrepareSpec) -> str:
    """How prepare's refusal of `spec` differs from admission's `reasons`; empty if it does not."""
    try:
        check_servable(spec)
        refused = ""
    except PrepareError as error:
        refused = str(error)
    if bool(refused) != bool(reasons) or not all(r in refused for r in reasons):
        return f"admission {reasons}, prepare {refused!r}"
    return ""


def test_prepare_refuses_what_admission_refuses_in_the_same_words():
    wrong = []
    for choice in MATRIX:
        reasons = [r for rs in refused_fields(spec_of(*choice)).values() for r in rs]
        if problem := disagreement(reasons, prepare_spec(*choice)):
            wrong.append(f"{'/'.join(choice)}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_tenfold_validate_names_the_field(tmp_path: Path, capsys):
    document = {
        "apiVersion": "serving.tenfold.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "gen"},
        "spec": spec_of("generation", "huggingface", "vllm", "cosine", "L4"),
    }
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(document))
    assert main(["validate", "-f", str(path)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "gen: spec.model.task: task generation is not served" in err
    assert "gen: spec.runtime.backend: backend vllm is not served" in err


def cel_map(expression: str) -> dict[str, str]:
    """The message map of a generated messageExpression (`{...}[key]`)."""
    return json.loads(expression[: expression.rindex("[")])


def test_cel_messages_are_the_python_messages():
    rules = {rule.name: rule for rule in serving_rules(SERVING)}
    assert (
        rules["task-served"].cel
        == 'self.model.task in ["classification", "embedding", "reranking"]'
    )
    assert cel_map(rules["task-served"].message_expression or "") == {
        "generation": "task generation is not served: "
        + SERVING.not_served["task"][Task.GENERATION],
    }
    metric_messages = cel_map(rules["metric-fits-task"].message_expression or "")
    assert metric_messages["embedding/logitMSE"] == SERVING.metric_message(
        Task.EMBEDDING, GuardMetric.LOGIT_MSE
    )
    assert set(metric_messages) == {
        "embedding/top1Agreement",
        "embedding/logitMSE",
        "embedding/rankAgreement",
        "classification/cosine",
        "classification/rankAgreement",
        "reranking/cosine",
    }


def test_serving_rules_are_part_of_admission():
    names = {rule.name for rule in build_rules(load_catalog())}
    assert {rule.name for rule in serving_rules(SERVING)} <= names


# A table with a path that is not the product of its values: classifiers on onnxruntime only.
PARTIAL = ServingTable(
    served=(
        ServedPath(Task.EMBEDDING, ModelFormat.HUGGINGFACE, Backend.PYTHON, "x"),
        ServedPath(Task.CLASSIFICATION, ModelFormat.HUGGINGFACE, Backend.ONNXRUNTIME, "y"),
    ),
    not_served={
        "task": {Task.GENERATION: "no", Task.RERANKING: "no"},
        "format": {f: "no" for f in ModelFormat if f is not ModelFormat.HUGGINGFACE},
        "backend": {Backend.PYTORCH: "no", Backend.TENSORRT: "no", Backend.VLLM: "no"},
    },
    guard_metrics={Task.EMBEDDING: (GuardMetric.COSINE,)},
    gpu_only=frozenset(),
    precisions_not_served={},
)


def test_values_served_apart_but_not_together_are_refused_on_the_backend():
    assert PARTIAL.check_complete() == []
    (refusal,) = PARTIAL.combination_refusals(
        Task.CLASSIFICATION, ModelFormat.HUGGINGFACE, Backend.PYTHON
    )
    assert (refusal.rule, refusal.field_path) == ("combination-served", ".runtime.backend")
    assert (
        refusal.reason
        == "classification models of format huggingface are served by backend onnxruntime"
    )
    assert not PARTIAL.combination_refusals(
        Task.CLASSIFICATION, ModelFormat.HUGGINGFACE, Backend.ONNXRUNTIME
    )
    rule = next(r for r in serving_rules(PARTIAL) if r.name == "combination-served")
    assert '"classification/huggingface/onnxruntime"' in rule.cel
    assert "classification/huggingface" in cel_map(rule.message_expression or "")


def test_a_value_neither_served_nor_explained_is_reported():
    incomplete = ServingTable(
        served=PARTIAL.served,
        not_served={"task": {}, "format": {}, "backend": {}},
        guard_metrics={},
        gpu_only=frozenset(),
        precisions_not_served={},
    )
    assert "task generation: not accounted for" in incomplete.check_complete()


def test_admission_refuses_fp8_and_int4_on_every_gpu_as_precision_or_fallback():
    wrong = []
    for gpu, precision, fallback in PRECISION_MATRIX:
        got = set(refused_fields(precision_spec_of(gpu, precision, fallback)))
        want = precision_fields(gpu, precision, fallback)
        if got != want:
            wrong.append(f"{gpu} {precision} {fallback}: refused on {sorted(got)}, want {want}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("gpu", ["H200", "H100", "L4", "A100-80GB", "T4", "cpu"])
def test_fp8_and_int4_name_the_field_and_the_evidence(gpu):
    spec = precision_spec_of(gpu, "fp8", ["int4", "fp16", "fp8"])
    found = refused_fields(spec)
    assert found["spec.quantization.precision"] == [
        "precision fp8 is not served: " + SERVING.precisions_not_served[Precision.FP8]
    ]
    (fallback,) = found["spec.quantization.guard.fallback"]
    assert fallback.startswith("precision fp8 is not served: on an H200")
    assert "Requires mslk >= 1.0.0" in fallback and "'functools.partial'" in fallback


def test_prepare_refuses_fp8_and_int4_in_admissions_words():
    wrong = []
    for gpu, precision, fallback in PRECISION_MATRIX:
        admission = refused_fields(precision_spec_of(gpu, precision, fallback))
        # What the GPU's hardware lacks is the guard's to skip at run time, not prepare's.
        reasons = [r for rs in admission.values() for r in rs if "is not served" in r]
        spec = prepare_spec("embedding", "huggingface", "python", "cosine", gpu)
        guard = spec.guard.model_copy(update={"fallback": [Precision(p) for p in fallback]})
        spec = spec.model_copy(update={"precision": Precision(precision), "guard": guard})
        if problem := disagreement(reasons, spec):
            wrong.append(f"{gpu} {precision} {fallback}: {problem}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("task", "default"), [("embedding", "cosine"), ("classification", "top1Agreement")]
)
def test_a_spec_without_a_guard_metric_gets_its_tasks_default(task, default):
    spec = parse_spec(spec_of(task, "huggingface", "python", "", "cpu"))
    assert spec.quantization.guard.metric is None
    prepared = build_prepare_spec("svc", spec)
    assert prepared.guard.metric == default


def test_admission_refuses_the_onnxruntime_engine_exactly_where_it_cannot_run():
    wrong = admission_mismatches(ENGINE_MATRIX, engine_spec_of, engine_fields)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("choice", "field", "words"),
    [
        (("embedding", "huggingface", "pytorch", "cpu", "fp32"), "spec.runtime.engine",
         "engine onnxruntime runs only with runtime.backend python and model.format huggingface"),
        (("embedding", "onnx", "python", "cpu", "fp32"), "spec.runtime.engine",
         "for model.task classification or embedding"),
        (("reranking", "huggingface", "python", "cpu", "int8"), "spec.runtime.engine",
         "runs only with runtime.backend python"),
        (("embedding", "huggingface", "python", "L4", "int8"), "spec.runtime.engine",
         "engine onnxruntime is served on gpuType cpu only: the runtime images carry "
         "onnxruntime's CPU build (no onnxruntime-gpu)"),
        (("embedding", "huggingface", "python", "cpu", "fp16"), "spec.quantization.precision",
         "engine onnxruntime serves precision fp32 or int8 or mixed, not fp16: the model is "
         "exported to ONNX at fp32"),
    ],
)  # fmt: skip
def test_each_engine_refusal_names_the_field_and_the_reason(choice, field, words):
    reasons = refused_fields(engine_spec_of(*choice))[field]
    assert any(words in reason for reason in reasons), reasons


def test_the_default_engine_is_torch_and_refused_nowhere():
    spec = parse_spec(spec_of("embedding", "onnx", "python", "", "cpu"))
    assert spec.runtime.engine == "torch"
    assert build_prepare_spec("svc", spec).engine == "torch"


def test_prepare_refuses_the_engine_where_admission_does_in_the_same_words():
    wrong = []
    for task, fmt, backend, gpu, precision in ENGINE_MATRIX:
        reasons = [
            r
            for rs in refused_fields(engine_spec_of(task, fmt, backend, gpu, precision)).values()
            for r in rs
        ]
        spec = prepare_spec(task, fmt, backend, "", gpu).model_copy(
            update={"engine": "onnxruntime", "precision": Precision(precision)}
        )
        if problem := disagreement(reasons, spec):
            wrong.append(f"{task}/{fmt}/{backend}/{gpu}/{precision}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_engine_cel_messages_are_the_python_messages():
    rules = {rule.name: rule for rule in serving_rules(SERVING)}
    (engine,) = SERVING.engines
    assert cel_map(rules["engine-served"].message_expression or "") == {
        "onnxruntime": engine.path_message()
    }
    served = '"onnxruntime": ["embedding/huggingface/python", "classification/huggingface/python"]'
    assert served in rules["engine-served"].cel
    precision_messages = cel_map(rules["engine-precision"].message_expression or "")
    assert precision_messages == {
        "onnxruntime/fp16": engine.precision_message("fp16"),
        "onnxruntime/bf16": engine.precision_message("bf16"),
    }
    assert cel_map(rules["engine-needs-cpu"].message_expression or "") == {
        "onnxruntime": engine.gpu_message()
    }
