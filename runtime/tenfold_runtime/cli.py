"""`tenfold-runtime`: the commands that run inside (or beside) a serving pod."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from tenfold.constants import PREPARE_SPEC_PATH

# Exit codes a pod's status shows: the operator can tell a guard rejection from a crash.
EXIT_GUARD_REJECTED = 3
EXIT_PREPARE_ERROR = 2


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates like 50,100.5, got {text!r}") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"rates must be above zero, got {text!r}")
    return rates


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the prepare, serve-local, bench, tune and cache subcommands."""
    parser = argparse.ArgumentParser(prog="tenfold-runtime", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    prep = commands.add_parser("prepare", help="build the Triton model repository")
    prep.add_argument("--spec", type=Path, default=Path(PREPARE_SPEC_PATH))
    prep.add_argument("--repository", type=Path, help="override the spec's repository")
    prep.add_argument(
        "--int8-scheme",
        choices=["dynamic", "dynamic-per-tensor", "weight-only"],
        help="int8 recipe (default: dynamic per-channel on cpu, weight-only on cuda)",
    )
    prep.add_argument("--force", action="store_true", help="rebuild even if already prepared")

    serve = commands.add_parser("serve-local", help="prepare, then run tritonserver locally")
    serve.add_argument("--spec", type=Path, required=True)
    serve.add_argument("--repository", type=Path, default=Path(".tenfold/models"))
    serve.add_argument(
        "--command-json",
        type=Path,
        help="the container command as a JSON list (default: the operator's)",
    )
    serve.add_argument("--http-port", type=int, default=8000)
    serve.add_argument("--grpc-port", type=int, default=8001)
    serve.add_argument("--metrics-port", type=int, default=8002)

    bench = commands.add_parser("bench", help="concurrency sweep against real Triton")
    bench.add_argument("--output", type=Path, default=Path("results/bench"))
    bench.add_argument(
        "--levels",
        type=_levels,
        default=(1, 4, 16),
        help="concurrency levels for the batched variants (comma separated)",
    )
    bench.add_argument("--naive-levels", type=_levels, default=(1, 16))
    bench.add_argument(
        "--window-us", type=int, default=5000, help="dynamic batching max_queue_delay_microseconds"
    )
    bench.add_argument(
        "--preferred-batch-sizes",
        type=_levels,
        default=(),
        help="dynamic batching preferred_batch_size list (comma separated; default none)",
    )
    bench.add_argument(
        "--measure-ms", type=int, default=5000, help="perf_analyzer measurement window"
    )
    bench.add_argument("--ceiling-seconds", type=float, default=10.0)
    bench.add_argument(
        "--price-per-hour",
        type=float,
        default=None,
        help="machine price in $/hour (default: a 2-vCPU on-demand VM, see docs/benchmarks.md)",
    )
    bench.add_argument("--max-drop", type=float, default=0.01)
    bench.add_argument("--perf-analyzer", help="perf_analyzer binary (default: hack script)")

    compare = commands.add_parser(
        "compare-backends", help="in-process texts/s and accuracy: torch vs onnxruntime"
    )
    compare.add_argument("--batches", type=_levels, default=(1, 16), help="batch sizes")
    compare.add_argument("--seconds", type=float, default=8.0, help="per engine and batch size")
    compare.add_argument("--output", type=Path, default=Path("results/compare-backends"))

    add_tune_parser(commands)

    cache = commands.add_parser("cache", help="run the cache sidecar", add_help=False)
    cache.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def add_tune_parser(commands: argparse._SubParsersAction) -> None:
    """`tune`: the configuration search of one InferenceService on this machine."""
    tune = commands.add_parser(
        "tune", help="search the cheapest configuration that meets the SLO, on this machine"
    )
    tune.add_argument("-f", "--filename", type=Path, required=True, help="InferenceService YAML")
    tune.add_argument(
        "--tuning",
        type=Path,
        help="an InferenceTuning YAML: its space, mode, objective, load and budget (flags win)",
    )
    tune.add_argument("--mode", choices=["quick", "brute"], help="default: quick")
    tune.add_argument("--objective", choices=["cost", "throughput", "p95"], help="default: cost")
    tune.add_argument("--patch", action="store_true", help="print the winner as a YAML patch")
    tune.add_argument("--max-trials", type=int, help="most candidates measured")
    tune.add_argument("--minutes", type=float, help="most minutes spent searching")
    tune.add_argument("--precisions", help="comma separated (default: the service's guard ladder)")
    tune.add_argument("--windows-us", type=_levels, help="maxQueueDelayMicroseconds values")
    tune.add_argument("--batch-sizes", type=_levels, help="maxBatchSize values")
    tune.add_argument("--instances", type=_levels, help="instancesPerReplica values")
    tune.add_argument("--levels", type=_levels, help="concurrency sweep (default: 4,16)")
    tune.add_argument(
        "--rates", type=_rates, help="open-loop request rates (req/s) instead of --levels"
    )
    tune.add_argument("--measure-ms", type=int, help="perf_analyzer window (default: 2000)")
    tune.add_argument(
        "--baselines",
        action="store_true",
        help="also measure the service as written and naive (fp32, one request at a time)",
    )
    tune.add_argument("--replay", type=Path, help="answer from an earlier results.json")
    tune.add_argument("--output", type=Path, default=Path("results/tune"))
    tune.add_argument(
        "--inputs",
        type=Path,
        help="the requests to send, one per line (default: the service's calibration inputs, "
        "else the built-in set for its task)",
    )
    tune.add_argument(
        "--summary",
        type=Path,
        help="also write the compact JSON summary the operator reads (the Job's termination "
        "message, at most 4,096 bytes) to this file",
    )
    tune.add_argument("--perf-analyzer", help="perf_analyzer binary (default: hack script)")


def run_prepare(args: argparse.Namespace) -> int:
    """prepare: exit 0 with the manifest on stdout, 3 on guard rejection, 2 on bad specs."""
    from tenfold.api.prepare import PrepareSpec
    from tenfold_runtime.prepare import GuardRejectedError, PrepareError, prepare
    from tenfold_runtime.quantize import Int8Scheme, UnsupportedPrecisionError
    from tenfold_runtime.sources import SourceError

    spec = PrepareSpec.model_validate_json(args.spec.read_text())
    scheme = Int8Scheme(args.int8_scheme) if args.int8_scheme else None
    try:
        manifest = prepare(spec, args.repository, int8_scheme=scheme, force=args.force)
    except GuardRejectedError as error:
        logging.error("%s", error)
        print(json.dumps([a.to_json() for a in error.decision.attempts], indent=2))
        return EXIT_GUARD_REJECTED
    except (PrepareError, SourceError, UnsupportedPrecisionError) as error:
        logging.error("%s", error)
        return EXIT_PREPARE_ERROR
    print(json.dumps(manifest, indent=2))
    write_termination_report(manifest)
    return 0


def write_termination_report(manifest: dict[str, object]) -> None:
    """Leave the result where the kubelet reads a container's termination message.

    The kubelet mounts that file into every container; outside a pod it does not exist and
    nothing is written.
    """
    from tenfold_runtime.builders import termination_report

    path = Path(os.environ.get("TENFOLD_TERMINATION_LOG", "/dev/termination-log"))
    if path.is_file() and os.access(path, os.W_OK):
        path.write_text(termination_report(manifest))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_serve_local(args: argparse.Namespace) -> int:
    """serve-local: prepare into a local folder and serve it until interrupted."""
    import signal

    from tenfold.api.prepare import PrepareSpec
    from tenfold_runtime.local import TritonError, check_backends, local_backend_dir, start_triton
    from tenfold_runtime.prepare import prepare

    spec = PrepareSpec.model_validate_json(args.spec.read_text())
    try:
        # Before prepare: minutes of quantizing are wasted on a model Triton cannot load.
        check_backends(
            {spec.model_name: spec.config_pbtxt, **spec.step_configs}, local_backend_dir()
        )
    except TritonError as error:
        print(f"serve-local: {error}", file=sys.stderr)
        return 2
    prepare(spec, args.repository)
    command = json.loads(args.command_json.read_text()) if args.command_json else None
    with start_triton(
        args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        command=command,
    ) as handle:
        print(
            f"tritonserver ready: http {handle.http_url}, grpc {handle.grpc_url}, "
            f"metrics {handle.metrics_url} (Ctrl-C stops it)",
            flush=True,
        )
        # SIGTERM unwinds like Ctrl-C, so the `with` block stops Triton exactly once.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            handle.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


def run_bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """bench: the concurrency sweep; prints the table and the command that produced it."""
    from tenfold_runtime.bench import DEFAULT_PRICE_PER_HOUR, BenchOptions
    from tenfold_runtime.bench import run_bench as bench

    options = BenchOptions(
        output=args.output,
        levels=args.levels,
        naive_levels=args.naive_levels,
        window_us=args.window_us,
        preferred_batch_sizes=args.preferred_batch_sizes,
        window_ms=args.measure_ms,
        ceiling_seconds=args.ceiling_seconds,
        price_per_hour=args.price_per_hour or DEFAULT_PRICE_PER_HOUR,
        max_drop=args.max_drop,
        perf_analyzer=args.perf_analyzer,
    )
    bench(options, "tenfold-runtime " + shlex.join(argv))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tenfold-runtime` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cache"]:
        # The sidecar parses its own flags; argparse would swallow its --help.
        from tenfold_runtime.cache import main as cache_main

        return int(cache_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "prepare":
        return run_prepare(args)
    if args.command == "serve-local":
        return run_serve_local(args)
    if args.command == "tune":
        from tenfold_runtime.tune_cli import run_tune

        return run_tune(args, "tenfold-runtime " + shlex.join(argv))
    if args.command == "compare-backends":
        from tenfold_runtime.compare import compare_backends

        compare_backends(
            args.batches, args.seconds, args.output, shlex.join(["tenfold-runtime", *argv])
        )
        return 0
    return run_bench(args, argv)


if __name__ == "__main__":
    sys.exit(main())
