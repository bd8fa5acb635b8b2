"""Served throughput of MiniLM on the Python backend: torch against `runtime.engine: onnxruntime`.

    python -m tenfold_tools.engine_bench [--output results/engine-bench] [--levels 1,16]

Each variant of the packaged all-MiniLM-L6-v2 is prepared by the runtime's own `prepare` from
the operator's config (same batching window, same batch limit), served alone by the real
tritonserver (as in a pod), and swept by perf_analyzer over HTTP with the 64 built-in
sentences, exactly as `tenfold-runtime bench` sweeps (its helpers; a level whose requests fail
makes perf_analyzer fail, so failures never count as throughput). The load average before and
after is printed with the table: on a shared machine the figures say so.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tenfold.api.enums import Engine, Precision, Task
from tenfold_runtime import examples
from tenfold_runtime.bench import (
    perf_analyzer_binary,
    perf_input_data,
    run_perf_analyzer,
    single_model_repository,
)
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.local import start_triton
from tenfold_runtime.prepare import prepare


@dataclass(frozen=True)
class EngineVariant:
    """One model served by the Python backend."""

    name: str
    engine: Engine
    precision: Precision


VARIANTS = (
    EngineVariant("minilm-torch-fp32", Engine.TORCH, Precision.FP32),
    EngineVariant("minilm-torch-int8", Engine.TORCH, Precision.INT8),
    EngineVariant("minilm-ort-int8", Engine.ONNXRUNTIME, Precision.INT8),
)


def prepare_variants(repository: Path, window_us: int) -> dict[str, dict]:
    """Prepare every variant with the operator's config (prepare skips a spec it has built)."""
    manifests = {}
    for variant in VARIANTS:
        config = examples.config_pbtxt(variant.name, max_queue_delay_microseconds=window_us)
        spec = examples.minilm_spec(variant.name, variant.precision, config)
        spec = spec.model_copy(update={"engine": variant.engine})
        manifests[variant.name] = prepare(spec, repository)
    return manifests


def main(argv: list[str] | None = None) -> int:
    """Prepare, serve and sweep each variant; print the table, the load and the command."""
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.engine_bench")
    parser.add_argument("--output", type=Path, default=Path("results/engine-bench"))
    parser.add_argument("--levels", default="1,16", help="concurrency levels")
    parser.add_argument("--window-us", type=int, default=5000, help="batching window")
    parser.add_argument("--measure-ms", type=int, default=5000, help="perf_analyzer window")
    parser.add_argument(
        "--rounds", type=int, default=2, help="sweeps of every variant, every other in reverse"
    )
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "tenfold_tools.engine_bench", *(argv or sys.argv[1:])])
    levels = [int(level) for level in args.levels.split(",")]
    output = args.output.resolve()
    repository, workdir = output / "repository", output / "runs"
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "input-data.json"
    data.write_text(json.dumps(perf_input_data(builtin_calibration(Task.EMBEDDING))))
    binary = perf_analyzer_binary(None)
    load_before = os.getloadavg()
    manifests = prepare_variants(repository, args.window_us)
    sweep = partial(
        run_perf_analyzer,
        levels=levels,
        binary=binary,
        data=data,
        workdir=workdir,
        window_ms=args.measure_ms,
        price_per_hour=0.0,
    )
    rows = []
    # Every other round runs the variants in reverse, so a neighbour's burst on a shared
    # machine does not always land on the same one.
    order = [(r, v) for r in range(args.rounds) for v in (VARIANTS[:: -1 if r % 2 else 1])]
    for round_index, variant in order:
        # Alone in its repository, as in a pod.
        alone = single_model_repository(repository, variant.name, output / "serving")
        log_path = output / f"tritonserver-{variant.name}.log"
        with start_triton(alone, log_path=log_path) as handle:
            points = sweep(handle.http_url, variant.name)
        # The 1-minute load average right after the sweep: the bench's own, or the neighbours'.
        load1 = os.getloadavg()[0]
        manifest = manifests[variant.name]
        accuracy = manifest.get("accuracy") or {}
        rows += [
            f"| {round_index + 1} | {variant.engine} | {variant.precision} | "
            f"{manifest['precision_served']} | {accuracy.get('mean', float('nan')):.4f} | "
            f"{p.concurrency} | {p.throughput:.1f} | "
            f"{p.p95_ms:.1f} | {load1:.1f} |"
            for p in points
        ]
    load_after = os.getloadavg()
    table = [
        "| round | engine | precision asked | served | cosine (held-out mean) | concurrency "
        "| req/s | p95 ms | load1 after |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    print("\n".join(table))
    print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    print(f"command: {command}")
    (output / "results.md").write_text(
        "\n".join([f"Command: `{command}`", "", *table, "", f"load {load_before} -> {load_after}"])
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
