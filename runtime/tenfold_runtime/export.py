"""The guarded model exported for Triton's pytorch (TorchScript) and onnxruntime (ONNX) backends.

Both artefacts take token ids and an attention mask and return what the task serves: an
encoder's pooled, normalized embedding, or a classifier's logits. The pooling (or the head)
runs inside the graph and the ensemble's tokenizer step stays trivial. An artefact is only
written after it has been run here on the calibration inputs and measured against the fp32
reference: tracing or exporting can change numerics (or bake a shape into the graph), and
what the guard approved must be what the cluster serves.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tenfold.api.enums import Backend, Precision, Task
from tenfold.api.prepare import TOKEN_IDS, TOKEN_MASK, encoder_output
from tenfold_runtime.modeling import mean_pool
from tenfold_runtime.quantize import UnsupportedPrecisionError

log = logging.getLogger(__name__)

TORCHSCRIPT_FILE = "model.pt"
ONNX_FILE = "model.onnx"
ARTEFACT_FILES = {Backend.PYTORCH: TORCHSCRIPT_FILE, Backend.ONNXRUNTIME: ONNX_FILE}
# Token-length buckets used when the spec names none: requests are padded up to one of
# these, so Triton's batcher (which only joins equal shapes) still finds batches.
DEFAULT_SEQUENCE_BUCKETS = (16, 32, 64, 128, 256, 512)
ONNX_OPSET = 17
# onnxruntime quantizes these: the weights of Linear layers, never activation x activation.
ONNX_INT8_PRECISIONS = (Precision.INT8, Precision.MIXED)
# How the manifest names onnxruntime's int8 (quantize_dynamic, per-channel int8 weights).
ONNX_INT8_SCHEME = "onnxruntime-dynamic-per-channel"

# Runs an artefact: (token ids, attention mask) -> what it serves [rows, width].
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ExportError(RuntimeError):
    """The module could not be exported (or quantized) for the backend."""


class ServedModel(nn.Module):
    """The model as the task serves it: token ids and mask in; unit-length embeddings (an
    encoder plus MiniLM's pooling, as modeling.embed) or a classifier's logits out."""

    def __init__(self, encoder: nn.Module, task: Task = Task.EMBEDDING) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooled = task is Task.EMBEDDING

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled embedding, or the logits, of each row."""
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)
        if self.pooled:
            return mean_pool(output[0], attention_mask)
        return output[0].to(torch.float32)


def check_exportable(backend: Backend, precision: Precision) -> None:
    """Raise UnsupportedPrecisionError when `backend` cannot serve `precision` as exported.

    TorchScript keeps whatever torch computes (int8 dynamic kernels included). ONNX is
    exported at fp32; int8 and mixed are then quantized by onnxruntime itself, and the
    reduced float types are left out because onnxruntime's CPU kernels lack most of them.
    """
    if backend is Backend.ONNXRUNTIME and precision not in (Precision.FP32, *ONNX_INT8_PRECISIONS):
        raise UnsupportedPrecisionError(
            f"the onnxruntime export serves fp32, int8 and mixed, not {precision}"
        )


def bucket_length(longest: int, buckets: Sequence[int], max_length: int) -> int:
    """The padded length for a batch whose longest input has `longest` tokens; without
    buckets, the longest itself (as the Python backend's model.py pads)."""
    if not buckets:
        return min(longest, max_length)
    for bucket in sorted(buckets):
        if bucket >= longest:
            return min(bucket, max_length)
    return max_length


def parse_buckets(text: str) -> tuple[int, ...]:
    """`"16,32,64"` (Triton parameter text) as sorted lengths; empty text: the defaults."""
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    return tuple(values) or DEFAULT_SEQUENCE_BUCKETS


