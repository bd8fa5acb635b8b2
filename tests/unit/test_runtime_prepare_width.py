"""prepare writes the served width from the model it loaded, not from the operator's guess.

A small BERT-shaped encoder 64 wide (MiniLM is 384) is built here and saved with
save_pretrained, then prepared by the real loading, guarding and export code from the config
the operator renders, on each backend tenfold serves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tenfold.api.enums import Task
from tenfold.api.prepare import encoder_model_name
from tenfold_runtime import builders
from tenfold_runtime.prepare import prepare
from tests.small_models import (
    operator_prepare_spec,
    save_small_bert,
    served_dims,
    written_outputs,
)

WIDTH = 64


@pytest.fixture(scope="module")
def small_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-wide BERT encoder and its tokenizer, saved the Hugging Face way."""
    return save_small_bert(tmp_path_factory.mktemp("bert") / "bert64", WIDTH)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["python", "pytorch", "onnxruntime"])
def test_written_config_and_manifest_carry_the_models_own_width(
    small_encoder: Path, tmp_path: Path, backend: str
):
    spec = operator_prepare_spec(small_encoder, backend, tmp_path / "models")
    # The operator cannot know the width and says so.
    assert served_dims(spec.config_pbtxt) == {"EMBEDDING": [-1]}

    manifest = prepare(spec, cache_dir=tmp_path / "cache")

    output = [{"name": "EMBEDDING", "data_type": "TYPE_FP32", "dims": [WIDTH]}]
    written = written_outputs(tmp_path / "models" / "small", manifest)
    assert written == [{"EMBEDDING": [WIDTH]}, output, output]
    if backend != "python":
        encoder = tmp_path / "models" / encoder_model_name("small") / "config.pbtxt"
        assert served_dims(encoder.read_text()) == {"EMBEDDING__0": [WIDTH]}


def test_only_the_named_outputs_change():
    text = 'name: "m"\noutput { name: "EMBEDDING" data_type: TYPE_FP32 dims: -1 }\n'
    text += 'output { name: "OTHER" data_type: TYPE_FP32 dims: -1 dims: 3 }\n'
    patched = builders.with_output_dims(text, builders.output_dims(Task.EMBEDDING, WIDTH))
    assert served_dims(patched) == {"EMBEDDING": [WIDTH], "OTHER": [-1, 3]}
    # An operator that still guessed a width is corrected, not trusted.
    guessed = text.replace("dims: -1 }", "dims: 384 }", 1)
    assert served_dims(builders.with_output_dims(guessed, {"EMBEDDING": (WIDTH,)})) == {
        "EMBEDDING": [WIDTH],
        "OTHER": [-1, 3],
    }
