"""A user's own ONNX file (`format: onnx`), served as given or at onnxruntime's guarded int8.

What the source folder must hold: a text model exported to ONNX the way Hugging Face's Optimum
and `torch.onnx.export` write it (`model.onnx`, or `onnx/model.onnx` as model repositories
ship it), whose inputs are named `input_ids` and `attention_mask` (`token_type_ids` too, if it
takes them) and whose first output is either token states [batch, sequence, hidden] (an
encoder: tenfold mean-pools and normalizes them, MiniLM's recipe, as for `huggingface`) or one
row per input [batch, width] (pooled embeddings, a classifier's logits, a reranker's one
score); and, next to it, the tokenizer's files, which AutoTokenizer loads.

The file is its own reference: tenfold cannot know how it was made, so serving it as given is
reported as precision `as-provided`, and int8 is onnxruntime's dynamic quantization of its
MatMul weights, guarded against the file's own outputs on the calibration inputs. The
generated model.py (templates/onnx_model.py.j2) repeats `OnnxTextModel.outputs`; the e2e
tests compare the two.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.api.enums import Task
from tenfold_runtime.export import ONNX_INT8_SCHEME, quantize_onnx
from tenfold_runtime.modeling import max_sequence_length, split_pair

log = logging.getLogger(__name__)

# How the manifest and status.precision name a file served as the user gave it.
AS_PROVIDED = "as-provided"
INT8_SCHEME = ONNX_INT8_SCHEME
# Where model repositories keep the file, in the order looked at.
CONVENTIONAL_PATHS = ("model.onnx", "onnx/model.onnx")
# The graph inputs tenfold feeds: the tokenizer's outputs of the same names.
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REQUIRED_INPUTS = ("input_ids", "attention_mask")
# mean: token states, pooled and normalized; none: one row per input, served as it comes.
POOLING_MEAN, POOLING_NONE = "mean", "none"


class OnnxFileError(ValueError):
    """The ONNX file (or its folder) is not one tenfold can serve; the message says why."""


def find_onnx_file(model_dir: Path) -> Path:
    """The one ONNX file of the folder: a conventional path, else the only `.onnx` file."""
    for relative in CONVENTIONAL_PATHS:
        if (model_dir / relative).is_file():
            return model_dir / relative
    found = sorted(p for p in model_dir.rglob("*.onnx") if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise OnnxFileError(f"format onnx: no .onnx file in {model_dir}")
    names = ", ".join(str(p.relative_to(model_dir)) for p in found[:5])
    raise OnnxFileError(
        f"format onnx: several .onnx files in {model_dir} ({names}); name the one to serve "
        "model.onnx, or keep only it"
    )


def check_inputs(names: Sequence[str]) -> None:
    """Refuse a graph whose inputs the tokenizer cannot fill."""
    unknown = [n for n in names if n not in TOKEN_INPUTS]
    missing = [n for n in REQUIRED_INPUTS if n not in names]
    if unknown or missing:
        raise OnnxFileError(
            f"format onnx: the graph's inputs are {list(names)}; tenfold feeds "
            f"{', '.join(TOKEN_INPUTS[:2])} (and {TOKEN_INPUTS[2]}) from the tokenizer"
            + (f"; unknown: {unknown}" if unknown else "")
            + (f"; missing: {missing}" if missing else "")
        )


def pooling_for(task: Task, rank: int) -> str:
    """How the file's first output becomes the served rows, from its rank."""
    if rank == 3 and task is Task.EMBEDDING:
        return POOLING_MEAN
    if rank == 2:
        return POOLING_NONE
    shape = "[batch, width]" if task is not Task.EMBEDDING else "[batch, width] or token states"
    raise OnnxFileError(
        f"format onnx: the first output has {rank} dimensions; a {task} model serves {shape}"
    )


def check_width(task: Task, width: int) -> None:
    """A reranker answers one score per pair; anything else needs at least one column."""
    if task is Task.RERANKING and width != 1:
        raise OnnxFileError(
            f"format onnx: a reranker answers one score per query-document pair; this file's "
            f"rows are {width} wide (serve it as a classifier)"
        )
    if width < 1:
        raise OnnxFileError("format onnx: the first output has no columns")


