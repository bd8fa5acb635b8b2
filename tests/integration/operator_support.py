"""Run the operator as a subprocess against the test bed, and wait on what it does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.rest import ApiException

from tenfold import constants
from tenfold_tools.testbed import Kubectl, wait_established
from tenfold_tools.testbed.health import wait_until
from tenfold_tools.testbed.procs import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "serving.tenfold.dev_inferenceservices.yaml"
TUNING_CRD_FILE = REPO_ROOT / "crds" / "serving.tenfold.dev_inferencetunings.yaml"
OPERATOR_START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class OperatorProcess:
    """`tenfold run` as users run it, with its output in a log file."""

    def __init__(
        self, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ):
        """`args` go after `tenfold run`'s own (e.g. `--namespace=NAME` per namespace)."""
        self.log_path = log_path
        self.args = args
        self.liveness_port = free_port()
        self._env = {
            **os.environ,
            "TENFOLD_TICK_SECONDS": "1",
            # Several operators run side by side in the tests: each gets its own port.
            "TENFOLD_METRICS_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._read_offset = 0

    def start(self) -> OperatorProcess:
        """Start the operator and wait until its liveness endpoint answers."""
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenfold.cli",
                "run",
                "--standalone",
                "--verbose",
                f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz",
                *self.args,
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env,
            start_new_session=True,
        )
        wait_until(
            self._alive,
            "the operator's liveness endpoint",
            timeout=OPERATOR_START_TIMEOUT,
            interval=0.3,
        )
        return self

    def _alive(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(f"operator exited early:\n{self.log_text()[-4000:]}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.liveness_port)) == 0

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if kopf does not finish in time."""
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()

    @property
    def metrics_url(self) -> str:
        """The operator's Prometheus endpoint."""
        return f"http://127.0.0.1:{self._env['TENFOLD_METRICS_PORT']}/metrics"

    def log_text(self) -> str:
        """Everything the operator printed so far."""
        return self.log_path.read_text(errors="replace")

    def new_output(self) -> str:
        """What the operator printed since the last call."""
        text = self.log_text()
        fresh, self._read_offset = text[self._read_offset :], len(text)
        return fresh


class PeeringOperator(OperatorProcess):
    """`tenfold run --peering=NAME`, as the chart runs more than one replica."""

    def __init__(self, log_path: Path, env: dict[str, str] | None, peering: str):
        super().__init__(log_path, env)
        self.peering = peering

    def start(self) -> PeeringOperator:
        """Start with peering instead of --standalone; wait for the liveness endpoint."""
        liveness = f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"
        command = [sys.executable, "-m", "tenfold.cli", "run", f"--peering={self.peering}"]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*command, liveness],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )
        wait_until(self._alive, "the operator's liveness endpoint",
                   timeout=OPERATOR_START_TIMEOUT, interval=0.3)  # fmt: skip
        return self


def install_crd(kubectl: Kubectl) -> None:
    """Apply the committed CRDs (both tenfold kinds) and wait until the apiserver serves them."""
    kubectl("apply", "--server-side", "-f", str(CRD_FILE), "-f", str(TUNING_CRD_FILE))
    wait_established(kubectl, "crd/inferenceservices.serving.tenfold.dev")
    wait_established(kubectl, "crd/inferencetunings.serving.tenfold.dev")


def load_manifest(path: Path, name: str | None = None) -> dict[str, Any]:
    """An example manifest, optionally renamed."""
    document = yaml.safe_load(path.read_text())
    if name:
        document["metadata"]["name"] = name
    return document


def apply_manifest(
    kubectl: Kubectl, namespace: str, document: dict[str, Any], *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """kubectl apply a manifest into a namespace (client-side, as most users do)."""
    return kubectl(
        "apply", "-n", namespace, "-f", "-", *extra, input=json.dumps(document), check=check
    )


def get_json(kubectl: Kubectl, namespace: str, *what: str) -> dict[str, Any]:
    """`kubectl get -o json` of one object."""
    return json.loads(kubectl("get", "-n", namespace, *what, "-o", "json").stdout)


def get_json_or_none(kubectl: Kubectl, namespace: str, *what: str) -> dict[str, Any] | None:
    """Like get_json, None when the object does not exist."""
    result = kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition_of(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """One condition of an object's status, or {} when absent."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == kind:
            return dict(condition)
    return {}


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Poll until predicate returns something truthy; returns it."""
    found: list[Any] = []

    def check() -> bool:
        value = predicate()
        if value:
            found.append(value)
        return bool(value)

    wait_until(check, what, timeout=timeout, interval=0.5)
    return found[-1]


def wait_condition(
    kubectl: Kubectl, namespace: str, what: str, name: str, kind: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until the object has a condition of `kind`; returns the object."""

    def found() -> dict[str, Any] | None:
        body = get_json(kubectl, namespace, what, name)
        return body if condition_of(body, kind) else None

    return wait_for(found, f"{what}/{name}'s {kind} condition", timeout)


def wait_ready(kubectl: Kubectl, namespace: str, name: str, timeout: float = 120.0) -> dict:
    """Wait for the InferenceService's Ready condition at its current generation."""

    def ready() -> dict | None:
        service = get_json(kubectl, namespace, "inferenceservice", name)
        condition = condition_of(service, "Ready")
        current = service["metadata"]["generation"]
        if condition.get("status") == "True" and condition.get("observedGeneration") == current:
            return service
        return None

    return wait_for(ready, f"InferenceService {namespace}/{name} Ready", timeout)


def settle(seconds: float) -> None:
    """Give the operator ticks to (not) act, for tests that prove nothing happens."""
    time.sleep(seconds)


def dry_run_refusal(api: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Create an InferenceService with a server-side dry run (schema, defaults, CEL run,
    nothing is stored): the apiserver's 422 Status, or None when it accepts. `api` is a
    kubernetes.client.CustomObjectsApi."""
    try:
        api.create_namespaced_custom_object(
            constants.API_GROUP, constants.API_VERSION, namespace, constants.PLURAL, body,
            dry_run="All",
        )  # fmt: skip
    except ApiException as error:
        assert error.status == 422, error.body
        status: dict[str, Any] = json.loads(error.body)
        return status
    return None
