"""A user's ONNX file (`format: onnx`): what prepare accepts, refuses and writes, in-process.

The files are small BERTs the tests export themselves (tests/small_models.export_user_onnx);
real Triton serving them is tests/e2e/test_runtime_user_file.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.api.enums import ModelFormat, Task
from tenfold.constants import PREPARE_MANIFEST_FILE
from tenfold_runtime import user_file
from tenfold_runtime.modeling import load_model, mean_pool, run_model
from tenfold_runtime.prepare import GuardRejectedError, PrepareError, prepare
from tenfold_runtime.sources import file_digest
from tenfold_runtime.user_file import UserFileError
from tests.small_models import (
    export_user_onnx,
    export_user_torchscript,
    operator_prepare_spec,
    save_small_bert,
    save_small_reranker,
    served_dims,
)

TEXTS = ["the a of to", "this is it", "and in that for on with as was at by an be"]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the transformers folder, the user's ONNX folder made from it), 24 wide."""
    root = tmp_path_factory.mktemp("onnx-embedder")
    bert = save_small_bert(root / "bert", 24)
    return bert, export_user_onnx(bert, root / "user")


def onnx_spec(
    source: Path, repository: Path, precision: str = "fp32", format: str = "onnx", **guard: object
):
    quantization = {
        "precision": precision,
        "guard": {"calibrationSamples": 8, "fallback": ["fp32"], **guard},
    }
    return operator_prepare_spec(
        source, "python", repository, "user", quantization=quantization, format=format
    )


def test_the_file_is_found_where_model_repositories_keep_it(tmp_path: Path):
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"")
    assert user_file.find_user_file(tmp_path, ModelFormat.ONNX) == tmp_path / "onnx" / "model.onnx"
    (tmp_path / "model.onnx").write_bytes(b"")
    assert user_file.find_user_file(tmp_path, ModelFormat.ONNX) == tmp_path / "model.onnx"


def test_a_lone_file_is_found_by_any_name_and_several_are_refused(tmp_path: Path):
    (tmp_path / "encoder.onnx").write_bytes(b"")
    assert user_file.find_user_file(tmp_path, ModelFormat.ONNX) == tmp_path / "encoder.onnx"
    (tmp_path / "quantized.onnx").write_bytes(b"")
    with pytest.raises(UserFileError, match=r"several .onnx files .*encoder.onnx, quantized.onnx"):
        user_file.find_user_file(tmp_path, ModelFormat.ONNX)
    with pytest.raises(UserFileError, match="no .onnx file"):
        user_file.find_user_file(tmp_path / "empty", ModelFormat.ONNX)


def test_graph_inputs_the_tokenizer_cannot_fill_are_named():
    user_file.check_inputs(ModelFormat.ONNX, ["input_ids", "attention_mask"])
    with pytest.raises(UserFileError, match=r"unknown: \['pixel_values'\]"):
        user_file.check_inputs(ModelFormat.ONNX, ["input_ids", "attention_mask", "pixel_values"])
    with pytest.raises(UserFileError, match=r"missing: \['attention_mask'\]"):
        user_file.check_inputs(ModelFormat.ONNX, ["input_ids"])


def test_pooling_and_width_come_from_the_output_and_fit_the_task():
    assert user_file.pooling_for(Task.EMBEDDING, 3) == user_file.POOLING_MEAN
    assert user_file.pooling_for(Task.EMBEDDING, 2) == user_file.POOLING_NONE
    assert user_file.pooling_for(Task.CLASSIFICATION, 2) == user_file.POOLING_NONE
    with pytest.raises(UserFileError, match="a classification model serves"):
        user_file.pooling_for(Task.CLASSIFICATION, 3)
    with pytest.raises(UserFileError, match="rows are 2 wide"):
        user_file.check_width(Task.RERANKING, 2)


