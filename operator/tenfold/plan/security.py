"""Restricted Pod Security Standard settings shared by every pod tenfold creates."""

from __future__ import annotations

from typing import Any

# The NGC Triton image's `triton-server` user; the tenfold runtime image keeps it.
RUNTIME_UID = 1000
TMP_VOLUME = "tmp"


def pod_security_context(uid: int = RUNTIME_UID) -> dict[str, Any]:
    """Pod-level settings the `restricted` profile asks for."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool = True) -> dict[str, Any]:
    """Container-level settings of the `restricted` profile, plus a read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
    }


def tmp_volume(size_limit: str | None = None) -> dict[str, Any]:
    """A writable /tmp, since the root filesystem is read-only."""
    return {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": size_limit} if size_limit else {}}


def tmp_mount() -> dict[str, Any]:
    """Mount of `tmp_volume()` at /tmp."""
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}
