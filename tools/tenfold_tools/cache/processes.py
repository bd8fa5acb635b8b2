"""Local processes for the sidecar's e2e tests and benchmark: Redis, the sidecar, and a
model repository holding the stand-in embedding model for `tenfold_runtime.local`'s Triton.

Everything binds to loopback on free ports and logs into a caller-owned folder. Each
`start_*` returns a `Proc` whose `stop()` ends exactly the process it started.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STANDIN_SOURCE = Path(__file__).with_name("standin_model.py")
STANDIN_MODEL = "embed"
STANDIN_DIM = 384
# The prepare manifest a sidecar in front of the stand-in model reads its identity from.
STANDIN_MANIFEST = {
    "model_name": STANDIN_MODEL,
    "model_version": "1",
    "source_digest": "sha256:" + "a" * 64,
    "precision_served": "fp32",
    "runtime_version": "0.1.0",
}
STANDIN_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 32
input [{{ name: "TEXT", data_type: TYPE_STRING, dims: [ 1 ] }}]
output [{{ name: "EMBEDDING", data_type: TYPE_FP32, dims: [ {dim} ] }}]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
instance_group [{{ kind: KIND_CPU, count: 1 }}]
parameters {{ key: "cost_us_per_item", value: {{ string_value: "{cost_us}" }} }}
"""


@dataclass
class Proc:
    """A started process and where its output goes."""

    popen: subprocess.Popen
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Signal the process and wait for it; kill it if it does not exit in time."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str, proc: Proc) -> None:
    """Poll `check` until it holds; fail with the process's log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s: {proc.log.read_text()[-3000:]}")


def http_ok(url: str) -> bool:
    """Whether GET `url` answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    """Start a process in its own session with stdout and stderr appended to `log`; `env`
    is added to this process's environment."""
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Proc(popen, log)


def redis_pings(port: int) -> bool:
    """Whether a Redis answers PING on loopback `port` (a refusal for want of AUTH is an
    answer: the server is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def start_redis(
    port: int, workdir: Path, appendfsync: str = "always", password: str | None = None
) -> Proc:
    """redis-server on loopback with append-only persistence in `workdir`; with `password`,
    set as the managed Redis's pod sets it (a config file, not argv).

    Tests fsync every write so a restart provably keeps it; `everysec` is what a
    production Redis (and the benchmark) runs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config: list[str] = []
    if password is not None:
        (workdir / "auth.conf").write_text(f"requirepass {password}\n")
        config = [str(workdir / "auth.conf")]
    argv = [
        shutil.which("redis-server") or "redis-server", *config,
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
        "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
    ]  # fmt: skip
    proc = _spawn(argv, workdir / "redis.log")
    wait_until(lambda: redis_pings(port), 20, "redis-server", proc)
    return proc


def write_standin_repository(root: Path, cost_us_per_item: float = 0.0) -> Path:
    """A Triton model repository holding the stand-in embedding model; returns `root`."""
    version_dir = root / STANDIN_MODEL / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STANDIN_SOURCE, version_dir / "model.py")
    config = STANDIN_CONFIG.format(name=STANDIN_MODEL, dim=STANDIN_DIM, cost_us=cost_us_per_item)
    (root / STANDIN_MODEL / "config.pbtxt").write_text(config)
    return root


def start_sidecar(
    args: list[str], log: Path, listen_port: int, env: dict[str, str] | None = None
) -> Proc:
    """`python -m tenfold_runtime.cache ARGS`, ready when its /readyz is OK."""
    proc = _spawn([sys.executable, "-m", "tenfold_runtime.cache", *args], log, env)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{listen_port}/readyz"), 30, "sidecar", proc)
    return proc
