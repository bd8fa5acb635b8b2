"""`tenfold-runtime compare-backends`: in-process speed and accuracy of torch and onnxruntime.

The local tritonserver has no onnxruntime backend, so how the exported encoder would serve
is estimated here, in-process, the way the bench measures its ceiling: the packaged MiniLM,
tokenization included, at batch 1 and batch 16 over the built-in sentences, for torch and
for onnxruntime at fp32 and int8. Each row also gives the mean cosine to torch fp32, so a
fast row the guard would reject is visible as such.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tenfold.api.enums import Backend, Precision, Task
from tenfold_runtime import export, quantize
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.examples import MINILM_SOURCE
from tenfold_runtime.modeling import embed, load_encoder
from tenfold_runtime.sources import fetch_source

# Embeds a list of texts, returns [n, hidden].
Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Row:
    """One engine at one precision: texts/s at each batch size and cosine to torch fp32."""

    engine: str
    precision: str
    rates: dict[int, float]
    mean_cosine: float


def rate(run: Embedder, texts: Sequence[str], batch: int, seconds: float) -> float:
    """Texts per second embedding `texts` in consecutive batches of `batch` for `seconds`."""
    run(texts[:batch])  # warm-up: first calls allocate
    done, start, index = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = [texts[(index + i) % len(texts)] for i in range(batch)]
        run(chunk)
        done += batch
        index += batch
    return done / (time.perf_counter() - start)


def mean_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean cosine similarity of matching rows (both are L2-normalized already)."""
    return float(np.mean(np.sum(reference * candidate, axis=1)))


def markdown(rows: Sequence[Row], batches: Sequence[int], command: str) -> str:
    """The comparison as a Markdown table, with the command that produced it."""
    head = " | ".join(f"batch {b} texts/s" for b in batches)
    lines = [
        f"| engine | precision | {head} | mean cosine to torch fp32 |",
        "|---|---|" + "---:|" * len(batches) + "---:|",
    ]
    for row in rows:
        rates = " | ".join(f"{row.rates[b]:.1f}" for b in batches)
        lines.append(f"| {row.engine} | {row.precision} | {rates} | {row.mean_cosine:.4f} |")
    return "\n".join(lines) + f"\n\nCommand: `{command}`\n"


def engines(workdir: Path) -> list[tuple[str, str, Embedder]]:
    """torch and onnxruntime at fp32 and int8 (per-channel dynamic int8 for both)."""
    loaded = load_encoder(fetch_source(MINILM_SOURCE, Path(tempfile.gettempdir())))
    names = quantize.linear_names(loaded.model)
    example = export.example_inputs(loaded.tokenizer, loaded.max_length)
    int8 = quantize.convert(loaded.model, Precision.INT8, int8_scheme=quantize.Int8Scheme.DYNAMIC)

    def torch_embedder(module: object) -> Embedder:
        return lambda texts: embed(  # type: ignore[arg-type]
            module, loaded.tokenizer, texts, max_length=loaded.max_length
        )

    def onnx_embedder(precision: Precision) -> Embedder:
        folder = workdir / str(precision)
        folder.mkdir(parents=True, exist_ok=True)
        job = export.ExportJob(
            module=loaded.model,
            fp32_module=loaded.model,
            precision=precision,
            kept_layers=[],
            linear_names=names,
            example=example,
            folder=folder,
            device="cpu",
        )
        _, run = export.export_artefact(Backend.ONNXRUNTIME, job)
        return lambda texts: export.artefact_outputs(
            run,
            loaded.tokenizer,
            texts,
            buckets=export.DEFAULT_SEQUENCE_BUCKETS,
            max_length=loaded.max_length,
        )

    return [
        ("torch", "fp32", torch_embedder(loaded.model)),
        ("torch", "int8 (per-channel dynamic)", torch_embedder(int8)),
        ("onnxruntime", "fp32", onnx_embedder(Precision.FP32)),
        ("onnxruntime", "int8 (per-channel dynamic)", onnx_embedder(Precision.INT8)),
    ]


def compare_backends(
    batches: Sequence[int], seconds: float, output: Path, command: str
) -> list[Row]:
    """Measure every engine; writes results.json and results.md under `output`."""
    texts = builtin_calibration(Task.EMBEDDING)
    output.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tenfold-compare-") as scratch:
        measured = engines(Path(scratch))
        reference = measured[0][2](texts)
        for engine, precision, run in measured:
            rates = {b: rate(run, texts, b, seconds) for b in batches}
            rows.append(Row(engine, precision, rates, mean_cosine(reference, run(texts))))
    table = markdown(rows, batches, command)
    (output / "results.json").write_text(
        json.dumps({"command": command, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    (output / "results.md").write_text(table)
    print(table)
    return rows
