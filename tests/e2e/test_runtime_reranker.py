"""Real Triton serves a cross-encoder reranker: the reference model's score for each pair.

A one-label BERT cross-encoder 40 wide, built in the test and saved with save_pretrained, is
prepared from the spec and config the operator renders for `task: reranking` (no guard metric
named: the task's rankAgreement) and served by tritonserver with QUERY and DOCUMENT in and
SCORE out. Its answers over HTTP and gRPC are the scores transformers computes for the same
pairs, and they order each query's documents as the reference does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold_runtime.clients import text_input
from tenfold_runtime.local import container_command, start_triton
from tenfold_runtime.prepare import prepare
from tests.small_models import metadata_outputs, operator_prepare_spec, save_small_reranker

pytestmark = pytest.mark.e2e

QUERY = "how do I reset my password"
DOCUMENTS = [
    "Our office is closed on public holidays.",
    "To reset your password, open Settings, choose Security and follow the link.",
    "Passwords must contain at least twelve characters, including a number.",
    "You can change the app's colour theme under Display settings.",
]


def reference_scores(source: Path, query: str, documents: list[str]) -> np.ndarray:
    """The cross-encoder's scores, [n, 1], from transformers alone (none of tenfold's code)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    batch = tokenizer([query] * len(documents), documents, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**batch).logits.numpy()


def test_served_scores_are_the_reference_models(tmp_path: Path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    source = save_small_reranker(tmp_path / "bert40", 40)
    spec = operator_prepare_spec(source, "python", tmp_path / "models", "rr", task="reranking")
    manifest = prepare(spec, cache_dir=tmp_path)
    assert manifest["guard"]["metric"] == "rankAgreement"  # type: ignore[index]
    handle = start_triton(
        tmp_path / "models", command=container_command(), log_path=tmp_path / "triton.log"
    )
    try:
        http = httpclient.InferenceServerClient(handle.http_url)
        grpc = grpcclient.InferenceServerClient(handle.grpc_url)
        assert metadata_outputs(http, grpc, "rr") == [("SCORE", "FP32", [-1, 1])] * 2
        reference = reference_scores(source, QUERY, DOCUMENTS)
        answers = []
        for module, client in ((httpclient, http), (grpcclient, grpc)):
            inputs = [
                text_input(module, [QUERY] * len(DOCUMENTS), "QUERY"),
                text_input(module, DOCUMENTS, "DOCUMENT"),
            ]
            answers.append(client.infer("rr", inputs).as_numpy("SCORE"))
        for answer in answers:
            assert answer.shape == (len(DOCUMENTS), 1)
            np.testing.assert_allclose(answer, reference, rtol=1e-4, atol=1e-5)
            assert list(np.argsort(-answer[:, 0])) == list(np.argsort(-reference[:, 0]))
        http.close()
        grpc.close()
    finally:
        handle.stop()
