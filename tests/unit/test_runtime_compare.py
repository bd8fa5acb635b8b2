"""compare-backends: the pure parts (rate loop, cosine, table)."""

from __future__ import annotations

import numpy as np

from tenfold_runtime import cli, compare


def test_rate_counts_texts_per_second_over_whole_batches():
    calls: list[int] = []

    def run(texts):
        calls.append(len(texts))
        return np.zeros((len(texts), 2))

    texts_per_second = compare.rate(run, ["a", "b", "c"], batch=4, seconds=0.05)
    assert set(calls) == {3, 4}  # the warm-up takes what there is; then full batches
    assert texts_per_second > 0


def test_mean_cosine_of_unit_rows():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert compare.mean_cosine(a, a) == 1.0
    assert compare.mean_cosine(a, b) == 0.5


def test_table_has_a_column_per_batch_and_the_command():
    rows = [compare.Row("onnxruntime", "int8", {1: 456.2, 16: 647.25}, 0.99381)]
    table = compare.markdown(rows, [1, 16], "tenfold-runtime compare-backends")
    assert "| onnxruntime | int8 | 456.2 | 647.2 | 0.9938 |" in table
    assert "batch 16 texts/s" in table
    assert "Command: `tenfold-runtime compare-backends`" in table


def test_parser_defaults():
    args = cli.build_parser().parse_args(["compare-backends"])
    assert (args.batches, args.seconds) == ((1, 16), 8.0)
