"""Running a rendered pod locally: the pure parts (which container, which argv, which paths)."""

from __future__ import annotations

import sys
from pathlib import Path

from tenfold.api.catalog import load_catalog
from tenfold.api.resource import parse_inference_service
from tenfold.plan import build_plan
from tenfold_tools import podrun
from tests.conftest import load_example


def rendered_containers() -> dict[str, dict]:
    service = parse_inference_service(load_example("minilm-cpu.yaml"))
    objects = build_plan(service.name, "ns", service.spec, replicas=1, catalog=load_catalog())
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return podrun.containers_by_name(deployment)


def test_init_and_main_containers_by_name():
    containers = rendered_containers()
    assert set(containers) == {"prepare", "triton", "cache"}
    argv = podrun.container_argv(containers["prepare"])
    assert argv[:2] == ["tenfold-runtime", "prepare"]
    assert podrun.container_argv(containers["triton"])[0] == "tritonserver"


def test_pod_paths_map_to_local_folders():
    argv = ["tenfold-runtime", "prepare", "--spec", "/etc/tenfold/prepare.json"]
    local = podrun.localize_args(argv, {"/etc/tenfold": "/tmp/x/etc"})
    assert local[-1] == "/tmp/x/etc/prepare.json"
    assert argv[-1] == "/etc/tenfold/prepare.json"  # the rendered argv is left alone


def test_console_scripts_resolve_next_to_the_interpreter(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    resolved = podrun.resolve_executable(["tenfold-runtime", "prepare"])
    assert resolved == [str(Path(sys.executable).parent / "tenfold-runtime"), "prepare"]
    assert podrun.resolve_executable(["no-such-tool", "x"]) == ["no-such-tool", "x"]


def test_config_volume_holds_each_key_as_a_file(tmp_path: Path):
    folder = podrun.write_config_volume({"prepare.json": "{}", "config.pbtxt": "x"}, tmp_path / "v")
    assert sorted(p.name for p in folder.iterdir()) == ["config.pbtxt", "prepare.json"]
