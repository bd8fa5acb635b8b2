"""Small Hugging Face models built by the tests themselves, saved with save_pretrained.

They are loaded by the runtime's real code (AutoModel, AutoTokenizer), so a test checks what a
user's own model would go through, in seconds, and with a width other than MiniLM's 384.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.prepare import PrepareSpec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.constants import PREPARE_MANIFEST_FILE
from tenfold.plan.prepare_spec import build_prepare_spec

WORDS = "the a of to and in is it that for on with as was at by an be this are from or".split()
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary() -> list[str]:
    """WORDS plus every word and mark of the runtime's built-in calibration sets, so that the
    guard's inputs tokenize to distinct ids rather than to [UNK]."""
    from tenfold.api.enums import Task
    from tenfold_runtime.calibration import builtin_calibration

    found = dict.fromkeys(WORDS)
    for task in (Task.EMBEDDING, Task.CLASSIFICATION, Task.RERANKING):
        for line in builtin_calibration(task):
            found.update(dict.fromkeys(re.findall(r"\w+|[^\w\s]", line.lower())))
    return list(found)


def _save_small(folder: Path, hidden_size: int, **head: Any) -> Path:
    """A two-layer BERT `hidden_size` wide (with a classification head when `head` names
    num_labels) and its word-piece tokenizer, saved with save_pretrained in `folder`."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertModel,
        BertTokenizerFast,
    )

    folder.mkdir(parents=True, exist_ok=True)
    tokens = [*SPECIAL_TOKENS, *vocabulary()]
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
        **head,
    )
    model_class = BertForSequenceClassification if "num_labels" in head else BertModel
    model_class(config).eval().save_pretrained(folder)
    # transformers 5 takes the vocabulary itself (it ignores a vocab_file argument).
    vocab = {token: index for index, token in enumerate(tokens)}
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)
    return folder


def save_small_bert(folder: Path, hidden_size: int) -> Path:
    """A two-layer BERT encoder `hidden_size` wide and its word-piece tokenizer in `folder`."""
    return _save_small(folder, hidden_size)


def save_small_classifier(folder: Path, hidden_size: int, num_labels: int) -> Path:
    """A two-layer BertForSequenceClassification `hidden_size` wide with `num_labels` labels.

    Initialized wider than BERT's 0.02 so that, like a trained classifier, it gives distinct
    inputs distinct logits and clear winners, rather than near-ties every input shares.
    """
    return _save_small(folder, hidden_size, num_labels=num_labels, initializer_range=0.2)


def save_small_reranker(folder: Path, hidden_size: int) -> Path:
    """A two-layer cross-encoder `hidden_size` wide: a BERT classifier with one label, whose
    logit is the query-document pair's relevance score (as ms-marco cross-encoders)."""
    return save_small_classifier(folder, hidden_size, num_labels=1)


def operator_prepare_spec(
    source: Path | str,
    backend: str,
    repository: Path,
    name: str = "small",
    *,
    task: str = "embedding",
    quantization: dict[str, Any] | None = None,
    format: str = "huggingface",
    engine: str = "torch",
) -> PrepareSpec:
    """The prepare spec the operator writes for `task` model `name` from `source` on `backend`;
    by default at fp32 with a short calibration (the width, not the guard, is under test)."""
    spec = InferenceServiceSpec.model_validate(
        {
            "model": {"name": name, "source": str(source), "task": task, "format": format},
            "runtime": {"backend": backend, "engine": engine},
            "quantization": quantization
            or {"precision": "fp32", "guard": {"calibrationSamples": 8, "fallback": []}},
        }
    )
    prepared = build_prepare_spec(name, spec)
    return prepared.model_copy(update={"repository": str(repository)})


def served_dims(text: str) -> dict[str, list[int]]:
    """Output name -> dims of config.pbtxt text, read the way tritonserver reads it."""
    config = text_format.Parse(text, mc.ModelConfig())
    return {output.name: list(output.dims) for output in config.output}


def written_outputs(model_dir: Path, manifest: Mapping[str, Any]) -> list[object]:
    """The outputs prepare wrote for `model_dir`, three ways: the dims of its config.pbtxt,
    and the outputs of the manifest it returned and of the one it wrote beside the config."""
    written = json.loads((model_dir / PREPARE_MANIFEST_FILE).read_text())
    return [
        served_dims((model_dir / "config.pbtxt").read_text()),
        manifest["io"]["outputs"],
        written["io"]["outputs"],
    ]


def metadata_outputs(http: Any, grpc: Any, model: str) -> list[tuple[str, str, list[int]]]:
    """(name, datatype, shape) of `model`'s outputs in Triton's metadata, over HTTP then gRPC:
    what KServe v2 clients read."""
    over_http = [
        (o["name"], o["datatype"], o["shape"]) for o in http.get_model_metadata(model)["outputs"]
    ]
    over_grpc = [
        (o.name, o.datatype, list(o.shape)) for o in grpc.get_model_metadata(model).outputs
    ]
    return over_http + over_grpc


# How a user's ONNX file names its tensors (Hugging Face Optimum's and torch.onnx's usual names).
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _user_folder(source: Path, folder: Path, task: str) -> tuple[torch.nn.Module, Any, Any]:
    """The model of `source` for `task` as a traceable module of (input_ids, attention_mask,
    token_type_ids), the tokenizer saved in `folder`, and a tokenized example batch."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    model_class = AutoModel if task == "embedding" else AutoModelForSequenceClassification
    model = model_class.from_pretrained(source).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.save_pretrained(folder)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            return self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=False,
            )[0]

    texts = ["an example", "a longer example to export"]
    return Graph().eval(), tokenizer, tokenizer(texts, padding=True, return_tensors="pt")


def export_user_onnx(source: Path, folder: Path, task: str = "embedding") -> Path:
    """The model saved in `source` as a user brings it in `format: onnx`: `onnx/model.onnx`
    (inputs input_ids, attention_mask, token_type_ids; out the token states of an encoder, or a
    classifier's logits) and the tokenizer's files in `folder`, no transformers weights."""
    graph, _, example = _user_folder(source, folder, task)
    output = "last_hidden_state" if task == "embedding" else "logits"
    dynamic = {0: "batch", 1: "sequence"}
    path = folder / "onnx" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's and the legacy exporter's, not the test's
        torch.onnx.export(
            graph,
            tuple(example[name] for name in ONNX_INPUTS),
            str(path),
            input_names=list(ONNX_INPUTS),
            output_names=[output],
            dynamic_axes={**dict.fromkeys(ONNX_INPUTS, dynamic), output: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return folder


def export_user_torchscript(source: Path, folder: Path, task: str = "embedding") -> Path:
    """The model saved in `source` as a user brings it in `format: torchscript`: `model.pt`
    traced with torch.jit.trace (forward(input_ids, attention_mask, token_type_ids), the token
    states of an encoder or a classifier's logits) and the tokenizer's files in `folder`."""
    graph, _, example = _user_folder(source, folder, task)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's, not the test's
        traced = torch.jit.trace(graph, tuple(example[n] for n in ONNX_INPUTS), strict=False)
        torch.jit.save(traced, str(folder / "model.pt"))
    return folder
