"""Each accuracy-guard recipe of the python backend on its own: MiniLM (examples/minilm-cpu.yaml)
at int8 per tensor, int8 per channel, mixed, fp16 and bf16, each with an empty fallback ladder
and judged on the guard's held-out half of the built-in calibration sentences. For each recipe
it then measures what users of an embedding index see: the top-10 nearest neighbours of every
sentence of the Lee news corpus (2,530 sentences, each a query against the other 2,529) under
that recipe against fp32. The guard never sees that corpus: it is disjoint from the built-in
calibration sentences. Prints two lines per recipe (the table of docs/benchmarks.md).

Usage: python -m tenfold_tools.guard_recipes [SPEC.yaml]   (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from torch import nn

from tenfold.api.enums import Precision
from tenfold.api.prepare import PrepareSpec
from tenfold.api.resource import parse_inference_service
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold_runtime import guard, quantize
from tenfold_runtime.calibration import calibration_inputs, split_calibration
from tenfold_runtime.modeling import LoadedModel, load_model
from tenfold_runtime.prepare import GuardRejectedError, prepare
from tenfold_runtime.quantize import Int8Scheme
from tenfold_runtime.sources import fetch_source
from tenfold_tools.corpus import lee_sentences

# (label, precision, int8 scheme; None: the device's default).
RECIPES = (
    ("int8 per-tensor", Precision.INT8, Int8Scheme.DYNAMIC_PER_TENSOR),
    ("int8 per-channel", Precision.INT8, None),
    ("mixed", Precision.MIXED, None),
    ("fp16", Precision.FP16, None),
    ("bf16", Precision.BF16, None),
)
# Neighbours compared per query on the held-out corpus.
NEIGHBOURS = 10
# Where prepare caches a fetched source; a package:// source is read in place.
SOURCE_CACHE = Path("/tmp/tenfold-sources")


def recipe_spec(base: PrepareSpec, precision: Precision, repository: Path) -> PrepareSpec:
    """`base` at `precision` alone: no fallback, so the line is that recipe's verdict."""
    guard = base.guard.model_copy(update={"fallback": []})
    return base.model_copy(
        update={"precision": precision, "guard": guard, "repository": str(repository)}
    )


def attempts_of(spec: PrepareSpec, scheme: Int8Scheme | None) -> list[dict]:
    """The guard's attempts for `spec`, accepted or not."""
    try:
        manifest = prepare(spec, int8_scheme=scheme, force=True)
    except GuardRejectedError as rejected:
        return [attempt.to_json() for attempt in rejected.decision.attempts]
    return list(manifest["guard"]["attempts"])


def line(label: str, attempt: dict) -> str:
    """One recipe's figures as the docs quote them."""
    accuracy, kept = attempt["accuracy"], attempt.get("details", {}).get("kept_fp32_layers", [])
    return (
        f"{label}: mean {accuracy['mean']:.4f} worst {accuracy['min']:.4f} on "
        f"{accuracy['samples']} held-out, {attempt['reason']}"
        + (f", kept fp32: {', '.join(kept)}" if kept else "")
    )


def rebuilt_module(
    loaded: LoadedModel, spec: PrepareSpec, attempt: dict, scheme: Int8Scheme | None
) -> nn.Module:
    """The module `attempt` measured, converted again from fp32 (conversion is deterministic;
    mixed keeps at fp32 the layers the guard kept). Checked against the guard's own figure:
    its held-out cosine must come out the same, or this is not the module that was judged."""
    kept = attempt.get("details", {}).get("kept_fp32_layers", [])
    module = quantize.convert(
        loaded.model,
        Precision(attempt["precision"]),
        int8_scheme=scheme or quantize.default_int8_scheme(spec.device),
        keep=kept,
    )
    held_out = split_calibration(calibration_inputs(spec))[1]
    again = guard.measure(
        spec.guard.metric,
        loaded.outputs(loaded.model, held_out),
        loaded.outputs(module, held_out),
    )
    if abs(again.mean - attempt["accuracy"]["mean"]) > 1e-6:
        raise RuntimeError(
            f"rebuilt {attempt['precision']} scores {again.mean:.6f} on the held-out half, "
            f"the guard measured {attempt['accuracy']['mean']:.6f}"
        )
    return module


def neighbour_line(label: str, agreement: guard.NeighbourAgreement) -> str:
    """One recipe's neighbour agreement on the held-out corpus, as the docs quote it."""
    return (
        f"{label}: top-{agreement.k} neighbours on {agreement.queries} Lee sentences "
        f"(never seen by the guard): mean {agreement.mean:.4f} p5 {agreement.p5:.2f} "
        f"worst {agreement.worst:.2f}"
    )


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "examples/minilm-cpu.yaml")
    service = parse_inference_service(yaml.safe_load(path.read_text()))
    base = build_prepare_spec(service.name, service.spec)
    loaded = load_model(fetch_source(base.source, SOURCE_CACHE), base.task, base.device)
    corpus = list(lee_sentences())
    reference: np.ndarray = loaded.outputs(loaded.model, corpus)  # fp32, once
    for label, precision, scheme in RECIPES:
        with tempfile.TemporaryDirectory() as repository:
            spec = recipe_spec(base, precision, Path(repository))
            for attempt in attempts_of(spec, scheme):
                print(line(label, attempt), flush=True)
                if attempt.get("accuracy") is None:
                    continue  # not run (unsupported here): nothing to compare
                module = rebuilt_module(loaded, spec, attempt, scheme)
                agreement = guard.neighbour_agreement(
                    reference, loaded.outputs(module, corpus), NEIGHBOURS
                )
                print(neighbour_line(label, agreement), flush=True)
    print(f"command: python -m tenfold_tools.guard_recipes {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