def served_rows(output: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
    """The served rows of one batch: as they come, or mean-pooled and L2-normalized."""
    if pooling == POOLING_NONE:
        return np.asarray(output, dtype=np.float32).reshape(output.shape[0], -1)
    mask = attention_mask[..., None].astype(np.float32)
    pooled = (np.asarray(output, dtype=np.float32) * mask).sum(axis=1)
    pooled /= np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def text_columns(texts: Sequence[str], task: Task) -> tuple[list[str], ...]:
    """The tokenizer's text arguments: the texts, or a reranker's queries and documents."""
    if task is not Task.RERANKING:
        return (list(texts),)
    pairs = [split_pair(text) for text in texts]
    return [q for q, _ in pairs], [d for _, d in pairs]


@dataclass
class OnnxTextModel:
    """An ONNX file under onnxruntime with its tokenizer: what model.py serves, in-process."""

    path: Path
    tokenizer: object
    task: Task
    max_length: int
    session: object
    input_names: tuple[str, ...]
    pooling: str = POOLING_NONE
    width: int = 0

    def run(self, columns: Sequence[Sequence[str]]) -> np.ndarray:
        """The served rows for one batch given as the tokenizer's text arguments."""
        batch = self.tokenizer(  # type: ignore[operator]
            *[list(c) for c in columns],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
        )
        feeds = {}
        for name in self.input_names:
            value = batch.get(name)
            # A tokenizer without segments (RoBERTa's) leaves token_type_ids to the graph's zeros.
            feeds[name] = (np.zeros_like(batch["input_ids"]) if value is None else value).astype(
                np.int64
            )
        output = self.session.run(None, feeds)[0]  # type: ignore[attr-defined]
        return served_rows(np.asarray(output), batch["attention_mask"], self.pooling)

    def outputs(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """What is served for `texts` ([len(texts), width] float32), in batches."""
        chunks = [
            self.run(text_columns(texts[start : start + batch_size], self.task))
            for start in range(0, len(texts), batch_size)
        ]
        return np.concatenate(chunks).astype(np.float32)


def open_session(path: Path) -> object:
    """An onnxruntime CPU session on the file; a file it cannot load is the user's error."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are not the user's
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise OnnxFileError(f"format onnx: onnxruntime cannot load {path.name}: {error}") from None


def load_onnx_model(model_dir: Path, task: Task, path: Path | None = None) -> OnnxTextModel:
    """The folder's ONNX file (or `path`, a quantized copy) and tokenizer, probed once on two
    inputs so that the pooling and the served width come from the file itself."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    path = path or find_onnx_file(model_dir)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        raise OnnxFileError(
            f"format onnx: no tokenizer loads from {model_dir} (ship the tokenizer's files "
            f"next to the ONNX file): {error}"
        ) from None
    session = open_session(path)
    names = tuple(i.name for i in session.get_inputs())  # type: ignore[attr-defined]
    check_inputs(names)
    model = OnnxTextModel(path, tokenizer, task, max_sequence_length(model_dir), session, names)
    probe = ["an example", "a longer example to probe"]
    if task is Task.RERANKING:
        probe = [f"a query\t{text}" for text in probe]
    batch = tokenizer(*text_columns(probe, task), padding=True, return_tensors="np")  # type: ignore[operator]
    feeds = {n: batch.get(n, np.zeros_like(batch["input_ids"])).astype(np.int64) for n in names}
    rank = np.asarray(session.run(None, feeds)[0]).ndim  # type: ignore[attr-defined]
    model.pooling = pooling_for(task, rank)
    model.width = int(model.outputs(probe).shape[1])
    check_width(task, model.width)
    return model


def weight_matmuls(path: Path) -> list[str]:
    """The float MatMul nodes that multiply by a weight (an initializer): the ones onnxruntime's
    dynamic int8 may quantize. Activation x activation products (attention) are left alone."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    floats = {onnx.TensorProto.FLOAT}
    weights = {t.name for t in graph.initializer if t.data_type in floats}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and any(name in weights for name in node.input)
    ]


def quantize_int8(source: Path, target: Path) -> int:
    """onnxruntime's dynamic per-channel int8 of the file's weight MatMuls; returns how many."""
    nodes = weight_matmuls(source)
    if not nodes:
        raise OnnxFileError("the file has no fp32 MatMul weights to quantize (quantized already?)")
    # The same quantizer, settings and scheme as tenfold's own ONNX export.
    quantize_onnx(source, target, nodes)
    return len(nodes)


def external_data_files(path: Path) -> list[str]:
    """The files (relative to the graph's folder) a large ONNX model keeps its weights in."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    names = {
        entry.value
        for tensor in graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return sorted(names)


def copy_with_external_data(source: Path, folder: Path, name: str) -> Path:
    """Copy the graph as `folder/name` and its external data files beside it, as named."""
    target = folder / name
    shutil.copyfile(source, target)
    for relative in external_data_files(source):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.parent / relative, folder / relative)
    return target
