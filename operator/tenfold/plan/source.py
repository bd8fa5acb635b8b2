"""Model sources that need a volume in the pod (pvc://CLAIM/path)."""

from __future__ import annotations

from dataclasses import dataclass

PVC_SCHEME = "pvc://"
# Where a pvc:// source is mounted, read-only, in the prepare init container.
SOURCE_MOUNT_PATH = "/mnt/tenfold/source"
SOURCE_VOLUME = "model-source"


@dataclass(frozen=True)
class SourceMount:
    """A PersistentVolumeClaim holding the weights and the local path the runtime reads."""

    claim: str
    local_path: str


def source_mount(source: str) -> SourceMount | None:
    """The claim to mount for a pvc:// source; None for sources the runtime reads itself.

    The runtime then only sees a local path: it never needs to know about claims.
    """
    if not source.startswith(PVC_SCHEME):
        return None
    claim, _, sub_path = source[len(PVC_SCHEME) :].partition("/")
    sub_path = sub_path.strip("/")
    local = f"{SOURCE_MOUNT_PATH}/{sub_path}" if sub_path else SOURCE_MOUNT_PATH
    return SourceMount(claim=claim, local_path=local)


def runtime_source(source: str) -> str:
    """The source as the init container sees it (pvc:// rewritten to its mount path)."""
    mount = source_mount(source)
    return mount.local_path if mount else source
