"""prometheus-operator against a test bed: its CRDs, and the operator as a host process.

The operator is the one built from its Go module (hack/testbed/build.sh); it reads the
apiserver through the test bed's admin kubeconfig, as a developer's operator would, and
turns Prometheus and ServiceMonitor objects into a Prometheus StatefulSet and its scrape
configuration. The StatefulSet's pods run on the real node from images built here
(hack/images/build.sh: `prometheus`, `prometheus-config-reloader`).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tenfold_tools.testbed.cluster import Testbed, wait_established
from tenfold_tools.testbed.health import http_ok, wait_until
from tenfold_tools.testbed.layout import TestbedError
from tenfold_tools.testbed.procs import free_port

START_TIMEOUT = 60.0


def install_crds(testbed: Testbed) -> None:
    """Apply the module's CRDs (server-side: the Prometheus CRD is too large for the
    last-applied annotation of a client-side apply) and wait until they are served."""
    crds = testbed.binaries.prometheus_operator_crds
    testbed.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    wait_established(testbed.kubectl, "-f", str(crds))


@dataclass
class PrometheusOperator:
    """A running prometheus-operator; `stop()` ends exactly this process."""

    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def healthy(self) -> bool:
        """True when its /healthz answers 200."""
        return http_ok(f"{self.url}/healthz")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def start_prometheus_operator(
    testbed: Testbed, workdir: Path, reloader_image: str
) -> PrometheusOperator:
    """Start the operator on the host with the test bed's kubeconfig; returns once healthy.

    reloader_image: the config-reloader image the node holds (the operator's default names
    a registry). Its own HTTP endpoint (metrics, /healthz) listens on a free loopback port.
    """
    binary = testbed.binaries.prometheus_operator
    if not binary.exists():
        raise TestbedError(f"{binary} is missing: run hack/testbed/build.sh")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "prometheus-operator.log"
    argv = [
        str(binary),
        f"--prometheus-config-reloader={reloader_image}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log-level=info",
    ]
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(testbed.kubeconfig)},
        )
    operator = PrometheusOperator(popen, f"http://127.0.0.1:{port}", log)

    def exited() -> str | None:
        return f"prometheus-operator exited; see {log}" if popen.poll() is not None else None

    try:
        wait_until(operator.healthy, "prometheus-operator to answer /healthz",
                   timeout=START_TIMEOUT, interval=0.5, abort=exited)  # fmt: skip
    except BaseException:
        operator.stop()
        raise
    return operator
