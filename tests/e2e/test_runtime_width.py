"""Real Triton serves a model of another width with the model's own shape in its metadata.

A 64-wide BERT (MiniLM is 384) built in the test is prepared from the config the operator
renders (`dims: -1`) and served by tritonserver; KServe v2 clients read the shape from the
model metadata over HTTP and gRPC, and the answers have that shape.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tenfold_runtime.clients import embed_grpc, embed_http
from tenfold_runtime.local import container_command, start_triton
from tenfold_runtime.prepare import prepare
from tests.small_models import metadata_outputs, operator_prepare_spec, save_small_bert

pytestmark = pytest.mark.e2e

WIDTH = 64
TEXTS = ["the a of to", "this is it", "and in that for on with as was at by an be"]


def test_metadata_and_answers_carry_the_models_own_width(tmp_path: Path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    source = save_small_bert(tmp_path / "bert64", WIDTH)
    prepare(operator_prepare_spec(source, "python", tmp_path / "models"), cache_dir=tmp_path)
    handle = start_triton(
        tmp_path / "models", command=container_command(), log_path=tmp_path / "triton.log"
    )
    try:
        http = httpclient.InferenceServerClient(handle.http_url)
        grpc = grpcclient.InferenceServerClient(handle.grpc_url)
        assert metadata_outputs(http, grpc, "small") == [("EMBEDDING", "FP32", [-1, WIDTH])] * 2
        assert embed_http(http, "small", TEXTS).shape == (len(TEXTS), WIDTH)
        assert embed_grpc(grpc, "small", TEXTS).shape == (len(TEXTS), WIDTH)
        http.close()
        grpc.close()
    finally:
        handle.stop()
