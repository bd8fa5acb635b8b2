"""`tenfold-runtime tune`: the configuration search of issue 15 on this machine, no cluster.

Each precision on the service's guard ladder is prepared once, alone (no fallback), with the
service's guard: a precision the guard rejects is no candidate, and the table says why. Each
candidate is then served by the real tritonserver (`local.start_triton`, one at a time, as a
pod would) on a repository holding the prepared weights and the candidate's config.pbtxt as
the operator renders it, and measured with Triton's perf_analyzer over a concurrency sweep
(`bench.run_perf_analyzer`). The search itself (`tenfold.tune.search`) is pure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.catalog import load_catalog
from tenfold.api.cost import service_cost
from tenfold.api.enums import Backend, Engine, Precision
from tenfold.api.resource import InferenceService
from tenfold.tune.search import Level, Outcome, Result, Trial
from tenfold.tune.space import (
    Candidate,
    candidate_config,
    candidate_spec,
    precision_prepare_spec,
)
from tenfold_runtime import builders
from tenfold_runtime.bench import (
    DEFAULT_PRICE_PER_HOUR,
    perf_analyzer_binary,
    perf_input_data,
    run_perf_analyzer,
)
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.errors import GuardRejectedError, PrepareError
from tenfold_runtime.local import TritonError, start_triton

log = logging.getLogger(__name__)

# The naive baseline: full precision, each request alone (a batch of one, no window).
NAIVE = Candidate(Precision.FP32, 0, 1, 1)


@dataclass(frozen=True)
class Prepared:
    """One precision as the guard left it: its model folder, or why it was refused."""

    folder: Path | None
    reason: str | None = None
    accuracy_drop: float | None = None
    served: Precision | None = None


WARM_UP_MS = 500


def request_texts(service: InferenceService, given: Sequence[str] = ()) -> list[str]:
    """The requests each candidate is measured with, cycled: the given ones (a file, the
    tuning's ConfigMap), else the built-in calibration set of the service's task (what its
    guard measures on)."""
    return list(given) or builtin_calibration(service.spec.model.task)


def read_inputs(path: Path) -> list[str]:
    """One request per non-empty line of `path`; ValueError when there is none."""
    texts = [line for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"{path}: no input in it (one request per line)")
    return texts


@dataclass
class LocalRunner:
    """Measures candidates of one service on this machine (prepare once, serve, perf_analyzer)."""

    service: InferenceService
    document: Mapping[str, Any]  # the manifest's spec, as written
    workdir: Path
    levels: tuple[int, ...] = (1, 4, 16)
    measure_ms: int = 3000
    perf_analyzer: str | None = None
    texts: Sequence[str] = ()  # the requests sent; empty: request_texts' default
    rates: tuple[float, ...] = ()  # open-loop offered rates (req/s); empty: `levels`
    prepared: dict[tuple[Any, ...], Prepared] = field(default_factory=dict)
    count: int = 0
    # The 1-minute load average before and after each trial: this machine is shared, and a
    # figure measured beside another workload says so in results.json.
    loads: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = perf_analyzer_binary(self.perf_analyzer)
        self.data = self.workdir / "input-data.json"
        texts = request_texts(self.service, self.texts)
        self.data.write_text(json.dumps(perf_input_data(texts)))

    def prepare(self, candidate: Candidate) -> Prepared:
        """The candidate's precision (with its buckets), prepared and judged by the guard once
        per run."""
        key = candidate.prepare_key()
        if key in self.prepared:
            return self.prepared[key]
        from tenfold_runtime.prepare import prepare

        spec = precision_prepare_spec(self.service.name, self.document, candidate)
        repository = self.workdir / "prepared" / f"{candidate.precision}-{len(self.prepared)}"
        try:
            manifest = prepare(spec, repository)
        except GuardRejectedError as error:
            done = Prepared(None, f"accuracy guard: {error.decision.attempts[-1].reason}")
        except PrepareError as error:
            done = Prepared(None, f"prepare failed: {error}")
        else:
            accuracy = manifest.get("accuracy")
            drop = accuracy.get("drop") if isinstance(accuracy, dict) else None
            served = manifest.get("precision_served")
            done = Prepared(
                repository / spec.model_name,
                accuracy_drop=drop,
                served=Precision(served) if served else None,
            )
        self.prepared[key] = done
        return done

    def serving_repository(self, candidate: Candidate, prepared: Path) -> Path:
        """A repository with the prepared weights and the candidate's own config.pbtxt, in a
        trial folder of its own (Triton takes every folder of a repository for a model)."""
        self.count += 1
        trial = self.workdir / "serving" / f"trial-{self.count:02d}"
        shutil.rmtree(trial, ignore_errors=True)
        folder = trial / "repository" / prepared.name
        folder.mkdir(parents=True)
        text = candidate_config(self.service.name, self.document, candidate)
        (folder / "config.pbtxt").write_text(with_prepared_dims(text, prepared))
        (folder / "1").symlink_to((prepared / "1").resolve(), target_is_directory=True)
        return trial

    def warm_up(self, http_url: str, model: str, workdir: Path) -> None:
        """Half a second of one client before anything is measured, unrecorded: the first
        requests pay the model's first-run costs, which a low offered rate would otherwise
        count against the candidate for a whole window."""
        workdir.mkdir()
        run_perf_analyzer(
            http_url,
            model,
            [1],
            binary=self.binary,
            data=self.data,
            workdir=workdir,
            window_ms=WARM_UP_MS,
            price_per_hour=DEFAULT_PRICE_PER_HOUR,
        )

    def evaluate(self, candidate: Candidate) -> Outcome:
        """Prepare (once per precision), serve and sweep one candidate."""
        prepared = self.prepare(candidate)
        if prepared.folder is None:
            return Outcome(rejected=prepared.reason, precision_rejected=True)
        trial = self.serving_repository(candidate, prepared.folder)
        runs = trial / "runs"
        runs.mkdir()
        log.info("tune: measuring %s", candidate.label())
        before = os.getloadavg()[0]
        try:
            with start_triton(trial / "repository", log_path=trial / "tritonserver.log") as handle:
                self.warm_up(handle.http_url, prepared.folder.name, trial / "warm-up")
                points = run_perf_analyzer(
                    handle.http_url,
                    prepared.folder.name,
                    self.rates or self.levels,
                    binary=self.binary,
                    data=self.data,
                    workdir=runs,
                    window_ms=self.measure_ms,
                    price_per_hour=DEFAULT_PRICE_PER_HOUR,
                    request_rate=bool(self.rates),
                )
        except (TritonError, RuntimeError, OSError) as error:
            return Outcome(rejected=f"measurement failed: {last_line(str(error))}")
        finally:
            self.loads.append(
                {
                    "trial": trial.name,
                    "candidate": candidate.label(),
                    "load1": [before, os.getloadavg()[0]],
                }
            )
        levels = tuple(Level(p.concurrency, p.throughput, p.p95_ms, p.offered_rate) for p in points)
        return Outcome(
            levels=levels, accuracy=prepared.accuracy_drop, precision_served=prepared.served
        )


def last_line(text: str) -> str:
    """The last non-empty line of an error (a server log's tail ends with its cause)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def with_prepared_dims(config_text: str, prepared: Path) -> str:
    """The candidate's config with the output widths prepare measured on the loaded model."""
    served = text_format.Parse((prepared / "config.pbtxt").read_text(), mc.ModelConfig())
    dims = {output.name: tuple(output.dims) for output in served.output}
    return builders.with_output_dims(config_text, dims)


@dataclass
class RecordedRunner:
    """Candidates answered from an earlier run's results.json, not measured again: the same
    surface for quick and brute, so their trial counts compare exactly."""

    outcomes: dict[Candidate, Outcome]

    @classmethod
    def load(cls, path: Path) -> RecordedRunner:
        """The outcomes recorded in a results.json written by `write_results`."""
        data = json.loads(path.read_text())
        outcomes = {}
        for row in data["trials"]:
            if row["measured"]:
                outcomes[candidate_from_json(row["candidate"])] = outcome_from_json(row["outcome"])
        return cls(outcomes)

    def evaluate(self, candidate: Candidate) -> Outcome:
        """The recorded outcome, or its precision's rejection; else refused, saying so."""
        if candidate in self.outcomes:
            return self.outcomes[candidate]
        for seen, outcome in self.outcomes.items():
            if seen.guard_key() == candidate.guard_key() and outcome.precision_rejected:
                return outcome
        return Outcome(rejected="not in the recorded results (--replay)")


def price_of(document: Mapping[str, Any]) -> Any:
    """The hourly price of one replica of a candidate (and the service's fixed part)."""
    catalog = load_catalog()

    def price(candidate: Candidate) -> float:
        return service_cost(candidate_spec(document, candidate), catalog).hourly(1)

    return price


def candidate_to_json(candidate: Candidate) -> dict[str, Any]:
    """The candidate as JSON."""
    data = {**asdict(candidate), "precision": str(candidate.precision)}
    for name in ("backend", "engine"):
        if data.get(name) is not None:
            data[name] = str(data[name])
    return data


def candidate_from_json(data: Mapping[str, Any]) -> Candidate:
    """A candidate from candidate_to_json's output."""
    listed = {
        name: None if data.get(name) is None else tuple(int(v) for v in data[name])
        for name in ("preferred_batch_sizes", "sequence_buckets")
    }
    backend, engine = data.get("backend"), data.get("engine")
    return Candidate(
        Precision(data["precision"]),
        int(data["max_queue_delay_us"]),
        int(data["max_batch_size"]),
        int(data["instances"]),
        **listed,
        backend=Backend(backend) if backend else None,
        engine=Engine(engine) if engine else None,
    )


def outcome_from_json(data: Mapping[str, Any]) -> Outcome:
    """An outcome from its JSON form."""
    served = data.get("precision_served")
    return Outcome(
        levels=tuple(Level(**level) for level in data.get("levels", ())),
        accuracy=data.get("accuracy"),
        precision_served=Precision(served) if served else None,
        rejected=data.get("rejected"),
        precision_rejected=bool(data.get("precision_rejected")),
    )


def trial_to_json(trial: Trial) -> dict[str, Any]:
    """One row of results.json."""
    outcome = asdict(trial.outcome)
    if trial.outcome.precision_served is not None:
        outcome["precision_served"] = str(trial.outcome.precision_served)
    return {
        "candidate": candidate_to_json(trial.candidate),
        "outcome": outcome,
        "hourly": trial.hourly,
        "throughput": trial.throughput,
        "p95_ms": trial.p95_ms,
        "cost_per_1k": trial.cost_per_1k,
        "reason": trial.reason,
        "measured": trial.measured,
        "seconds": round(trial.seconds, 1),
    }


def trials_table(trials: Sequence[Trial], winner: Trial | None) -> str:
    """The trials as Markdown: config, throughput and p95 at the SLO, accuracy, cost, verdict."""
    lines = [
        "| # | precision | window µs | max batch | instances | also | req/s at SLO | p95 ms "
        "| accuracy drop | $ per 1k req | verdict |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for index, t in enumerate(trials, 1):
        c = t.candidate
        verdict = "winner" if t is winner else ("accepted" if t.accepted else t.reason)
        lines.append(
            f"| {index} | {c.precision} | {c.max_queue_delay_us} | {c.max_batch_size} | "
            f"{c.instances} | {c.extras() or '–'} | {_num(t.throughput, '.1f')} | "
            f"{_num(t.p95_ms, '.1f')} | "
            f"{_num(t.outcome.accuracy, '.4f')} | {_num(t.cost_per_1k, '.6f')} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def write_results(
    path: Path, command: str, result: Result, baselines: Mapping[str, Trial], extra: Mapping
) -> None:
    """results.json: the command, the machine's load, every trial, the winner, the baselines."""
    data = {
        "command": command,
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        **extra,
        "stopped": result.stopped,
        "measured": result.measured(),
        "winner": None if result.winner is None else trial_to_json(result.winner),
        "trials": [trial_to_json(t) for t in result.trials],
        "baselines": {name: trial_to_json(t) for name, t in baselines.items()},
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def served_as_written(service: InferenceService, result: Result) -> Candidate | None:
    """The configuration the service runs as written: its batching and instances, at the first
    precision of its ladder that the guard accepted in this search (None: none known yet)."""
    spec = service.spec
    rejected = {t.candidate.precision for t in result.trials if t.outcome.precision_rejected}
    for precision in (spec.quantization.precision, *spec.quantization.guard.fallback):
        if precision not in rejected:
            return Candidate(
                precision,
                spec.batching.max_queue_delay_microseconds,
                spec.batching.max_batch_size,
                spec.runtime.instances_per_replica,
            )
    return None
