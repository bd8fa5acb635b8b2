"""What a tuning Job tells the operator: its trials, winner and patch, in one termination message.

The kubelet keeps at most 4,096 bytes of a container's termination message, and that message
is the one channel from the Job's pod to the operator that needs no extra right (no log
reads, no write access for the pod). So the summary is compact JSON, one array per trial,
and when a long search does not fit, rows are left out, refused ones first and never the
winner's, and counted. `decode` turns it back into the InferenceTuning status fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tenfold.tune.search import Result, Trial

# The kubelet's cap on one container's termination message (bytes).
MESSAGE_LIMIT = 4096
SUMMARY_VERSION = 1
REASON_LIMIT = 160
_ROW_FIELDS = (
    "precision",
    "maxQueueDelayMicroseconds",
    "maxBatchSize",
    "instancesPerReplica",
    "throughput",
    "p95Ms",
    "accuracyDrop",
    "costPer1kRequests",
    "reason",
    "measured",
    "preferredBatchSizes",
    "sequenceBuckets",
    "backend",
    "engine",
)
_REASON, _MEASURED = _ROW_FIELDS.index("reason"), _ROW_FIELDS.index("measured")


class SummaryError(ValueError):
    """The termination message is not a tuning summary."""


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def trial_row(trial: Trial) -> list[Any]:
    """One trial as a compact array (the order of _ROW_FIELDS)."""
    candidate = trial.candidate
    return [
        str(candidate.precision),
        candidate.max_queue_delay_us,
        candidate.max_batch_size,
        candidate.instances,
        _rounded(trial.throughput, 1),
        _rounded(trial.p95_ms, 1),
        _rounded(trial.outcome.accuracy, 5),
        # Six significant digits: a CPU replica's cost per 1,000 requests is ~1e-5 USD.
        None if trial.cost_per_1k is None else float(f"{trial.cost_per_1k:.6g}"),
        None if trial.reason is None else trial.reason[:REASON_LIMIT],
        1 if trial.measured else 0,
        _listed(candidate.preferred_batch_sizes),
        _listed(candidate.sequence_buckets),
        None if candidate.backend is None else str(candidate.backend),
        None if candidate.engine is None else str(candidate.engine),
    ]


def _listed(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)


def summarize(result: Result, grid: int, patch: str | None) -> dict[str, Any]:
    """The whole summary of a finished search (before fitting it into the message)."""
    winner = None
    if result.winner is not None:
        winner = next(i for i, t in enumerate(result.trials) if t is result.winner)
    return {
        "v": SUMMARY_VERSION,
        "grid": grid,
        "stopped": result.stopped,
        "rows": [trial_row(t) for t in result.trials],
        "winner": winner,
        "patch": patch,
        "omitted": 0,
    }


def failure(message: str) -> dict[str, Any]:
    """The summary of a search that could not start (bad input in the Job)."""
    return {"v": SUMMARY_VERSION, "error": message[: MESSAGE_LIMIT // 2]}


def _text(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, separators=(",", ":"), ensure_ascii=False)


def _drop_order(rows: Sequence[list[Any]], winner: int | None) -> list[int]:
    """Rows to leave out first: refused unmeasured, then refused, then accepted (last first)."""
    others = [i for i in range(len(rows)) if i != winner]

    def weight(i: int) -> tuple[int, int]:
        refused, measured = rows[i][_REASON] is not None, rows[i][_MEASURED] == 1
        return (0 if refused and not measured else 1 if refused else 2, -i)

    return sorted(others, key=weight)


def encode(summary: Mapping[str, Any], limit: int = MESSAGE_LIMIT) -> str:
    """The summary as JSON within `limit` bytes, leaving rows out if it must."""
    text = _text(summary)
    if len(text.encode()) <= limit or "rows" not in summary:
        return text
    rows, winner = list(summary["rows"]), summary.get("winner")
    dropped: set[int] = set()
    for index in _drop_order(rows, winner):
        dropped.add(index)
        kept = [i for i in range(len(rows)) if i not in dropped]
        fitted = {
            **summary,
            "rows": [rows[i] for i in kept],
            "winner": None if winner is None else kept.index(winner),
            "omitted": int(summary.get("omitted", 0)) + len(dropped),
        }
        text = _text(fitted)
        if len(text.encode()) <= limit:
            return text
    raise SummaryError(f"the summary does not fit in {limit} bytes even with one row")


def decode(message: str) -> dict[str, Any]:
    """The InferenceTuning status fields a termination message carries.

    A search that could not start gives {"error": ...}; anything else that is not a summary
    raises SummaryError (a crash whose log tail the kubelet put there instead).
    """
    try:
        summary = json.loads(message)
    except ValueError:
        raise SummaryError("the Job's termination message is not a tuning summary") from None
    if not isinstance(summary, dict) or summary.get("v") != SUMMARY_VERSION:
        raise SummaryError("the Job's termination message is not a tuning summary")
    if "error" in summary:
        return {"error": str(summary["error"])}
    try:
        trials = [_trial(row) for row in summary["rows"]]
        winner = summary.get("winner")
        return {
            "grid": int(summary["grid"]),
            "stopped": str(summary["stopped"]),
            "trials": trials,
            "trialsOmitted": int(summary.get("omitted", 0)),
            "winner": None if winner is None else trials[int(winner)],
            "patch": summary.get("patch"),
        }
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise SummaryError(f"the Job's tuning summary is malformed: {error!r}") from None


def _trial(row: Sequence[Any]) -> dict[str, Any]:
    if len(row) != len(_ROW_FIELDS):
        raise ValueError(f"a trial row has {len(row)} fields, expected {len(_ROW_FIELDS)}")
    values = dict(zip(_ROW_FIELDS, row, strict=True))
    trial = {key: value for key, value in values.items() if value is not None}
    trial["measured"] = bool(values["measured"])
    trial["accepted"] = values["reason"] is None
    return trial
