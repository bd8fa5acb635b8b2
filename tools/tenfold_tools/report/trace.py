"""Workload traces: one row per second with the request rate and the share of repeats.

A trace is what the report replays. It is either generated (seeded: a daily shape, bursts,
a share of repeated inputs that rises with the load) or read from a CSV file a team exports
from its own traffic:

    second,rate,repeat_share
    0,12.5,0.30
    1,13.0,0.31

`schedule` turns a trace into requests: Poisson arrivals within each second, each request
a new text (real sentences, so text lengths follow real text) or, with the row's repeat
share, an earlier text chosen by popularity (Zipf over the texts seen so far).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

HEADER = ("second", "rate", "repeat_share")
# Repeats are drawn from the first POPULAR_POOL distinct texts with Zipf weights: a few
# queries are asked again and again, most only now and then.
POPULAR_POOL = 500
ZIPF_EXPONENT = 1.1
_ZIPF_CUMULATIVE = tuple(
    accumulate(1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(POPULAR_POOL))
)


class TraceError(ValueError):
    """A trace file that cannot be replayed; the message names the row and the column."""


@dataclass(frozen=True)
class TraceRow:
    """One second of a trace."""

    second: int
    rate: float
    repeat_share: float


@dataclass(frozen=True)
class Request:
    """One request of a schedule: when it is sent (s from the start) and what it asks."""

    at_s: float
    text: str
    repeat: bool


def generate(
    seconds: int,
    peak: float,
    trough_share: float = 0.1,
    bursts: int = 6,
    repeat_share: float = 0.35,
    seed: int = 7,
) -> list[TraceRow]:
    """A day compressed into `seconds`: a night trough at `trough_share` of the peak, a
    midday peak, and `bursts` sudden bursts (x1.5 to x2.5, each 0.3-1.5 % of the day) at
    seeded times; then scaled so the highest second is `peak` requests/s. The repeat share
    averages about `repeat_share` and rises with the load (busy hours repeat popular queries).
    """
    if seconds < 1 or peak <= 0:
        raise TraceError(f"seconds must be >= 1 and peak > 0, got {seconds} and {peak}")
    rng = random.Random(seed)
    shape = [
        trough_share + (1 - trough_share) * (0.5 - 0.5 * math.cos(2 * math.pi * t / seconds)) ** 1.5
        for t in range(seconds)
    ]
    busy = list(shape)
    for _ in range(bursts):
        length = max(1, int(seconds * rng.uniform(0.003, 0.015)))
        start, factor = rng.randrange(max(1, seconds - length)), rng.uniform(1.5, 2.5)
        for t in range(start, min(seconds, start + length)):
            shape[t] *= factor
    top = max(shape)
    return [
        TraceRow(t, peak * value / top, min(0.9, repeat_share * (0.7 + 0.6 * busy[t])))
        for t, value in enumerate(shape)
    ]


def scaled(rows: Sequence[TraceRow], peak: float) -> list[TraceRow]:
    """The same trace with rates scaled so its busiest second is `peak` requests/s."""
    top = max(row.rate for row in rows)
    factor = peak / top if top > 0 else 0.0
    return [TraceRow(row.second, row.rate * factor, row.repeat_share) for row in rows]


def compressed(rows: Sequence[TraceRow], seconds: int) -> list[TraceRow]:
    """The trace squeezed into `seconds`: each new second is the mean of its share of the
    old ones (rates and repeat shares), so the shape, bursts included, survives."""
    if seconds >= len(rows):
        return list(rows)
    out = []
    for t in range(seconds):
        part = rows[t * len(rows) // seconds : (t + 1) * len(rows) // seconds]
        rate = sum(row.rate for row in part) / len(part)
        share = sum(row.repeat_share for row in part) / len(part)
        out.append(TraceRow(t, rate, share))
    return out


def _number(text: str, row: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"row {row}: {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceError(f"row {row}: {column}: {text!r} is not finite")
    return value


def parse_row(fields: Sequence[str], row: int) -> TraceRow:
    """One CSV row, checked: consecutive seconds, a rate >= 0, a share in [0, 1]."""
    if len(fields) != len(HEADER):
        raise TraceError(f"row {row}: expected {len(HEADER)} columns {HEADER}, got {len(fields)}")
    second = _number(fields[0], row, "second")
    if second != row - 2:
        raise TraceError(f"row {row}: second: expected {row - 2} (one row per second from 0)")
    rate = _number(fields[1], row, "rate")
    if rate < 0:
        raise TraceError(f"row {row}: rate: {rate} is negative")
    share = _number(fields[2], row, "repeat_share")
    if not 0 <= share <= 1:
        raise TraceError(f"row {row}: repeat_share: {share} is not in [0, 1]")
    return TraceRow(int(second), rate, share)


def read_csv(text: str) -> list[TraceRow]:
    """A trace file (header `second,rate,repeat_share`, then one row per second from 0).
    Row numbers in errors are the file's line numbers."""
    lines = list(csv.reader(io.StringIO(text)))
    if not lines or tuple(cell.strip() for cell in lines[0]) != HEADER:
        raise TraceError(f"row 1: the header must be {','.join(HEADER)}")
    rows = [
        parse_row([cell.strip() for cell in fields], n) for n, fields in enumerate(lines[1:], 2)
    ]
    if not rows:
        raise TraceError("the trace has no rows")
    if max(row.rate for row in rows) <= 0:
        raise TraceError("every rate is 0: nothing to replay")
    return rows


def write_csv(rows: Sequence[TraceRow]) -> str:
    """The trace as a file `read_csv` reads back."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((row.second, f"{row.rate:.3f}", f"{row.repeat_share:.4f}") for row in rows)
    return out.getvalue()


def new_text(texts: Sequence[str], index: int) -> str:
    """The `index`-th new text: the corpus in order, then again with a round number, so
    every new text is distinct (a cache never answers it) and keeps a real length."""
    cycle, position = divmod(index, len(texts))
    return texts[position] if cycle == 0 else f"{texts[position]} ({cycle})"


def schedule(rows: Sequence[TraceRow], texts: Sequence[str], seed: int = 7) -> list[Request]:
    """Requests of the trace: exponential gaps at each second's rate (Poisson arrivals);
    each is a repeat of a popular earlier text with the second's repeat share, else new."""
    if not texts:
        raise TraceError("no texts to send")
    rng = random.Random(seed)
    seen: list[str] = []
    requests: list[Request] = []
    for row in rows:
        at = float(row.second)
        while row.rate > 0:
            at += rng.expovariate(row.rate)
            if at >= row.second + 1:
                break
            if seen and rng.random() < row.repeat_share:
                pool = min(len(seen), POPULAR_POOL)
                (text,) = rng.choices(seen[:pool], cum_weights=_ZIPF_CUMULATIVE[:pool])
                requests.append(Request(at, text, True))
            else:
                text = new_text(texts, len(seen))
                seen.append(text)
                requests.append(Request(at, text, False))
    return requests