def tokenize_to_bucket(
    tokenizer: object, texts: Sequence[str], buckets: Sequence[int], max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and mask (int64) padded to the bucket, exactly as the tokenizer step does."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)  # type: ignore[operator]
    longest = max((len(ids) for ids in encoded["input_ids"]), default=1)
    padded = tokenizer.pad(  # type: ignore[attr-defined]
        encoded,
        padding="max_length",
        max_length=bucket_length(longest, buckets, max_length),
        return_tensors="np",
    )
    return padded["input_ids"].astype(np.int64), padded["attention_mask"].astype(np.int64)


def example_inputs(tokenizer: object, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of different lengths, so tracing sees padding and a batch of more than one."""
    ids, mask = tokenize_to_bucket(
        tokenizer,
        ["an example to trace", "a longer example, padded to its bucket"],
        (16,),
        max_length,
    )
    return torch.from_numpy(ids), torch.from_numpy(mask)


def export_torchscript(
    module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, task: Task = Task.EMBEDDING
) -> None:
    """Trace the served model; the batch and sequence dimensions stay dynamic."""
    with torch.no_grad(), _quiet_torchscript():
        # Tracer warnings flag Python-side shape checks in transformers; the artefact is
        # measured on other shapes before it is kept.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(ServedModel(module, task).eval(), example, check_trace=False)
        torch.jit.save(traced, str(path))


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """torch deprecates TorchScript in favour of torch.export, but Triton's pytorch backend
    (libtorch) loads TorchScript only: the warning says nothing the operator can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*checkpointing.*")
        yield


def export_onnx(
    module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, task: Task = Task.EMBEDDING
) -> None:
    """Export the fp32 served model to ONNX with dynamic batch and sequence axes."""
    dynamic, output = {0: "batch", 1: "sequence"}, encoder_output(task)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ServedModel(module, task).eval(),
            example,
            str(path),
            input_names=[TOKEN_IDS, TOKEN_MASK],
            output_names=[output],
            dynamic_axes={TOKEN_IDS: dynamic, TOKEN_MASK: dynamic, output: {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def linear_matmul_nodes(model_path: Path, linear_names: Sequence[str]) -> list[str]:
    """The MatMul nodes the exporter made from the named Linear layers of the encoder.

    The TorchScript-based exporter names nodes by module scope, with `/` between modules:
    `encoder.layer.0.attention.self.query` becomes `/encoder/encoder/layer.0/.../MatMul`. A
    Linear applied to one vector per row (BERT's pooler, a classifier's head) becomes a Gemm,
    which onnxruntime's dynamic quantization leaves at fp32; it is not a MatMul to quantize.
    """
    import onnx  # an optional package: only the onnxruntime backend needs it

    scopes = {name: "/encoder/" + "/".join(_scope_parts(name)) for name in linear_names}
    graph = onnx.load(str(model_path), load_external_data=False).graph
    matmuls = {node.name for node in graph.node if node.op_type == "MatMul"}
    gemms = {node.name for node in graph.node if node.op_type == "Gemm"}
    found, lost = [], []
    for name, scope in scopes.items():
        if f"{scope}/MatMul" in matmuls:
            found.append(f"{scope}/MatMul")
        elif f"{scope}/Gemm" in gemms:
            log.info("export: %s is a Gemm; onnxruntime's dynamic int8 leaves it at fp32", name)
        # A layer the output does not use (BERT's pooler) is pruned from the graph entirely.
        elif any(node.name.startswith(f"{scope}/") for node in graph.node):
            lost.append(name)
    if lost or not found:
        raise ExportError(f"ONNX graph lacks the MatMul nodes of Linear layers {lost[:3]}")
    return found


def _scope_parts(name: str) -> list[str]:
    """Module path parts as the exporter writes them: a list index stays glued (`layer.0`)."""
    parts: list[str] = []
    for part in name.split("."):
        if part.isdigit() and parts:
            parts[-1] = f"{parts[-1]}.{part}"
        else:
            parts.append(part)
    return parts


def quantize_onnx(source: Path, target: Path, nodes: Sequence[str]) -> None:
    """onnxruntime's dynamic int8 (per channel) on exactly the given MatMul nodes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs advice and a line per tensor on the root logger; keep the log readable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=list(nodes),
        )
    finally:
        root.setLevel(level)


def torchscript_runner(path: Path, device: str) -> Runner:
    """Run a saved TorchScript artefact the way Triton's pytorch backend would."""
    with _quiet_torchscript():
        traced = torch.jit.load(str(path), map_location=device).eval()

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = traced(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
        return out.to(torch.float32).cpu().numpy()

    return run


def onnx_runner(path: Path, task: Task = Task.EMBEDDING) -> Runner:
    """Run a saved ONNX artefact with onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = encoder_output(task)

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (out,) = session.run([output], {TOKEN_IDS: ids, TOKEN_MASK: mask})
        return np.asarray(out, dtype=np.float32)

    return run


def artefact_outputs(
    run: Runner,
    tokenizer: object,
    texts: Sequence[str],
    *,
    buckets: Sequence[int],
    max_length: int,
    batch_size: int = 16,
) -> np.ndarray:
    """What the artefact serves for `texts`, fed as the ensemble feeds it."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        ids, mask = tokenize_to_bucket(
            tokenizer, texts[start : start + batch_size], buckets, max_length
        )
        chunks.append(run(ids, mask))
    return np.concatenate(chunks).astype(np.float32)


@dataclass(frozen=True)
class ExportJob:
    """One artefact to build: the guarded module and what exporting it needs."""

    module: nn.Module  # at the guarded precision (TorchScript traces it)
    fp32_module: nn.Module  # ONNX is exported from fp32, then quantized by onnxruntime
    precision: Precision
    kept_layers: Sequence[str]  # mixed: the Linear layers left at fp32
    linear_names: Sequence[str]  # every Linear layer of the encoder
    example: tuple[torch.Tensor, ...]  # token ids and mask to trace with
    folder: Path
    device: str
    task: Task = Task.EMBEDDING


def export_artefact(backend: Backend, job: ExportJob) -> tuple[Path, Runner]:
    """Write the artefact for `backend` into `job.folder`; returns its path and a runner.

    TorchScript traces the guarded module itself. ONNX is exported from the fp32 module
    and, for int8 and mixed, quantized by onnxruntime on the same Linear layers the guard
    quantized (mixed: all but `kept_layers`).
    """
    check_exportable(backend, job.precision)
    try:
        return _export(backend, job)
    except (RuntimeError, ValueError, TypeError) as error:  # tracer, exporter and onnx errors
        raise ExportError(f"{type(error).__name__}: {error}") from error


def _export(backend: Backend, job: ExportJob) -> tuple[Path, Runner]:
    folder, precision, task = job.folder, job.precision, job.task
    path = folder / ARTEFACT_FILES[backend]
    if backend is Backend.PYTORCH:
        export_torchscript(job.module, job.example, path, task)
        return path, torchscript_runner(path, job.device)
    if precision not in ONNX_INT8_PRECISIONS:
        export_onnx(job.fp32_module, job.example, path, task)
        return path, onnx_runner(path, task)
    fp32_path = folder / f"fp32-{ONNX_FILE}"
    export_onnx(job.fp32_module, job.example, fp32_path, task)
    kept = set(job.kept_layers)
    nodes = linear_matmul_nodes(fp32_path, [n for n in job.linear_names if n not in kept])
    quantize_onnx(fp32_path, path, nodes)
    fp32_path.unlink()
    log.info("export: onnxruntime int8 on %d MatMul nodes (%d kept fp32)", len(nodes), len(kept))
    return path, onnx_runner(path, task)
