"""The tenfold-runtime command line."""

import json

import pytest

from tenfold_runtime import cli, examples
from tenfold_runtime.examples import ModelFormat, Precision


def test_parser_knows_every_subcommand():
    parser = cli.build_parser()
    assert parser.parse_args(["prepare", "--spec", "s.json"]).command == "prepare"
    assert parser.parse_args(["bench", "--levels", "1,8"]).levels == (1, 8)
    assert parser.parse_args(["bench"]).preferred_batch_sizes == ()
    bench = parser.parse_args(["bench", "--preferred-batch-sizes", "8,16"])
    assert bench.preferred_batch_sizes == (8, 16)
    assert parser.parse_args(["serve-local", "--spec", "s.json"]).http_port == 8000


def test_prepare_defaults_to_the_mounted_spec_path():
    assert str(cli.build_parser().parse_args(["prepare"]).spec) == "/etc/tenfold/prepare.json"


def test_prepare_of_an_unsupported_format_exits_with_the_prepare_error_code(tmp_path):
    spec = examples.minilm_spec("m", Precision.FP32, 'name: "m"\n').model_copy(
        update={"format": ModelFormat.ONNX}
    )
    path = tmp_path / "spec.json"
    path.write_text(spec.model_dump_json())
    code = cli.main(["prepare", "--spec", str(path), "--repository", str(tmp_path / "r")])
    assert code == cli.EXIT_PREPARE_ERROR
    assert not (tmp_path / "r" / "m").exists()


def test_cache_subcommand_delegates_its_arguments(monkeypatch):
    import tenfold_runtime.cache

    seen = {}
    monkeypatch.setattr(
        tenfold_runtime.cache, "main", lambda argv: seen.setdefault("argv", argv) and 0
    )
    assert cli.main(["cache", "--help", "--port", "1"]) == 0
    assert seen["argv"] == ["--help", "--port", "1"]


@pytest.mark.parametrize("argv", [[], ["nope"]])
def test_bad_usage_exits_nonzero(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    json.dumps(capsys.readouterr().err)
