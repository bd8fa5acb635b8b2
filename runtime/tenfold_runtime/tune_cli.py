"""The `tenfold-runtime tune` command: read the service, check the space, search, report."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tenfold.api.enums import Precision
from tenfold.api.resource import (
    InferenceService,
    InvalidSpecError,
    parse_inference_service,
    parse_tuning_spec,
)
from tenfold.api.tuning import InferenceTuningSpec
from tenfold.constants import TUNING_KIND
from tenfold.tune import summary
from tenfold.tune.patch import build_patch
from tenfold.tune.search import (
    Budget,
    Mode,
    Objective,
    Result,
    Trial,
    judge,
    quality,
    search,
)
from tenfold.tune.space import (
    SearchSpace,
    SearchSpaceError,
    candidate_spec,
    start_candidate,
    tuning_space,
    validate_space,
)
from tenfold_runtime.tune import (
    NAIVE,
    LocalRunner,
    RecordedRunner,
    price_of,
    read_inputs,
    served_as_written,
    trials_table,
    write_results,
)

EXIT_BAD_INPUT = 2
EXIT_NO_WINNER = 1


class TuneInputError(ValueError):
    """The command cannot start: the file, the space or the budget is wrong."""


def read_service(path: Path) -> tuple[InferenceService, dict[str, Any]]:
    """The one InferenceService of `path`, validated, and its manifest as written."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as error:
        raise TuneInputError(f"{path}: {error}") from None
    services = [d for d in documents if isinstance(d, dict) and d.get("kind") == "InferenceService"]
    if len(services) != 1:
        raise TuneInputError(
            f"{path}: expected one InferenceService, found {len(services)} "
            f"(among {len(documents)} documents)"
        )
    try:
        return parse_inference_service(services[0]), services[0]
    except InvalidSpecError as error:
        lines = "\n  ".join(str(e) for e in error.errors)
        raise TuneInputError(f"{path}: not a valid InferenceService:\n  {lines}") from None


def space_from_args(
    service: InferenceService, tuning: InferenceTuningSpec, args: argparse.Namespace
) -> SearchSpace:
    """The tuning's grid (the service's default on each axis it leaves empty) with the axes
    given on the command line."""
    space = tuning_space(service.spec, tuning.search_space)
    try:
        precisions = (
            tuple(Precision(p.strip()) for p in args.precisions.split(",") if p.strip())
            if args.precisions is not None
            else space.precisions
        )
    except ValueError as error:
        raise TuneInputError(f"--precisions: {error}") from None
    # replace(): the axes without a flag (the list axes, backend, engine) stay the tuning's
    return dataclasses.replace(
        space,
        precisions=precisions,
        windows_us=args.windows_us if args.windows_us is not None else space.windows_us,
        max_batch_sizes=args.batch_sizes if args.batch_sizes is not None else space.max_batch_sizes,
        instances=args.instances if args.instances is not None else space.instances,
    )


def inputs_from(path: Path) -> list[str]:
    """The requests of an --inputs file, or TuneInputError saying why there are none."""
    try:
        return read_inputs(path)
    except (OSError, ValueError) as error:
        raise TuneInputError(f"--inputs: {error}") from None


