"""Start and stop a real Prometheus (Debian's `prometheus` binary) for tests, and load
a real Triton so it has something to scrape.

Each Prometheus listens on a free loopback port, keeps its TSDB in a caller-owned folder and
scrapes static targets carrying the `namespace` and `service` labels a ServiceMonitor would
add in a cluster. `hack/system-deps.sh` installs the binary.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from tenfold_tools.testbed.procs import free_port

T = TypeVar("T")


@dataclass(frozen=True)
class ScrapeTarget:
    """host:port serving /metrics, and the labels to put on every series it yields."""

    address: str
    labels: Mapping[str, str]


def prometheus_binary() -> str | None:
    """Path of the prometheus binary, or None when it is not installed."""
    return shutil.which("prometheus")


def build_config(targets: Sequence[ScrapeTarget], scrape_interval: str) -> dict[str, object]:
    """A prometheus.yml (as a dict; JSON is valid YAML) with one static config per target."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "triton",
                "static_configs": [
                    {"targets": [target.address], "labels": dict(target.labels)}
                    for target in targets
                ],
            }
        ],
    }


def wait_for(check: Callable[[], T | None], timeout: float, what: str, step: float = 0.25) -> T:
    """Poll `check` until it returns something other than None/False; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


@dataclass
class PrometheusProcess:
    """A running Prometheus; `stop()` ends exactly this process."""

    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def ready(self) -> bool:
        """True when /-/ready answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def targets_up(self) -> bool:
        """True when every active target's last scrape succeeded."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=2) as response:
            active = json.load(response)["data"]["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)


def start_prometheus(
    workdir: Path, targets: Sequence[ScrapeTarget], scrape_interval: str = "1s"
) -> PrometheusProcess:
    """Start Prometheus scraping `targets`; returns once it is ready to answer queries."""
    return start_prometheus_with(workdir, build_config(targets, scrape_interval))


def start_prometheus_with(
    workdir: Path,
    settings: Mapping[str, object],
    *,
    binary: str | None = None,
    listen_host: str = "127.0.0.1",
) -> PrometheusProcess:
    """Start a Prometheus with a whole prometheus.yml (as a dict) on listen_host; returns
    once it is ready. binary: another build than Debian's (one with Kubernetes discovery)."""
    binary = binary or prometheus_binary()
    if binary is None:
        raise FileNotFoundError("prometheus is not installed (hack/system-deps.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps(settings, indent=2))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={listen_host}:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = PrometheusProcess(popen, f"http://{listen_host}:{port}", log)
    try:
        wait_for(lambda: process.popen.poll() is None and process.ready(), 30, "Prometheus")
    except BaseException:
        process.stop()
        raise
    return process


@dataclass
class Load:
    """A closed-loop load: `concurrency` clients sending one text each, back to back."""

    url: str
    concurrency: int
    model: str = "embed"
    done: int = 0
    started: float = 0.0
    # wall-clock completion times: Prometheus' window is in wall-clock time too
    completed_at: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, seconds: float) -> threading.Thread:
        """Start the load in the background for `seconds`."""
        self.stop = threading.Event()
        self.started = time.monotonic()
        thread = threading.Thread(target=self._drive, args=(seconds,), daemon=True)
        thread.start()
        return thread

    def _drive(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with ThreadPoolExecutor(self.concurrency) as pool:
            clients = [pool.submit(self._client, deadline) for _ in range(self.concurrency)]
        for client in clients:
            client.result()  # a failed client surfaces as pytest's unhandled-thread warning

    def _client(self, deadline: float) -> None:
        import tritonclient.http as http

        client = http.InferenceServerClient(self.url)
        text = http.InferInput("TEXT", [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[b"tenfold autoscaling"]], dtype=object))
        while time.monotonic() < deadline and not self.stop.is_set():
            client.infer(self.model, [text])
            finished = time.time()
            with self._count_lock:
                self.done += 1
                self.completed_at.append(finished)
        client.close()

    def rate_between(self, start: float, end: float) -> float:
        """Requests/s completed in the wall-clock window [start, end)."""
        with self._count_lock:
            count = sum(1 for moment in self.completed_at if start <= moment < end)
        return count / (end - start)
