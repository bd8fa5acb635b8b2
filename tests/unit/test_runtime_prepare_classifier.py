"""prepare serves sequence classifiers and cross-encoder rerankers, each with its contract.

A BertForSequenceClassification 48 wide with 3 labels (logits out, as wide as its labels,
guarded by top-1) and a one-label one 40 wide (a reranker: a score per query-document pair,
guarded by rank agreement) are built here and saved with save_pretrained, then prepared by
the real loading, guarding and writing code from the spec and config the operator renders
for `task: classification` and `task: reranking` with no guard metric named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tenfold.api.enums import GuardMetric, Precision, Task
from tenfold.api.prepare import PrepareSpec, encoder_model_name
from tenfold_runtime import builders, export, guard
from tenfold_runtime.calibration import builtin_calibration, query_group
from tenfold_runtime.modeling import load_model
from tenfold_runtime.prepare import PrepareError, prepare
from tests.small_models import (
    operator_prepare_spec,
    save_small_classifier,
    save_small_reranker,
    served_dims,
    written_outputs,
)

HIDDEN, LABELS = 48, 3
RERANKER_HIDDEN = 40


@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-wide BERT classifier with 3 labels and its tokenizer, saved the Hugging Face way."""
    return save_small_classifier(tmp_path_factory.mktemp("cls") / "bert48x3", HIDDEN, LABELS)


def prepare_int8(
    source: Path, tmp_path: Path, task: str, samples: int, backend: str = "python"
) -> tuple[PrepareSpec, dict[str, Any]]:
    """The operator's spec for `task` at int8 (no metric named), and prepare's manifest."""
    spec = operator_prepare_spec(
        source,
        backend,
        tmp_path / "models",
        task=task,
        quantization={"precision": "int8", "guard": {"calibrationSamples": samples}},
    )
    return spec, prepare(spec, cache_dir=tmp_path / "cache")


def test_the_loaded_classifier_answers_one_logit_per_label(small_classifier: Path):
    loaded = load_model(small_classifier, Task.CLASSIFICATION)
    assert (loaded.hidden_size, loaded.output_width) == (HIDDEN, LABELS)
    texts = builtin_calibration(Task.CLASSIFICATION)[:5]
    logits = loaded.outputs(loaded.model, texts)
    assert logits.shape == (5, LABELS) and logits.dtype == np.float32
    # Distinct inputs, distinct answers: the tokenizer knows the calibration words.
    assert len({tuple(np.round(row, 5)) for row in logits}) == 5


def test_prepare_writes_logits_as_wide_as_the_labels_guarded_by_top1(
    small_classifier: Path, tmp_path: Path
):
    spec, manifest = prepare_int8(small_classifier, tmp_path, "classification", 32)
    assert spec.guard.metric is GuardMetric.TOP1_AGREEMENT  # the task's default
    assert served_dims(spec.config_pbtxt) == {"LOGITS": [-1]}

    model_dir = tmp_path / "models" / "small"
    output = [{"name": "LOGITS", "data_type": "TYPE_FP32", "dims": [LABELS]}]
    assert written_outputs(model_dir, manifest) == [{"LOGITS": [LABELS]}, output, output]
    guard = manifest["guard"]
    assert guard["metric"] == "top1Agreement"  # type: ignore[index]
    for attempt in guard["attempts"]:  # type: ignore[index]
        if attempt["accuracy"] is not None:
            assert attempt["accuracy"]["metric"] == "top1Agreement"
            assert attempt["accuracy"]["samples"] == 16  # the held-out half of 32
    # What is written is the module the guard accepted: it answers the same logits.
    served = torch.load(model_dir / "1" / builders.ARTEFACT_FILE, weights_only=False)
    loaded = load_model(small_classifier, Task.CLASSIFICATION)
    texts = builtin_calibration(Task.CLASSIFICATION)[1:32:2]  # held out: every other one
    reference = loaded.outputs(loaded.model, texts)
    agreement = np.mean(reference.argmax(1) == loaded.outputs(served, texts).argmax(1))
    assert agreement == pytest.approx(manifest["accuracy"]["mean"])  # type: ignore[index]
    assert 1 - agreement <= spec.guard.max_drop + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_exported_classifier_serves_logits_behind_the_tokenizer_ensemble(
    small_classifier: Path, tmp_path: Path, backend: str
):
    _, manifest = prepare_int8(small_classifier, tmp_path, "classification", 32, backend)

    output = [{"name": "LOGITS", "data_type": "TYPE_FP32", "dims": [LABELS]}]
    written = written_outputs(tmp_path / "models" / "small", manifest)
    assert written == [{"LOGITS": [LABELS]}, output, output]
    encoder_config = tmp_path / "models" / encoder_model_name("small") / "config.pbtxt"
    assert served_dims(encoder_config.read_text()) == {"LOGITS__0": [LABELS]}
    # The artefact written is the one the guard measured: run it as the ensemble feeds it.
    artefact = manifest["artefact"]
    path = tmp_path / "models" / artefact["file"]  # type: ignore[index]
    run = (
        export.torchscript_runner(path, "cpu")
        if backend == "pytorch"
        else export.onnx_runner(path, Task.CLASSIFICATION)
    )
    loaded = load_model(small_classifier, Task.CLASSIFICATION)
    texts = builtin_calibration(Task.CLASSIFICATION)[1:32:2]
    served = export.artefact_outputs(
        run,
        loaded.tokenizer,
        texts,
        buckets=artefact["sequence_buckets"],  # type: ignore[index]
        max_length=loaded.max_length,
    )
    assert served.shape == (16, LABELS)
    agreement = np.mean(loaded.outputs(loaded.model, texts).argmax(1) == served.argmax(1))
    assert agreement == pytest.approx(manifest["accuracy"]["mean"])  # type: ignore[index]
    assert manifest["guard"]["metric"] == "top1Agreement"  # type: ignore[index]


