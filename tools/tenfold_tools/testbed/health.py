"""Probes and waits: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tenfold_tools.testbed.layout import TestbedError

PROBE_TIMEOUT = 2.0


def wait_until(
    check: Callable[[], bool],
    what: str,
    *,
    timeout: float,
    interval: float = 0.1,
    abort: Callable[[], str | None] = lambda: None,
) -> None:
    """Call check until it returns True; raise TestbedError after timeout seconds.

    abort is asked between tries and may return a reason to give up early (for example
    the process being waited for has exited), so failures surface at once.
    """
    deadline = time.monotonic() + timeout
    while not check():
        reason = abort()
        if reason:
            raise TestbedError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() > deadline:
            raise TestbedError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    """Whether GET url answers 200 (any connection error or other status is False)."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return False


def client_tls(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS context that verifies the apiserver and presents a client certificate."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def loopback_self_signed_tls() -> ssl.SSLContext:
    """TLS context for the health ports of our own loopback processes.

    The controller-manager and scheduler serve /healthz with a certificate they generate
    in memory at start, so there is nothing to verify against.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
