"""Certificates of the test bed, made with the openssl command (no Python crypto needed).

One CA signs everything: the apiserver's serving certificate, the client certificates
(whose subject O= becomes the Kubernetes group) and, through the controller-manager,
CSRs. ECDSA P-256 keys are generated in milliseconds, unlike RSA.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tenfold_tools.testbed.layout import TestbedError

CA_DAYS: Final = 3650
CERT_DAYS: Final = 365
SERVICE_ACCOUNT_KEY: Final = "service-account"


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class KeyPair:
    """A bare key pair, both PEM files."""

    public: Path
    private: Path


def _openssl(*args: str, stdin: str | None = None) -> None:
    """Run openssl quietly; raise with its stderr on failure."""
    binary = shutil.which("openssl")
    if binary is None:
        raise TestbedError("openssl not found: install it (Debian: apt-get install openssl)")
    proc = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TestbedError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _new_key(path: Path) -> None:
    """Write a new ECDSA P-256 private key (PKCS#8), readable by its owner only."""
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )
    path.chmod(0o600)


def create_ca(pki: Path, common_name: str, name: str = "ca") -> CertPair:
    """Create a self-signed CA as <name>.crt and <name>.key."""
    pair = CertPair(pki / f"{name}.crt", pki / f"{name}.key")
    _new_key(pair.key)
    _openssl(
        "req", "-x509", "-new", "-key", str(pair.key), "-out", str(pair.cert),
        "-days", str(CA_DAYS), "-subj", f"/CN={common_name}",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    return pair


def _subject(common_name: str, organization: str | None) -> str:
    """An openssl -subj string; the apiserver reads O= as the user's group."""
    return f"/O={organization}/CN={common_name}" if organization else f"/CN={common_name}"


def issue_cert(
    ca: CertPair,
    name: str,
    common_name: str,
    *,
    organization: str | None = None,
    server_sans: list[str] | None = None,
) -> CertPair:
    """Issue a client certificate, or a serving one when subject alt names are given."""
    pki = ca.cert.parent
    pair = CertPair(pki / f"{name}.crt", pki / f"{name}.key")
    csr, extensions = pki / f"{name}.csr", pki / f"{name}.ext"
    _new_key(pair.key)
    _openssl("req", "-new", "-key", str(pair.key), "-out", str(csr),
             "-subj", _subject(common_name, organization))  # fmt: skip
    usage = "serverAuth" if server_sans else "clientAuth"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if server_sans:
        lines.append("subjectAltName=" + ",".join(server_sans))
    extensions.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(CERT_DAYS),
        "-extfile", str(extensions), "-out", str(pair.cert),
    )  # fmt: skip
    csr.unlink()
    extensions.unlink()
    return pair


def create_service_account_keys(pki: Path) -> KeyPair:
    """Create the key pair that signs (private) and verifies (public) service-account tokens."""
    pair = KeyPair(pki / f"{SERVICE_ACCOUNT_KEY}.pub", pki / f"{SERVICE_ACCOUNT_KEY}.key")
    _new_key(pair.private)
    _openssl("pkey", "-in", str(pair.private), "-pubout", "-out", str(pair.public))
    return pair