def read_tuning(path: Path, service: InferenceService) -> InferenceTuningSpec:
    """The InferenceTuning of `path`, validated, and naming `service`."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as error:
        raise TuneInputError(f"{path}: {error}") from None
    tunings = [d for d in documents if isinstance(d, dict) and d.get("kind") == TUNING_KIND]
    if len(tunings) != 1 or not isinstance(tunings[0].get("spec"), dict):
        raise TuneInputError(f"{path}: expected one {TUNING_KIND} with a spec")
    try:
        tuning = parse_tuning_spec(tunings[0]["spec"])
    except InvalidSpecError as invalid:
        lines = "\n  ".join(str(error) for error in invalid.errors)
        raise TuneInputError(f"{path}: not a valid {TUNING_KIND}:\n  {lines}") from None
    if tuning.service_name != service.name:
        raise TuneInputError(
            f"{path}: spec.serviceName is {tuning.service_name!r}, the service file holds "
            f"{service.name!r}"
        )
    return tuning


def merge_tuning(args: argparse.Namespace, tuning: InferenceTuningSpec) -> argparse.Namespace:
    """The command line's values, and the tuning's (or the API's defaults) where none is given."""
    merged = argparse.Namespace(**vars(args))
    given = {
        "mode": str(tuning.mode),
        "objective": str(tuning.objective),
        "levels": tuple(tuning.load.concurrency),
        "rates": tuple(tuning.load.request_rates) or None,
        "measure_ms": tuning.load.measurement_milliseconds,
        "max_trials": tuning.budget.max_trials,
        "minutes": tuning.budget.minutes,
    }
    for key, value in given.items():
        if getattr(merged, key) is None:
            setattr(merged, key, value)
    return merged


def run_tune(args: argparse.Namespace, command: str) -> int:
    """tune: exit 0 with a winner, 1 when no candidate meets the constraints, 2 on bad input."""
    try:
        service, manifest = read_service(args.filename)
        tuning = (
            read_tuning(args.tuning, service)
            if args.tuning
            else InferenceTuningSpec(service_name=service.name)
        )
        args = merge_tuning(args, tuning)
        space = space_from_args(service, tuning, args)
        checked = validate_space(manifest["spec"], space)
        budget = Budget(max_trials=args.max_trials, minutes=args.minutes)
        texts = inputs_from(args.inputs) if getattr(args, "inputs", None) else []
    except (TuneInputError, SearchSpaceError) as error:
        return refuse(args, str(error))
    except ValueError as error:  # the budget
        return refuse(args, f"--max-trials/--minutes: {error}")

    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    spec = manifest["spec"]
    try:
        runner: LocalRunner | RecordedRunner = (
            RecordedRunner.load(args.replay)
            if args.replay
            else LocalRunner(
                service,
                spec,
                output / "work",
                levels=args.levels,
                measure_ms=args.measure_ms,
                perf_analyzer=args.perf_analyzer,
                texts=texts,
                rates=args.rates or (),
            )
        )
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        # A replay file that is not a results.json, or no perf_analyzer on this machine.
        return refuse(args, f"cannot start: {error!r}")
    price = price_of(spec)
    slo = service.spec.autoscaling.target_p95_latency_ms
    objective = Objective(args.objective)
    start = start_candidate(service.spec, space)
    print(
        f"tune: {args.mode} search of {space.size()} candidates for {service.name} "
        f"(SLO p95 <= {slo:g} ms, objective {objective})",
        flush=True,
    )
    result = search(
        space,
        runner.evaluate,
        price,
        slo_ms=slo,
        mode=Mode(args.mode),
        objective=objective,
        budget=budget,
        start=start,
        refused=checked.refused,
    )
    baselines = (
        measure_baselines(service, spec, result, runner, price, slo) if args.baselines else {}
    )
    write_results(
        output / "results.json",
        command,
        result,
        baselines,
        {
            "mode": args.mode,
            "objective": str(objective),
            "slo_ms": slo,
            "grid": space.size(),
            "load1_per_trial": getattr(runner, "loads", []),
        },
    )
    report = render_report(command, result, baselines, objective, space.size())
    (output / "results.md").write_text(report)
    print(report)
    patch = None if result.winner is None else build_patch(manifest, result.winner.candidate)
    patch_text = None if patch is None else yaml.safe_dump(patch, sort_keys=False)
    if args.summary:
        args.summary.write_text(summary.encode(summary.summarize(result, space.size(), patch_text)))
    if result.winner is None:
        print("tune: no candidate meets the constraints", file=sys.stderr)
        return EXIT_NO_WINNER
    if args.patch:
        text = patch_text or "# the service already runs the winner: nothing to change\n"
        (output / "patch.yaml").write_text(text)
        print(f"# tenfold-runtime tune --patch: {command}\n{text}", end="")
    return 0


def refuse(args: argparse.Namespace, message: str) -> int:
    """Bad input: say why on stderr, and in the summary file when one is asked for."""
    print(f"tune: {message}", file=sys.stderr)
    if getattr(args, "summary", None):
        args.summary.write_text(summary.encode(summary.failure(message)))
    return EXIT_BAD_INPUT


def measure_baselines(
    service: InferenceService,
    spec: Mapping[str, Any],
    result: Result,
    runner: LocalRunner | RecordedRunner,
    price: Any,
    slo: float,
) -> dict[str, Trial]:
    """The service as written and the naive configuration, measured unless already measured."""
    known = {t.candidate: t for t in result.trials if t.measured}
    found: dict[str, Trial] = {}
    as_written = served_as_written(service, result)
    for name, candidate in (("as written", as_written), ("naive", NAIVE)):
        if candidate is None:
            continue
        try:
            candidate_spec(spec, candidate)
        except InvalidSpecError as error:
            print(f"tune: baseline {name} skipped: {error}", file=sys.stderr)
            continue
        found[name] = known.get(candidate) or judge(
            candidate, runner.evaluate(candidate), slo, price(candidate)
        )
    return found


def render_report(
    command: str,
    result: Result,
    baselines: Mapping[str, Trial],
    objective: Objective,
    grid: int,
) -> str:
    """The trials table, the winner and the baselines, as Markdown with the command."""
    lines = [f"Command: `{command}`", "", trials_table(result.trials, result.winner)]
    lines.append(
        f"Measured {result.measured()} of {grid} candidates "
        f"({len(result.trials)} rows); stopped: {result.stopped}; "
        f"wall time {result.trials[-1].seconds if result.trials else 0:.0f} s."
    )
    winner = result.winner
    if winner is not None:
        lines.append(
            f"Winner: {winner.candidate.label()}: {winner.throughput:.1f} req/s at p95 "
            f"{winner.p95_ms:.1f} ms, ${winner.cost_per_1k:.6f} per 1,000 requests."
        )
    if baselines:
        lines += ["", "| baseline | configuration | req/s at SLO | $ per 1k req | winner's gain |"]
        lines.append("|---|---|---:|---:|---:|")
        for name, trial in baselines.items():
            gain = (
                f"{1 / quality(trial, winner, objective):.2f}×"
                if winner is not None and quality(trial, winner, objective) > 0
                else "–"
            )
            cost = trial.reason or (
                "–" if trial.cost_per_1k is None else f"{trial.cost_per_1k:.6f}"
            )
            thr = "–" if trial.throughput is None else f"{trial.throughput:.1f}"
            lines.append(f"| {name} | {trial.candidate.label()} | {thr} | {cost} | {gain} |")
    return "\n".join(lines) + "\n"
