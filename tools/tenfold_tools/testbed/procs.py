"""Detached processes: start them so they outlive the caller, stop only our own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(argv: list[str], log_file: Path) -> int:
    """Start argv in its own session with output to log_file; return its pid.

    A new session keeps the process alive when the calling shell or pytest exits, and
    keeps terminal signals (Ctrl-C in the caller) away from it.
    """
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def _reap(pid: int) -> None:
    """Collect the exit status if pid is our child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # started by another process (an earlier `up`): init reaps it


def is_alive(pid: int) -> bool:
    """Whether pid runs (a zombie counts as exited)."""
    _reap(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def is_ours(pid: int, marker: str) -> bool:
    """Whether pid is alive and its command line contains marker (our state folder).

    Guards against pid reuse: a recorded pid is only signalled while it still names
    the test bed's own files.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return is_alive(pid) and marker in cmdline


def _wait_exit(pids: list[int], timeout: float) -> list[int]:
    """Wait until the pids exit or timeout passes; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if is_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if is_alive(p)]
    return alive


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send sig, ignoring a process that exited since it was checked."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop(pids: list[int], marker: str, grace: float = 10.0) -> None:
    """SIGTERM the given processes together, then SIGKILL whatever outlives grace."""
    ours = [p for p in pids if is_ours(p, marker)]
    for pid in ours:
        _signal(pid, signal.SIGTERM)
    for pid in _wait_exit(ours, grace):
        _signal(pid, signal.SIGKILL)
    _wait_exit(ours, 5.0)
