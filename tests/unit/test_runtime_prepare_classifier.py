"""prepare serves a sequence classifier: logits out, as wide as its labels, guarded by top-1.

A BertForSequenceClassification 48 wide with 3 labels is built here and saved with
save_pretrained, then prepared by the real loading, guarding and writing code from the spec
and config the operator renders for `task: classification` with no guard metric named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.api.enums import GuardMetric, Task
from tenfold.api.prepare import encoder_model_name
from tenfold_runtime import builders, export
from tenfold_runtime.modeling import load_model
from tenfold_runtime.prepare import builtin_calibration, prepare
from tests.small_models import (
    operator_prepare_spec,
    save_small_classifier,
    served_dims,
    written_outputs,
)

HIDDEN, LABELS = 48, 3


@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-wide BERT classifier with 3 labels and its tokenizer, saved the Hugging Face way."""
    return save_small_classifier(tmp_path_factory.mktemp("cls") / "bert48x3", HIDDEN, LABELS)


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
    spec = operator_prepare_spec(
        small_classifier,
        "python",
        tmp_path / "models",
        task="classification",
        quantization={"precision": "int8", "guard": {"calibrationSamples": 32}},
    )
    assert spec.guard.metric is GuardMetric.TOP1_AGREEMENT  # the task's default
    assert served_dims(spec.config_pbtxt) == {"LOGITS": [-1]}

    manifest = prepare(spec, cache_dir=tmp_path / "cache")

    model_dir = tmp_path / "models" / "small"
    output = [{"name": "LOGITS", "data_type": "TYPE_FP32", "dims": [LABELS]}]
    assert written_outputs(model_dir, manifest) == [{"LOGITS": [LABELS]}, output, output]
    guard = manifest["guard"]
    assert guard["metric"] == "top1Agreement"  # type: ignore[index]
    for attempt in guard["attempts"]:  # type: ignore[index]
        if attempt["accuracy"] is not None:
            assert attempt["accuracy"]["metric"] == "top1Agreement"
            assert attempt["accuracy"]["samples"] == 32
    # What is written is the module the guard accepted: it answers the same logits.
    served = torch.load(model_dir / "1" / builders.ARTEFACT_FILE, weights_only=False)
    loaded = load_model(small_classifier, Task.CLASSIFICATION)
    texts = builtin_calibration(Task.CLASSIFICATION)[:32]
    reference = loaded.outputs(loaded.model, texts)
    agreement = np.mean(reference.argmax(1) == loaded.outputs(served, texts).argmax(1))
    assert agreement == pytest.approx(manifest["accuracy"]["mean"])  # type: ignore[index]
    assert 1 - agreement <= spec.guard.max_drop + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_exported_classifier_serves_logits_behind_the_tokenizer_ensemble(
    small_classifier: Path, tmp_path: Path, backend: str
):
    spec = operator_prepare_spec(
        small_classifier,
        backend,
        tmp_path / "models",
        task="classification",
        quantization={"precision": "int8", "guard": {"calibrationSamples": 32}},
    )
    manifest = prepare(spec, cache_dir=tmp_path / "cache")

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
    texts = builtin_calibration(Task.CLASSIFICATION)[:32]
    served = export.artefact_outputs(
        run,
        loaded.tokenizer,
        texts,
        buckets=artefact["sequence_buckets"],  # type: ignore[index]
        max_length=loaded.max_length,
    )
    assert served.shape == (32, LABELS)
    agreement = np.mean(loaded.outputs(loaded.model, texts).argmax(1) == served.argmax(1))
    assert agreement == pytest.approx(manifest["accuracy"]["mean"])  # type: ignore[index]
    assert manifest["guard"]["metric"] == "top1Agreement"  # type: ignore[index]
