"""A model file users bring (`format: onnx` or `format: torchscript`), served as given.

What the source folder must hold: a text model exported the way Hugging Face's Optimum,
`torch.onnx.export` or `torch.jit.trace` write one (`model.onnx` or `onnx/model.onnx`;
`model.pt` for TorchScript; else the folder's only file of that kind), whose inputs are named
`input_ids` and `attention_mask` (`token_type_ids` too, if it takes them) and whose first
output is either token states [batch, sequence, hidden] (an encoder: tenfold mean-pools and
normalizes them, MiniLM's recipe, as for `huggingface`) or one row per input [batch, width]
(pooled embeddings, a classifier's logits, a reranker's one score); and, beside it, the
tokenizer's files, which AutoTokenizer loads.

The file is its own reference: tenfold cannot know how it was made, so serving it as given is
reported as precision `as-provided`. An ONNX file can also be served at onnxruntime's dynamic
int8 of its weight MatMuls, guarded against the file's own outputs (prepare_user_file.py); a
TorchScript file is compiled code whose Linear layers torch's quantizer cannot reach, so it is
served only as given. The generated model.py (templates/user_model.py.j2) repeats
`UserModel.run`; the e2e tests compare the two.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.api.enums import ModelFormat, Task
from tenfold_runtime.builders import USER_FILES
from tenfold_runtime.export import ONNX_INT8_SCHEME, quantize_onnx
from tenfold_runtime.modeling import max_sequence_length, split_pair

log = logging.getLogger(__name__)

# How the manifest and status.precision name a file served as the user gave it.
AS_PROVIDED = "as-provided"
INT8_SCHEME = ONNX_INT8_SCHEME
# Per format: where model repositories keep the file (in the order looked at), and the
# suffix of any other name; the version folder serves it as builders.USER_FILES names.
CONVENTIONAL_PATHS = {
    ModelFormat.ONNX: ("model.onnx", "onnx/model.onnx"),
    ModelFormat.TORCHSCRIPT: ("model.pt", "torchscript/model.pt"),
}
USER_FILE_FORMATS = (ModelFormat.ONNX, ModelFormat.TORCHSCRIPT)
SUFFIXES = {ModelFormat.ONNX: ".onnx", ModelFormat.TORCHSCRIPT: ".pt"}
# The graph inputs tenfold feeds: the tokenizer's outputs of the same names.
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REQUIRED_INPUTS = ("input_ids", "attention_mask")
# mean: token states, pooled and normalized; none: one row per input, served as it comes.
POOLING_MEAN, POOLING_NONE = "mean", "none"

# Runs the file on named int64 token arrays; returns its first output.
Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class UserFileError(ValueError):
    """The file (or its folder) is not one tenfold can serve; the message says why."""


def find_user_file(model_dir: Path, format: ModelFormat) -> Path:
    """The one file of the format in the folder: a conventional path, else the only one."""
    for relative in CONVENTIONAL_PATHS[format]:
        if (model_dir / relative).is_file():
            return model_dir / relative
    suffix = SUFFIXES[format]
    found = sorted(p for p in model_dir.rglob(f"*{suffix}") if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserFileError(f"format {format}: no {suffix} file in {model_dir}")
    names = ", ".join(str(p.relative_to(model_dir)) for p in found[:5])
    raise UserFileError(
        f"format {format}: several {suffix} files in {model_dir} ({names}); name the one to "
        f"serve {USER_FILES[format]}, or keep only it"
    )


def check_inputs(format: ModelFormat, names: Sequence[str]) -> None:
    """Refuse a graph whose inputs the tokenizer cannot fill."""
    unknown = [n for n in names if n not in TOKEN_INPUTS]
    missing = [n for n in REQUIRED_INPUTS if n not in names]
    if unknown or missing:
        raise UserFileError(
            f"format {format}: the model's inputs are {list(names)}; tenfold feeds "
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
    raise UserFileError(
        f"the model's first output has {rank} dimensions; a {task} model serves {shape}"
    )


def check_width(task: Task, width: int) -> None:
    """A reranker answers one score per pair; anything else needs at least one column."""
    if task is Task.RERANKING and width != 1:
        raise UserFileError(
            f"a reranker answers one score per query-document pair; this file's rows are "
            f"{width} wide (serve it as a classifier)"
        )
    if width < 1:
        raise UserFileError("the model's first output has no columns")


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


def token_feeds(batch: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The model's inputs from a tokenized batch; a tokenizer without segments (RoBERTa's)
    leaves token_type_ids to zeros."""
    ids = batch["input_ids"]
    return {n: np.asarray(batch.get(n, np.zeros_like(ids))).astype(np.int64) for n in names}


