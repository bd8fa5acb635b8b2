"""The generated model.py, the manifest and the example config (pure builders)."""

import ast

import pytest

from tenfold.api.enums import Precision, Task
from tenfold_runtime import builders, examples
from tenfold_runtime.guard import Accuracy, Attempt, Decision, GuardMetric


def _model_py(**overrides):
    args = dict(
        model_name="minilm",
        task=Task.EMBEDDING,
        precision=Precision.INT8,
        max_length=256,
        device="cpu",
        runtime_version="0.1.0",
    )
    return builders.render_model_py(**(args | overrides))


def test_model_py_is_valid_python_naming_the_contract_tensors():
    source = _model_py()
    ast.parse(source)
    assert 'INPUT_NAMES = ["TEXT"]' in source
    assert 'OUTPUT_NAME = "EMBEDDING"' in source
    assert "MAX_LENGTH = 256" in source
    assert '"model.pt"' in source
    assert "class TritonPythonModel" in source


def test_model_py_of_a_classifier_answers_its_logits():
    source = _model_py(task=Task.CLASSIFICATION)
    ast.parse(source)
    assert 'OUTPUT_NAME = "LOGITS"' in source
    assert ".logits" in source and "normalize" not in source


def test_model_py_of_a_reranker_reads_query_and_document():
    source = _model_py(task=Task.RERANKING)
    ast.parse(source)
    assert 'INPUT_NAMES = ["QUERY", "DOCUMENT"]' in source
    assert 'OUTPUT_NAME = "SCORE"' in source


def test_model_py_refuses_tasks_it_does_not_serve():
    with pytest.raises(ValueError, match="generation"):
        _model_py(task=Task.GENERATION)


def test_template_fails_on_a_missing_variable():
    import jinja2

    template = builders._environment().get_template("model.py.j2")
    with pytest.raises(jinja2.UndefinedError):
        template.render(model_name="m")


@pytest.mark.parametrize(
    ("task", "width", "output"),
    [(Task.EMBEDDING, 384, "EMBEDDING"), (Task.CLASSIFICATION, 3, "LOGITS")],
)
def test_served_io_matches_the_operator_contract_with_the_models_width(task, width, output):
    inputs, outputs = builders.served_io(task, width)
    assert [builders.io_json(t) for t in inputs] == [
        {"name": "TEXT", "data_type": "TYPE_STRING", "dims": [1]}
    ]
    assert [builders.io_json(t) for t in outputs] == [
        {"name": output, "data_type": "TYPE_FP32", "dims": [width]}
    ]


def _spec(precision=Precision.INT8):
    return examples.minilm_spec("minilm", precision, examples.config_pbtxt("minilm"))


def test_spec_digest_is_stable_and_sensitive_to_the_spec():
    assert builders.spec_digest(_spec()) == builders.spec_digest(_spec())
    assert builders.spec_digest(_spec()) != builders.spec_digest(_spec(Precision.FP32))


def test_manifest_records_request_served_accuracy_and_every_attempt():
    rejected = Attempt(
        Precision.INT8, False, "drop 0.02 > 0.01", Accuracy(GuardMetric.COSINE, 0.98, 0.96, 64)
    )
    accepted = Attempt(
        Precision.MIXED, True, "drop 0.005 <= 0.01", Accuracy(GuardMetric.COSINE, 0.995, 0.99, 64)
    )
    inputs, outputs = builders.served_io(Task.EMBEDDING, 384)
    manifest = builders.build_manifest(
        spec=_spec(),
        source_digest="sha256:abc",
        decision=Decision(Precision.MIXED, (rejected, accepted)),
        runtime_version="0.1.0",
        started_at="t0",
        finished_at="t1",
        inputs=inputs,
        outputs=outputs,
    )
    assert manifest["precision_requested"] == "int8"
    assert manifest["precision_served"] == "mixed"
    assert manifest["accuracy"]["mean"] == pytest.approx(0.995)
    assert manifest["guard"]["decision"] == "accepted"
    assert [a["precision"] for a in manifest["guard"]["attempts"]] == ["int8", "mixed"]
    assert manifest["source_digest"] == "sha256:abc"
    assert manifest["io"]["outputs"][0]["dims"] == [384]


def test_example_config_is_the_operators_and_the_naive_one_has_no_batcher():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    def parsed(text: str) -> mc.ModelConfig:
        return text_format.Parse(text, mc.ModelConfig())

    naive = parsed(examples.config_pbtxt("m", max_queue_delay_microseconds=None))
    batched = parsed(
        examples.config_pbtxt(
            "m",
            max_queue_delay_microseconds=2000,
            preferred_batch_size=(8, 16),
            response_cache=True,
        )
    )
    assert not naive.HasField("dynamic_batching") and naive.max_batch_size == 32
    assert batched.dynamic_batching.max_queue_delay_microseconds == 2000
    assert list(batched.dynamic_batching.preferred_batch_size) == [8, 16]
    assert batched.response_cache.enable
    assert batched.parameters["task"].string_value == "embedding"  # the operator's own builder


def test_termination_report_is_what_the_operator_reads():
    from tenfold.controller.conditions import accuracy_status, prepared_model
    from tenfold_runtime.builders import TERMINATION_MESSAGE_LIMIT, termination_report

    manifest = {
        "precision_requested": "int8",
        "precision_served": "mixed",
        "accuracy": {"metric": "cosine", "mean": 0.9905, "min": 0.9859, "drop": 0.0095},
        "guard": {
            "attempts": [
                {"precision": "int8", "accepted": False, "reason": "drop 0.0225 > 0.0100"},
                {"precision": "mixed", "accepted": True, "reason": "drop 0.0095 <= 0.0100"},
            ]
        },
    }
    message = termination_report(manifest)
    assert len(message) <= TERMINATION_MESSAGE_LIMIT
    pod = {
        "status": {
            "initContainerStatuses": [
                {"name": "prepare", "state": {"terminated": {"exitCode": 0, "message": message}}}
            ]
        }
    }
    report = prepared_model([pod])
    assert report["precision_served"] == "mixed"
    status = accuracy_status(report)
    assert status["mean"] == 0.9905
    assert status["decision"].startswith("int8 rejected: drop 0.0225")
