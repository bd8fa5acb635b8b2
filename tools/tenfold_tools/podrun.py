"""Run the containers of a pod the operator rendered on this machine, as the kubelet would.

The init container (`tenfold-runtime prepare`) and the Triton container keep the exact
command and arguments of the rendered Deployment; only pod paths are mapped to local folders
(the ConfigMap volume at /etc/tenfold, the /models emptyDir) and Triton's ports to free
loopback ones. The demo and the e2e tests use it to prove the rendered manifests serve.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tenfold.constants import PREPARE_MANIFEST_FILE
from tenfold_runtime.local import TritonHandle, start_triton

log = logging.getLogger(__name__)

# Where the rendered pod mounts the ConfigMap (prepare.json, config.pbtxt).
CONFIG_MOUNT = "/etc/tenfold"


class PodRunError(RuntimeError):
    """A rendered container did not run as expected on this machine."""


def containers_by_name(deployment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The pod template's init and main containers by name."""
    pod = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}


def container_argv(container: Mapping[str, Any]) -> list[str]:
    """What the container runs: its command followed by its args."""
    return [*container.get("command", []), *container.get("args", [])]


def localize_args(argv: Sequence[str], mapping: Mapping[str, str]) -> list[str]:
    """Replace pod paths and addresses in a command with local ones (plain substrings)."""
    localized = []
    for arg in argv:
        for pod_value, local_value in mapping.items():
            arg = arg.replace(pod_value, local_value)
        localized.append(arg)
    return localized


def resolve_executable(argv: Sequence[str]) -> list[str]:
    """The image has its console scripts on PATH; here they sit next to this interpreter."""
    if not argv or shutil.which(argv[0]):
        return list(argv)
    beside = Path(sys.executable).parent / argv[0]
    return [str(beside), *argv[1:]] if beside.is_file() else list(argv)


def write_config_volume(data: Mapping[str, str], folder: Path) -> Path:
    """The ConfigMap's keys as files, the way the kubelet projects the volume."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        (folder / key).write_text(value)
    return folder


def run_init_container(
    container: Mapping[str, Any],
    config_data: Mapping[str, str],
    workdir: Path,
    *,
    timeout: float = 900.0,
    show_output: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Run the rendered prepare container; returns the model repository and its manifest.

    The repository goes to `workdir/models` (the pod's emptyDir) through prepare's own
    `--repository` flag, added after the rendered arguments. `show_output` lets prepare's
    log and progress reach this terminal instead of being kept for the error message.
    """
    etc = write_config_volume(config_data, workdir / "etc-tenfold")
    models = workdir / "models"
    argv = localize_args(container_argv(container), {CONFIG_MOUNT: str(etc)})
    argv = [*resolve_executable(argv), "--repository", str(models)]
    log.info("init container: %s", shlex.join(argv))
    env = {
        **os.environ,
        **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
    }
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        argv, env=env, capture_output=not show_output, text=True, timeout=timeout
    )
    if result.returncode != 0:
        command = shlex.join(argv)
        raise PodRunError(
            f"init container exited {result.returncode}: {command}\n{(result.stderr or '')[-3000:]}"
        )
    manifests = sorted(models.glob(f"*/{PREPARE_MANIFEST_FILE}"))
    if len(manifests) != 1:
        raise PodRunError(f"expected one prepared model in {models}, found {len(manifests)}")
    return models, json.loads(manifests[0].read_text())


def start_triton_container(
    container: Mapping[str, Any], models: Path, *, log_path: Path | None = None
) -> TritonHandle:
    """Start the rendered Triton container's command on the prepared repository."""
    return start_triton(models, command=container_argv(container), log_path=log_path)
