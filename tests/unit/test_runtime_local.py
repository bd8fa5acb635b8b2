"""Mapping the pod's tritonserver command onto this machine (pure parts)."""

from pathlib import Path

import pytest

from tenfold_runtime import local
from tenfold_runtime.local import Ports, TritonError


def _localize(command):
    return local.localize_command(
        command,
        binary=Path("/opt/tritonserver"),
        repository=Path("/tmp/repo"),
        ports=Ports(18000, 18001, 18002),
        backend_dir=Path("/b"),
        cache_dir=Path("/c"),
    )


def test_container_command_is_what_the_deployment_renders():
    command = local.container_command(cache_bytes=1024, extra_args=["--log-verbose=1"])
    assert command[0] == "tritonserver"
    assert "--model-repository=/models" in command
    assert "--model-control-mode=none" in command
    assert "--strict-readiness=true" in command
    assert "--cache-config=local,size=1024" in command
    assert command[-1] == "--log-verbose=1"
    assert not any("cache-config" in a for a in local.container_command())


def test_localize_maps_repository_ports_and_adds_plugin_folders():
    command = _localize(local.container_command(cache_bytes=1024))
    assert command[0] == "/opt/tritonserver"
    assert "--model-repository=/tmp/repo" in command
    assert {"--http-port=18000", "--grpc-port=18001", "--metrics-port=18002"} <= set(command)
    assert "--cache-config=local,size=1024" in command
    assert command[-2:] == ["--backend-directory=/b", "--cache-directory=/c"]


def test_localize_keeps_plugin_folders_the_command_already_names():
    command = _localize(["tritonserver", "--backend-directory=/mine"])
    assert command.count("--backend-directory=/mine") == 1
    assert not any(a == "--backend-directory=/b" for a in command)


def test_localize_refuses_other_programs():
    with pytest.raises(TritonError, match="tritonserver"):
        _localize(["python", "-m", "http.server"])


def test_env_puts_this_interpreters_lib_first_then_the_wheel_libs():
    env = local.triton_env(
        {"LD_LIBRARY_PATH": "/usr/x", "HOME": "/root"},
        python_lib=Path("/py/lib"),
        wheel_libs=Path("/wheel/libs"),
        site_packages=Path("/venv/site"),
    )
    assert env["LD_LIBRARY_PATH"] == "/py/lib:/wheel/libs:/usr/x"
    assert env[local.SITE_DIRS_ENV] == "/venv/site"
    assert env["HOME"] == "/root"


def test_free_port_returns_a_bindable_port():
    import socket

    port = local.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_ensembles_need_no_backend_and_platforms_name_theirs():
    from tenfold.api.spec import InferenceServiceSpec
    from tenfold.plan.prepare_spec import build_prepare_spec

    spec = InferenceServiceSpec.model_validate(
        {"model": {"name": "m", "source": "/m"}, "runtime": {"backend": "onnxruntime"}}
    )
    prepare = build_prepare_spec("m", spec)
    configs = {"m": prepare.config_pbtxt, **prepare.step_configs}
    assert local.required_backends(configs) == {"m-tokenizer": "python", "m-encoder": "onnxruntime"}
    assert local.required_backends({"p": 'name: "p" platform: "pytorch_libtorch"'}) == {
        "p": "pytorch"
    }


def test_missing_backends_fail_before_start_naming_model_and_backend(tmp_path):
    backends = tmp_path / "backends"
    (backends / "python").mkdir(parents=True)
    for name, config in {
        "tok": 'name: "tok" backend: "python"',
        "enc": 'name: "enc" platform: "onnxruntime_onnx" backend: "onnxruntime"',
        ".enc.staging": 'name: "x" backend: "tensorrt"',
    }.items():
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.pbtxt").write_text(config)
    with pytest.raises(local.TritonError, match="enc needs onnxruntime") as caught:
        local.check_backends(local.repository_configs(tmp_path / "models"), backends)
    assert "tok" not in str(caught.value) and "tensorrt" not in str(caught.value)
