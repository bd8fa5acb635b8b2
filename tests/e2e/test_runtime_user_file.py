"""Real Triton serves model files users bring (`format: onnx`, `format: torchscript`): an
encoder's token states, a classifier's logits and a cross-encoder's scores, each with the
tokenizer shipped beside it.

Small BERTs built in the test are exported the way Optimum lays a model out (`onnx/model.onnx`,
inputs input_ids, attention_mask and token_type_ids) and prepared from the spec and config the
operator renders. tritonserver serves them on the Python backend, in-process on onnxruntime:
the metadata carries each file's own width over HTTP and gRPC; the embedder given as is answers
what transformers' own model computes (mean-pooled, normalized); the classifier, quantized to
int8 by onnxruntime under its top-1 guard, answers what the served file computes in-process;
a classifier traced to TorchScript answers transformers' own logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.api.enums import ModelFormat, Task
from tenfold_runtime.clients import embed_grpc, embed_http, text_input
from tenfold_runtime.local import container_command, start_triton
from tenfold_runtime.prepare import prepare
from tenfold_runtime.user_file import load_user_model
from tests.small_models import (
    export_user_onnx,
    export_user_torchscript,
    metadata_outputs,
    operator_prepare_spec,
    save_small_bert,
    save_small_classifier,
    save_small_reranker,
)

pytestmark = pytest.mark.e2e

TEXTS = ["the a of to", "this is it", "and in that for on with as was at by an be"]
QUERY = "how do I reset my password"
DOCUMENTS = ["our office is closed", "to reset your password open settings", "a colour theme"]
INT8_FIRST = {"precision": "int8", "guard": {"calibrationSamples": 16, "fallback": ["fp32"]}}


def transformers_embeddings(source: Path, texts: list[str]) -> np.ndarray:
    """Mean-pooled, normalized embeddings from transformers alone (none of tenfold's code)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def transformers_logits(source: Path, texts: list[str]) -> np.ndarray:
    """A classifier's logits from transformers alone."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    with torch.inference_mode():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()


def test_users_files_are_served_with_their_own_shapes_and_answers(tmp_path: Path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    models = tmp_path / "models"
    bert = save_small_bert(tmp_path / "bert48", 48)
    embedder = export_user_onnx(bert, tmp_path / "user-embedder")
    classifier = export_user_onnx(
        save_small_classifier(tmp_path / "cls", 40, 3),
        tmp_path / "user-classifier",
        "classification",
    )
    reranker = export_user_onnx(
        save_small_reranker(tmp_path / "rr", 32), tmp_path / "user-reranker", "reranking"
    )

    scripted = export_user_torchscript(
        save_small_classifier(tmp_path / "cls24", 24, 2), tmp_path / "user-ts", "classification"
    )

    def prepared(
        source: Path, name: str, task: str, quantization: dict | None = None, fmt: str = "onnx"
    ) -> dict:
        spec = operator_prepare_spec(
            source, "python", models, name, task=task, quantization=quantization, format=fmt
        )
        return prepare(spec, cache_dir=tmp_path)

    as_given = prepared(embedder, "emb", "embedding")
    assert as_given["precision_served"] == "as-provided"
    quantized = prepared(classifier, "cls", "classification", INT8_FIRST)
    (int8,) = quantized["guard"]["attempts"]  # type: ignore[index]
    assert (int8["precision"], int8["accepted"], quantized["precision_served"]) == (
        "int8",
        True,
        "int8",
    )
    assert int8["accuracy"]["metric"] == "top1Agreement"
    assert prepared(reranker, "rr", "reranking")["precision_served"] == "as-provided"
    as_traced = prepared(scripted, "ts", "classification", fmt="torchscript")
    assert as_traced["precision_served"] == "as-provided"

    handle = start_triton(models, command=container_command(), log_path=tmp_path / "triton.log")
    try:
        http = httpclient.InferenceServerClient(handle.http_url)
        grpc = grpcclient.InferenceServerClient(handle.grpc_url)
        assert metadata_outputs(http, grpc, "emb") == [("EMBEDDING", "FP32", [-1, 48])] * 2
        assert metadata_outputs(http, grpc, "cls") == [("LOGITS", "FP32", [-1, 3])] * 2
        assert metadata_outputs(http, grpc, "rr") == [("SCORE", "FP32", [-1, 1])] * 2
        assert metadata_outputs(http, grpc, "ts") == [("LOGITS", "FP32", [-1, 2])] * 2

        reference = transformers_embeddings(bert, TEXTS)
        np.testing.assert_allclose(embed_http(http, "emb", TEXTS), reference, atol=1e-5)
        np.testing.assert_allclose(embed_grpc(grpc, "emb", TEXTS), reference, atol=1e-5)

        served_file = load_user_model(
            classifier, Task.CLASSIFICATION, ModelFormat.ONNX, models / "cls/1/model.onnx"
        )
        logits = embed_grpc(grpc, "cls", TEXTS, task=Task.CLASSIFICATION)
        np.testing.assert_allclose(logits, served_file.outputs(TEXTS), atol=1e-5)

        pairs = [f"{QUERY}\t{document}" for document in DOCUMENTS]
        in_process = load_user_model(reranker, Task.RERANKING, ModelFormat.ONNX).outputs(pairs)
        inputs = [
            text_input(httpclient, [QUERY] * len(DOCUMENTS), "QUERY"),
            text_input(httpclient, DOCUMENTS, "DOCUMENT"),
        ]
        scores = http.infer("rr", inputs).as_numpy("SCORE")
        np.testing.assert_allclose(scores, in_process, atol=1e-5)

        traced_logits = embed_http(http, "ts", TEXTS, task=Task.CLASSIFICATION)
        expected = transformers_logits(tmp_path / "cls24", TEXTS)
        np.testing.assert_allclose(traced_logits, expected, atol=1e-5)
        http.close()
        grpc.close()
    finally:
        handle.stop()