@dataclass
class UserModel:
    """A user's file, its runner and its tokenizer: what model.py serves, in-process."""

    path: Path
    format: ModelFormat
    tokenizer: object
    task: Task
    max_length: int
    run_file: Runner
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
        output = self.run_file(token_feeds(batch, self.input_names))
        return served_rows(output, batch["attention_mask"], self.pooling)

    def outputs(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """What is served for `texts` ([len(texts), width] float32), in batches."""
        chunks = [
            self.run(text_columns(texts[start : start + batch_size], self.task))
            for start in range(0, len(texts), batch_size)
        ]
        return np.concatenate(chunks).astype(np.float32)


def onnx_runner(path: Path) -> tuple[Runner, tuple[str, ...]]:
    """An onnxruntime CPU session on the file, and its input names."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are not the user's
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise UserFileError(f"format onnx: onnxruntime cannot load {path.name}: {error}") from None

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(None, dict(feeds))[0])

    return run, tuple(i.name for i in session.get_inputs())


def torchscript_runner(path: Path) -> tuple[Runner, tuple[str, ...]]:
    """The TorchScript module on the CPU, and its forward's argument names (positional)."""
    import torch

    try:
        with warnings.catch_warnings():
            # torch deprecates TorchScript; the user's file is TorchScript all the same.
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as error:  # not TorchScript (a pickle, a state dict)
        message = str(error).splitlines()[0]
        raise UserFileError(
            f"format torchscript: {path.name} is not a TorchScript module that torch.jit.load "
            f"reads ({message})"
        ) from None
    names = tuple(a.name for a in module.forward.schema.arguments[1:])  # after self

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            output = module(*(torch.from_numpy(feeds[n]) for n in names))
        return first_tensor(output).to(torch.float32).numpy()

    return run, names


def first_tensor(output: object) -> object:
    """A module's first output: the tensor itself, or the first of a tuple, list or dict."""
    if isinstance(output, dict):
        output = next(iter(output.values()))
    while isinstance(output, tuple | list):
        output = output[0]
    return output


RUNNERS: Mapping[ModelFormat, Callable[[Path], tuple[Runner, tuple[str, ...]]]] = {
    ModelFormat.ONNX: onnx_runner,
    ModelFormat.TORCHSCRIPT: torchscript_runner,
}


def load_user_model(
    model_dir: Path, task: Task, format: ModelFormat, path: Path | None = None
) -> UserModel:
    """The folder's file (or `path`, a quantized copy) and tokenizer, probed once on two
    inputs so that the pooling and the served width come from the file itself."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    path = path or find_user_file(model_dir, format)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        raise UserFileError(
            f"format {format}: no tokenizer loads from {model_dir} (ship the tokenizer's files "
            f"beside the model file): {error}"
        ) from None
    run_file, names = RUNNERS[format](path)
    check_inputs(format, names)
    model = UserModel(
        path, format, tokenizer, task, max_sequence_length(model_dir), run_file, names
    )
    probe = ["an example", "a longer example to probe"]
    if task is Task.RERANKING:
        probe = [f"a query\t{text}" for text in probe]
    batch = tokenizer(*text_columns(probe, task), padding=True, return_tensors="np")  # type: ignore[operator]
    try:
        output = np.asarray(run_file(token_feeds(batch, names)))
    except Exception as error:  # the runtimes raise their own types for a graph that fails
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserFileError(
            f"format {format}: {path.name} failed on two inputs: {message}"
        ) from None
    model.pooling = pooling_for(task, output.ndim)
    # Pooled or not, a served row is as wide as the output's last axis.
    model.width = int(output.shape[-1])
    check_width(task, model.width)
    return model


def weight_matmuls(path: Path) -> list[str]:
    """The float MatMul nodes that multiply by a weight (an initializer): the ones onnxruntime's
    dynamic int8 may quantize. Activation x activation products (attention) are left alone."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and any(name in weights for name in node.input)
    ]


def quantize_int8(source: Path, target: Path) -> int:
    """onnxruntime's dynamic per-channel int8 of the file's weight MatMuls; returns how many."""
    nodes = weight_matmuls(source)
    if not nodes:
        raise UserFileError("the file has no fp32 MatMul weights to quantize (quantized already?)")
    # The same quantizer, settings and scheme as tenfold's own ONNX export.
    quantize_onnx(source, target, nodes)
    return len(nodes)


def external_data_files(path: Path, format: ModelFormat) -> list[str]:
    """The files (relative to the model file's folder) an ONNX model keeps its weights in."""
    if format is not ModelFormat.ONNX:
        return []
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


def copy_served_file(source: Path, folder: Path, format: ModelFormat) -> Path:
    """Copy the file into `folder` under its served name, external data files beside it."""
    target = folder / USER_FILES[format]
    shutil.copyfile(source, target)
    for relative in external_data_files(source, format):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.parent / relative, folder / relative)
    return target