def test_mean_pooling_is_modelings_own():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 5, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    expected = mean_pool(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    got = user_file.served_rows(hidden, mask, user_file.POOLING_MEAN)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_the_file_as_given_answers_what_transformers_computes(embedder):
    bert, user = embedder
    in_process = user_file.load_user_model(user, Task.EMBEDDING, ModelFormat.ONNX)
    assert (in_process.width, in_process.pooling) == (24, user_file.POOLING_MEAN)
    loaded = load_model(bert, Task.EMBEDDING)
    reference = run_model(loaded.model, loaded.tokenizer, TEXTS, Task.EMBEDDING)
    np.testing.assert_allclose(in_process.outputs(TEXTS), reference, atol=1e-5)


def test_served_as_given_is_reported_as_provided(embedder, tmp_path: Path):
    _, user = embedder
    manifest = prepare(onnx_spec(user, tmp_path, "fp16"), cache_dir=tmp_path)
    fp16, fp32 = manifest["guard"]["attempts"]  # type: ignore[index]
    assert not fp16["accepted"] and fp16["reason"].startswith("unsupported: a user's ONNX file")
    assert fp32["accepted"] and fp32["accuracy"]["mean"] == pytest.approx(1.0)
    assert manifest["precision_served"] == "as-provided"
    folder = tmp_path / "user"
    served = folder / "1" / "model.onnx"
    assert file_digest(served) == file_digest(user / "onnx" / "model.onnx")
    assert manifest["artefact"]["digest"] == file_digest(served)  # type: ignore[index]
    assert served_dims((folder / "config.pbtxt").read_text()) == {"EMBEDDING": [24]}
    assert (folder / PREPARE_MANIFEST_FILE).is_file()
    model_py = (folder / "1" / "model.py").read_text()
    compile(model_py, "model.py", "exec")
    assert 'POOLING = "mean"' in model_py and "import torch" not in model_py


def test_int8_is_onnxruntimes_guarded_against_the_file(embedder, tmp_path: Path):
    _, user = embedder
    manifest = prepare(onnx_spec(user, tmp_path, "int8", maxDrop=1.0), cache_dir=tmp_path)
    (int8,) = manifest["guard"]["attempts"]  # type: ignore[index]
    assert int8["accepted"] and int8["details"]["int8_scheme"] == user_file.INT8_SCHEME
    assert int8["details"]["quantized_matmuls"] == 12  # q, k, v, out, up, down in 2 layers
    assert manifest["precision_served"] == "int8"
    import onnx

    graph = onnx.load(str(tmp_path / "user" / "1" / "model.onnx")).graph
    assert any(node.op_type == "MatMulInteger" for node in graph.node)


def test_a_guard_that_rejects_every_rung_says_so(embedder, tmp_path: Path):
    _, user = embedder
    # int8 changes the outputs a little (a drop of about 1e-7 here): over a max_drop of 0.
    spec = onnx_spec(user, tmp_path, "int8", maxDrop=0.0, fallback=[])
    with pytest.raises(GuardRejectedError, match=r"int8: drop \S+ > max_drop 0.0000"):
        prepare(spec, cache_dir=tmp_path)
    assert not (tmp_path / "user").exists()


def test_a_file_with_foreign_inputs_or_no_tokenizer_is_refused_by_name(embedder, tmp_path: Path):
    _, user = embedder
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(user / "onnx", no_tokenizer / "onnx")
    with pytest.raises(PrepareError, match="no tokenizer loads from"):
        prepare(onnx_spec(no_tokenizer, tmp_path / "a"), cache_dir=tmp_path)
    empty = tmp_path / "weights-only"
    shutil.copytree(user, empty)
    (empty / "onnx" / "model.onnx").rename(empty / "onnx" / "model.data")
    (empty / "weights.bin").write_bytes(b"x")
    with pytest.raises(PrepareError, match="no .onnx file"):
        prepare(onnx_spec(empty, tmp_path / "b"), cache_dir=tmp_path)


def test_a_reranker_file_of_two_columns_is_refused(tmp_path: Path):
    # A two-label classifier exported as a "reranker": one score per pair is the contract.
    from tests.small_models import save_small_classifier

    user = export_user_onnx(
        save_small_classifier(tmp_path / "cls", 16, 2), tmp_path / "user", "classification"
    )
    spec = operator_prepare_spec(
        user,
        "python",
        tmp_path / "models",
        "rr",
        task="reranking",
        quantization={"precision": "fp32", "guard": {"calibrationSamples": 8, "fallback": []}},
        format="onnx",
    )
    with pytest.raises(PrepareError, match="rows are 2 wide"):
        prepare(spec, cache_dir=tmp_path)


def test_a_reranker_file_scores_each_pair(tmp_path: Path):
    user = export_user_onnx(save_small_reranker(tmp_path / "rr", 16), tmp_path / "u", "reranking")
    in_process = user_file.load_user_model(user, Task.RERANKING, ModelFormat.ONNX)
    scores = in_process.outputs(["a query\tthe first document", "a query\tanother one"])
    assert scores.shape == (2, 1) and in_process.pooling == user_file.POOLING_NONE


def test_a_torchscript_file_is_served_as_given_and_never_converted(embedder, tmp_path: Path):
    bert, _ = embedder
    user = export_user_torchscript(bert, tmp_path / "ts")
    in_process = user_file.load_user_model(user, Task.EMBEDDING, ModelFormat.TORCHSCRIPT)
    assert in_process.input_names == ("input_ids", "attention_mask", "token_type_ids")
    loaded = load_model(bert, Task.EMBEDDING)
    reference = run_model(loaded.model, loaded.tokenizer, TEXTS, Task.EMBEDDING)
    np.testing.assert_allclose(in_process.outputs(TEXTS), reference, atol=1e-5)
    spec = onnx_spec(user, tmp_path / "models", "int8", "torchscript")
    manifest = prepare(spec, cache_dir=tmp_path)
    int8, fp32 = manifest["guard"]["attempts"]  # type: ignore[index]
    assert int8["reason"].startswith("unsupported: a user's TorchScript file is compiled code")
    assert fp32["accepted"] and manifest["precision_served"] == "as-provided"
    served = tmp_path / "models" / "user" / "1" / "model.pt"
    assert file_digest(served) == file_digest(user / "model.pt")
    model_py = (served.parent / "model.py").read_text()
    compile(model_py, "model.py", "exec")
    assert "torch.jit.load" in model_py and "onnxruntime" not in model_py


def test_a_file_that_is_not_torchscript_is_refused_by_name(tmp_path: Path):
    bert = save_small_bert(tmp_path / "bert", 16)
    user = export_user_torchscript(bert, tmp_path / "user")
    # A state dict saved as model.pt: what `torch.save(model.state_dict())` users often ship.
    torch.save({"weight": torch.zeros(2)}, user / "model.pt")
    spec = onnx_spec(user, tmp_path / "models", format="torchscript")
    with pytest.raises(PrepareError, match="model.pt is not a TorchScript module"):
        prepare(spec, cache_dir=tmp_path)
