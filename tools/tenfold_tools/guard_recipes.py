"""Each accuracy-guard recipe of the python backend on its own: MiniLM (examples/minilm-cpu.yaml)
at int8 per tensor, int8 per channel, mixed, fp16 and bf16, each with an empty fallback ladder
and judged on the guard's held-out half of the built-in calibration sentences. Prints one line
per recipe (the table of docs/benchmarks.md).

Usage: python -m tenfold_tools.guard_recipes [SPEC.yaml]   (about 2 minutes on 2 cores)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from tenfold.api.enums import Precision
from tenfold.api.prepare import PrepareSpec
from tenfold.api.resource import parse_inference_service
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold_runtime.prepare import GuardRejectedError, prepare
from tenfold_runtime.quantize import Int8Scheme

# (label, precision, int8 scheme; None: the device's default).
RECIPES = (
    ("int8 per-tensor", Precision.INT8, Int8Scheme.DYNAMIC_PER_TENSOR),
    ("int8 per-channel", Precision.INT8, None),
    ("mixed", Precision.MIXED, None),
    ("fp16", Precision.FP16, None),
    ("bf16", Precision.BF16, None),
)


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


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "examples/minilm-cpu.yaml")
    service = parse_inference_service(yaml.safe_load(path.read_text()))
    base = build_prepare_spec(service.name, service.spec)
    for label, precision, scheme in RECIPES:
        with tempfile.TemporaryDirectory() as repository:
            spec = recipe_spec(base, precision, Path(repository))
            for attempt in attempts_of(spec, scheme):
                print(line(label, attempt), flush=True)
    print(f"command: python -m tenfold_tools.guard_recipes {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