@pytest.fixture(scope="module")
def small_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-wide one-label BERT cross-encoder and its tokenizer."""
    return save_small_reranker(tmp_path_factory.mktemp("rr") / "bert40", RERANKER_HIDDEN)


def test_rank_agreement_compares_each_querys_order():
    reference = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    same_order = reference * 10 - 3  # other scores, same order: full agreement
    assert guard.measure(GuardMetric.RANK_AGREEMENT, reference, same_order).mean == 1.0
    swapped = np.array([[2.0, 1.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    accuracy = guard.measure(GuardMetric.RANK_AGREEMENT, reference, swapped)
    assert (accuracy.mean, accuracy.min, accuracy.samples) == (pytest.approx(-0.1), -1.0, 2)
    # One score per row, grouped per query: the shape prepare measures.
    flat = guard.measure(
        GuardMetric.RANK_AGREEMENT, reference.reshape(-1, 1), swapped.reshape(-1, 1), group=4
    )
    assert flat == accuracy


def test_the_built_in_pairs_are_16_queries_of_4_documents():
    pairs = builtin_calibration(Task.RERANKING)
    assert len(pairs) == 64 and query_group(pairs) == 4
    with pytest.raises(PrepareError, match="same number"):
        query_group(pairs[:7])


def test_prepare_writes_a_score_per_pair_guarded_by_rank_agreement(
    small_reranker: Path, tmp_path: Path
):
    spec, manifest = prepare_int8(small_reranker, tmp_path, "reranking", 30)
    assert spec.guard.metric is GuardMetric.RANK_AGREEMENT  # the task's default
    assert served_dims(spec.config_pbtxt) == {"SCORE": [1]}

    model_dir = tmp_path / "models" / "small"
    output = [{"name": "SCORE", "data_type": "TYPE_FP32", "dims": [1]}]
    assert written_outputs(model_dir, manifest) == [{"SCORE": [1]}, output, output]
    assert [t["name"] for t in manifest["io"]["inputs"]] == ["QUERY", "DOCUMENT"]  # type: ignore[index]
    served = manifest["precision_served"]
    attempts = manifest["guard"]["attempts"]  # type: ignore[index]
    measured = [a["accuracy"] for a in attempts if a["accuracy"] is not None]
    assert {m["metric"] for m in measured} == {"rankAgreement"}
    # 30 pairs cut to 7 whole queries of 4; the 2nd, 4th and 6th are held out to judge on.
    assert {m["samples"] for m in measured} == {3}
    # What is written is the module the guard accepted: its order, query by query.
    module = torch.load(model_dir / "1" / builders.ARTEFACT_FILE, weights_only=False)
    loaded = load_model(small_reranker, Task.RERANKING)
    pairs = [
        p for start in (4, 12, 20) for p in builtin_calibration(Task.RERANKING)[start : start + 4]
    ]
    accuracy = guard.measure(
        GuardMetric.RANK_AGREEMENT,
        loaded.outputs(loaded.model, pairs),
        loaded.outputs(module, pairs),
        group=4,
    )
    assert accuracy.mean == pytest.approx(manifest["accuracy"]["mean"])  # type: ignore[index]
    assert served in {str(p) for p in (Precision.INT8, Precision.MIXED, Precision.FP16)} | {"fp32"}


def test_a_model_with_several_labels_is_not_a_reranker(tmp_path: Path):
    source = save_small_classifier(tmp_path / "three", RERANKER_HIDDEN, LABELS)
    spec = operator_prepare_spec(source, "python", tmp_path / "models", task="reranking")
    with pytest.raises(PrepareError, match="one score per query-document pair; this model has 3"):
        prepare(spec, cache_dir=tmp_path / "cache")
