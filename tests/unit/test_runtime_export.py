"""Exported encoders (TorchScript, ONNX): padding buckets, precision rules, artefacts that agree.

The artefact tests use a tiny randomly initialized BERT (two layers, hidden size 32), so they
check the export mechanics in seconds; the e2e tests check MiniLM itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.api.enums import Backend, Precision
from tenfold_runtime import builders, export, quantize
from tenfold_runtime.quantize import UnsupportedPrecisionError


@pytest.mark.parametrize(
    ("longest", "expected"), [(1, 16), (16, 16), (17, 32), (100, 128), (128, 128), (300, 256)]
)
def test_inputs_pad_up_to_the_next_bucket_within_the_model_limit(longest, expected):
    assert export.bucket_length(longest, (128, 16, 32, 512), max_length=256) == expected


def test_buckets_from_the_parameter_text_or_the_defaults():
    assert export.parse_buckets("64, 16,64") == (16, 64)
    assert export.parse_buckets("") == export.DEFAULT_SEQUENCE_BUCKETS


@pytest.mark.parametrize("precision", [Precision.FP16, Precision.BF16, Precision.INT4])
def test_onnx_serves_fp32_and_int8_only(precision):
    with pytest.raises(UnsupportedPrecisionError, match="onnxruntime"):
        export.check_exportable(Backend.ONNXRUNTIME, precision)


def test_torchscript_keeps_any_torch_precision():
    for precision in (Precision.FP16, Precision.INT8, Precision.MIXED):
        export.check_exportable(Backend.PYTORCH, precision)


def test_exporter_scope_names_keep_list_indices_glued():
    assert export._scope_parts("encoder.layer.10.attention.self.query") == [
        "encoder",
        "layer.10",
        "attention",
        "self",
        "query",
    ]


def test_tokenizer_step_is_valid_python_naming_the_ensemble_tensors():
    source = builders.render_tokenizer_py(
        model_name="minilm",
        encoder_backend=Backend.ONNXRUNTIME,
        max_length=256,
        default_buckets=(16, 32),
        runtime_version="0.1.0",
    )
    ast.parse(source)
    assert 'IDS_NAME = "INPUT_IDS__0"' in source
    assert 'MASK_NAME = "ATTENTION_MASK__1"' in source
    assert 'BUCKETS_PARAMETER = "sequence_buckets"' in source
    assert "DEFAULT_BUCKETS = [16, 32]" in source


@pytest.fixture(scope="module")
def tiny_bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def token_batch(rows: int, length: int, real: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Random ids with `real[i]` non-padding tokens in row i."""
    rng = np.random.default_rng(rows * 100 + length)
    ids = rng.integers(1, 100, size=(rows, length), dtype=np.int64)
    mask = (np.arange(length)[None, :] < np.array(real)[:, None]).astype(np.int64)
    return ids * mask, mask


def reference(module: torch.nn.Module, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out = export.ServedModel(module)(torch.from_numpy(ids), torch.from_numpy(mask))
    return out.numpy()


@pytest.mark.parametrize(
    ("backend", "precision"),
    [
        (Backend.PYTORCH, Precision.FP32),
        (Backend.PYTORCH, Precision.INT8),
        (Backend.ONNXRUNTIME, Precision.FP32),
        (Backend.ONNXRUNTIME, Precision.INT8),
    ],
)
def test_artefacts_agree_with_the_module_on_unseen_shapes(
    tiny_bert, tmp_path: Path, backend, precision
):
    module = quantize.convert(tiny_bert, precision, int8_scheme=quantize.Int8Scheme.DYNAMIC)
    example = tuple(torch.from_numpy(a) for a in token_batch(2, 8, [8, 5]))
    path, run = export.export_artefact(
        backend,
        export.ExportJob(
            module=module,
            fp32_module=tiny_bert,
            precision=precision,
            kept_layers=[],
            linear_names=quantize.linear_names(tiny_bert),
            example=example,
            folder=tmp_path,
            device="cpu",
        ),
    )
    assert path.parent == tmp_path and path.name == export.ARTEFACT_FILES[backend]
    # Another batch size and sequence length than the example: nothing was baked in.
    ids, mask = token_batch(5, 16, [16, 3, 9, 1, 12])
    got, want = run(ids, mask), reference(tiny_bert, ids, mask)
    assert got.shape == (5, 32)
    cosine = (got * want).sum(axis=1)
    assert cosine.min() > (0.9999 if precision is Precision.FP32 else 0.95)


def test_onnx_mixed_leaves_the_kept_layers_in_fp32(tiny_bert, tmp_path: Path):
    import onnx

    names = quantize.linear_names(tiny_bert)
    kept = ["encoder.layer.1.output.dense"]
    example = tuple(torch.from_numpy(a) for a in token_batch(2, 8, [8, 5]))
    path, _ = export.export_artefact(
        Backend.ONNXRUNTIME,
        export.ExportJob(
            module=tiny_bert,
            fp32_module=tiny_bert,
            precision=Precision.MIXED,
            kept_layers=kept,
            linear_names=names,
            example=example,
            folder=tmp_path,
            device="cpu",
        ),
    )
    nodes = {node.name: node.op_type for node in onnx.load(str(path)).graph.node}
    assert nodes["/encoder/encoder/layer.1/output/dense/MatMul"] == "MatMul"
    assert "/encoder/encoder/layer.0/output/dense/MatMul_quant" in nodes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
