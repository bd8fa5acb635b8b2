"""The autoscaler's Prometheus client over real TLS: an untrusted certificate is refused,
a certificate signed by the configured CA bundle is accepted (no silent verify=False)."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tenfold.autoscale.signals import PrometheusSignalSource, SignalsUnavailableError

pytestmark = pytest.mark.e2e

EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


class PrometheusApi(BaseHTTPRequestHandler):
    """Answers every instant query with an empty vector, as Prometheus does for no series."""

    def _answer(self) -> None:
        body = json.dumps(EMPTY_VECTOR).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer  # noqa: N815 (http.server's naming)
    do_POST = _answer  # noqa: N815

    def log_message(self, *_: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def https_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An https endpoint speaking Prometheus's query API with a self-signed certificate for
    127.0.0.1; yields its URL and the certificate (the CA bundle that trusts it)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "ca.crt", folder / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), PrometheusApi)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_is_refused(https_prometheus: tuple[str, Path]):
    url, _ = https_prometheus
    with pytest.raises(SignalsUnavailableError, match="(?i)certificate verify failed"):
        PrometheusSignalSource(url, timeout_seconds=5).fetch_all(at=0)


def test_a_certificate_signed_by_the_ca_bundle_is_trusted(https_prometheus: tuple[str, Path]):
    url, ca = https_prometheus
    assert PrometheusSignalSource(url, timeout_seconds=5, ca_file=str(ca)).fetch_all(at=0) == {}
