"""`runtime.engine: onnxruntime`: the Hugging Face model exported to ONNX and guarded by
prepare (the onnxruntime backend's export, int8 and guard), served by the Python backend with
onnxruntime in-process.

The operator renders the Python backend's config and a prepare spec naming the engine; prepare
writes the Python backend's folder around the very ONNX file the guard measured. Small BERTs
built in the test are prepared by the real code; the e2e test serves MiniLM on real Triton.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.enums import Engine, Task
from tenfold.api.prepare import TOKEN_IDS, TOKEN_MASK
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold.plan.triton_config import build_config_pbtxt
from tenfold_runtime import export
from tenfold_runtime.calibration import builtin_calibration, split_calibration
from tenfold_runtime.modeling import load_model
from tenfold_runtime.prepare import prepare
from tenfold_runtime.sources import file_digest
from tests.small_models import (
    operator_prepare_spec,
    save_small_bert,
    save_small_classifier,
    served_dims,
)
from tests.unit.specs import make_spec

LABELS = 3


def test_the_operator_renders_the_python_backends_config_and_names_the_engine():
    torch_spec = make_spec(quantization={"precision": "int8"})
    onnx_spec = make_spec(quantization={"precision": "int8"}, runtime={"engine": "onnxruntime"})
    # Triton's Python backend needs the same config whatever runs inside model.py.
    assert build_config_pbtxt(onnx_spec) == build_config_pbtxt(torch_spec)
    config = text_format.Parse(build_config_pbtxt(onnx_spec), mc.ModelConfig())
    assert (config.backend, config.platform) == ("python", "")
    prepared = build_prepare_spec("embed", onnx_spec)
    assert (prepared.backend, prepared.engine) == ("python", Engine.ONNXRUNTIME)
    assert prepared.step_configs == {}
    assert build_prepare_spec("embed", torch_spec).engine == Engine.TORCH


def test_without_buckets_a_batch_is_padded_to_its_longest_input():
    assert export.bucket_length(7, (), max_length=256) == 7
    assert export.bucket_length(300, (), max_length=256) == 256


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32-wide BERT classifier with 3 labels, saved the Hugging Face way."""
    return save_small_classifier(tmp_path_factory.mktemp("cls") / "bert32x3", 32, LABELS)


def test_the_guarded_onnx_file_is_written_into_the_python_backends_folder(
    classifier: Path, tmp_path: Path
):
    models = tmp_path / "models"
    spec = operator_prepare_spec(
        classifier,
        "python",
        models,
        task="classification",
        quantization={"precision": "int8", "guard": {"calibrationSamples": 32, "fallback": []}},
        engine="onnxruntime",
    )
    manifest = prepare(spec, cache_dir=tmp_path / "cache")
    assert manifest["precision_served"] == "int8"
    (attempt,) = manifest["guard"]["attempts"]  # type: ignore[index]
    assert attempt["details"]["int8_scheme"] == "onnxruntime-dynamic-per-channel"

    folder = models / "small"
    written = sorted(p.name for p in (folder / "1").iterdir())
    assert written == ["model.onnx", "model.py", "tokenizer"]
    artefact = manifest["artefact"]
    assert artefact == {  # the file served is the one the guard measured
        "backend": "python",
        "engine": "onnxruntime",
        "file": "small/1/model.onnx",
        "digest": file_digest(folder / "1/model.onnx"),
        "graph_inputs": [TOKEN_IDS, TOKEN_MASK],
    }
    config_text = (folder / "config.pbtxt").read_text()
    assert served_dims(config_text) == {"LOGITS": [LABELS]}
    assert 'backend: "python"' in config_text
    model_py = (folder / "1/model.py").read_text()
    assert "import onnxruntime" in model_py and "import torch" not in model_py
    assert 'TOKEN_NAMES = ["input_ids", "attention_mask"]' in model_py
    assert f'GRAPH_INPUTS = ["{TOKEN_IDS}", "{TOKEN_MASK}"]' in model_py

    # Run the written file as model.py feeds it (each batch padded to its longest input) on
    # the guard's held-out inputs: the top-1 agreement is the manifest's.
    loaded = load_model(classifier, Task.CLASSIFICATION)
    _, held_out = split_calibration(builtin_calibration(Task.CLASSIFICATION)[:32])
    run = export.onnx_runner(folder / "1/model.onnx", Task.CLASSIFICATION)
    served = export.artefact_outputs(
        run, loaded.tokenizer, held_out, buckets=(), max_length=loaded.max_length
    )
    agreement = np.mean(loaded.outputs(loaded.model, held_out).argmax(1) == served.argmax(1))
    assert agreement == pytest.approx(manifest["accuracy"]["mean"])  # type: ignore[index]


def test_an_fp32_embedder_serves_the_models_own_embeddings(tmp_path: Path):
    source = save_small_bert(tmp_path / "bert48", 48)
    spec = operator_prepare_spec(source, "python", tmp_path / "models", engine="onnxruntime")
    manifest = prepare(spec, cache_dir=tmp_path / "cache")
    assert manifest["precision_served"] == "fp32"
    loaded = load_model(source, Task.EMBEDDING)
    texts = ["the a of", "this is it and in that for on with"]
    run = export.onnx_runner(tmp_path / "models/small/1/model.onnx")
    served = export.artefact_outputs(
        run, loaded.tokenizer, texts, buckets=(), max_length=loaded.max_length
    )
    assert served.shape == (2, 48)
    np.testing.assert_allclose(served, loaded.outputs(loaded.model, texts), atol=1e-5)
