"""The Job that runs one generation of an InferenceTuning, and the ConfigMap it reads.

The Job's pod is the service's own replica as far as measuring goes: the runtime image the
service runs, its node affinity, node selector and tolerations, its CPU, memory and GPUs, its
model source. It runs `tenfold-runtime tune` (the local command, `docs/tuning.md`) on the
service's manifest and the tuning's, and reports through its termination message
(`tenfold.tune.summary`), so the pod needs no service account token and no right at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from tenfold.api.catalog import GpuCatalog, load_catalog
from tenfold.api.spec import InferenceServiceSpec
from tenfold.api.tuning import InferenceTuningSpec
from tenfold.constants import (
    ANNOTATION_PREFIX,
    API_GROUP,
    API_VERSION,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    TUNING_KIND,
)
from tenfold.plan.deployment import (
    DEFAULT_RUNTIME_IMAGE,
    RUNTIME_ENV,
    SHM_VOLUME,
    node_affinity,
    pod_tolerations,
    runtime_image,
    runtime_resources,
)
from tenfold.plan.labels import PART_OF, label_value, object_meta, owner_reference
from tenfold.plan.render import render_yaml
from tenfold.plan.security import (
    container_security_context,
    pod_security_context,
    tmp_mount,
    tmp_volume,
)
from tenfold.plan.source import SOURCE_MOUNT_PATH, SOURCE_VOLUME, source_mount
from tenfold.plan.storage import TMP_EXTRA_BYTES, mebibytes, model_memory_bytes

TUNING_APP_NAME = "tenfold-tuning"
COMPONENT_TUNING = "tuning"
# Which InferenceTuning a Job, its pod and its ConfigMap belong to (the Job watch reads it).
TUNING_LABEL = f"{ANNOTATION_PREFIX}/tuning"
TUNING_MOUNT_PATH = "/etc/tenfold/tuning"
INPUTS_MOUNT_PATH = "/etc/tenfold/tuning-inputs"
INPUTS_FILE = "inputs.txt"
INPUTS_VOLUME = "inputs"
SERVICE_FILE = "service.yaml"
TUNING_FILE = "tuning.yaml"
OUTPUT_PATH = "/tmp/tune"
INPUT_VOLUME = "tuning"
# The kubelet's default termination message file: the summary goes there.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# Beyond the search budget: start, one prepare per precision, the report. Without a minutes
# budget the Job still ends: a search that outlives this is stuck, not thorough.
DEADLINE_SLACK_SECONDS = 15 * 60
DEFAULT_DEADLINE_SECONDS = 6 * 3600
_NAME_LIMIT = 63  # the Job controller copies the Job's name into a label of its pods


def tuning_job_name(tuning: str, generation: int) -> str:
    """`<tuning>-tune-<generation>`, shortened with a hash when a label could not hold it."""
    name = f"{tuning}-tune-{generation}"
    if len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(tuning.encode()).hexdigest()[:8]
    suffix = f"-{digest}-tune-{generation}"
    return tuning[: _NAME_LIMIT - len(suffix)].rstrip("-.") + suffix


def tuning_labels(tuning: str) -> dict[str, str]:
    """Labels of everything one tuning makes; no instance label, so no service's prune or
    selector ever matches them."""
    return {
        LABEL_NAME: TUNING_APP_NAME,
        LABEL_COMPONENT: COMPONENT_TUNING,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: PART_OF,
        TUNING_LABEL: label_value(tuning),
    }


def tuning_selector(tuning: str) -> str:
    """The label selector of one tuning's Jobs (and their ConfigMaps)."""
    return f"{TUNING_LABEL}={tuning_labels(tuning)[TUNING_LABEL]}"


def _meta(tuning: str, namespace: str, generation: int, uid: str) -> dict[str, Any]:
    meta = object_meta(tuning_job_name(tuning, generation), namespace, tuning_labels(tuning))
    # Deleting the tuning deletes its Jobs and ConfigMaps.
    meta["ownerReferences"] = [owner_reference(tuning, uid, TUNING_KIND)]
    return meta


def build_tuning_config_map(
    tuning: str,
    namespace: str,
    generation: int,
    uid: str,
    service: Mapping[str, Any],
    tuning_spec: Mapping[str, Any],
) -> dict[str, Any]:
    """The two manifests the search reads: the service as stored, and this tuning's spec.

    One per generation, named like its Job: a Job still running keeps its own input.
    """
    service_manifest = {
        "apiVersion": service["apiVersion"],
        "kind": service["kind"],
        "metadata": {"name": service["metadata"]["name"], "namespace": namespace},
        "spec": dict(service["spec"]),
    }
    tuning_manifest = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": TUNING_KIND,
        "metadata": {"name": tuning, "namespace": namespace},
        "spec": dict(tuning_spec),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(tuning, namespace, generation, uid),
        "data": {
            SERVICE_FILE: render_yaml([service_manifest]),
            TUNING_FILE: render_yaml([tuning_manifest]),
        },
    }


def tuning_command(inputs: bool = False) -> list[str]:
    """`tenfold-runtime tune` on the mounted manifests (and inputs), its summary as
    termination message."""
    extra = ["--inputs", f"{INPUTS_MOUNT_PATH}/{INPUTS_FILE}"] if inputs else []
    return [
        "tenfold-runtime",
        "tune",
        "-f",
        f"{TUNING_MOUNT_PATH}/{SERVICE_FILE}",
        "--tuning",
        f"{TUNING_MOUNT_PATH}/{TUNING_FILE}",
        "--patch",
        "--output",
        OUTPUT_PATH,
        "--summary",
        TERMINATION_MESSAGE_PATH,
        *extra,
    ]


def deadline_seconds(tuning: InferenceTuningSpec) -> int:
    """activeDeadlineSeconds: the budget's minutes plus slack, else a ceiling."""
    if tuning.budget.minutes is None:
        return DEFAULT_DEADLINE_SECONDS
    return int(tuning.budget.minutes * 60) + DEADLINE_SLACK_SECONDS


def scratch_size(spec: InferenceServiceSpec, catalog: GpuCatalog, precisions: int) -> str:
    """/tmp holds the fetched weights, one prepared model per precision and the caches."""
    weights = model_memory_bytes(spec, catalog)
    return mebibytes(weights * (1 + max(1, precisions)) + TMP_EXTRA_BYTES)


def build_tuning_job(
    tuning: str,
    namespace: str,
    generation: int,
    uid: str,
    tuning_spec: InferenceTuningSpec,
    spec: InferenceServiceSpec,
    *,
    precisions: int,
    catalog: GpuCatalog | None = None,
    default_image: str = DEFAULT_RUNTIME_IMAGE,
) -> dict[str, Any]:
    """The Job of one tuning generation, placed and sized as one replica of the service."""
    catalog = catalog or load_catalog()
    affinity = node_affinity(spec, catalog)
    mounts = [
        {"name": INPUT_VOLUME, "mountPath": TUNING_MOUNT_PATH, "readOnly": True},
        tmp_mount(),
        {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": INPUT_VOLUME, "configMap": {"name": tuning_job_name(tuning, generation)}},
        tmp_volume(scratch_size(spec, catalog, precisions)),
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    inputs = tuning_spec.load.inputs
    if inputs is not None:
        mounts.append({"name": INPUTS_VOLUME, "mountPath": INPUTS_MOUNT_PATH, "readOnly": True})
        volumes.append(
            {
                "name": INPUTS_VOLUME,
                "configMap": {
                    "name": inputs.config_map_name,
                    "items": [{"key": inputs.key, "path": INPUTS_FILE}],
                },
            }
        )
    source = source_mount(spec.model.source)
    if source:
        mounts.append({"name": SOURCE_VOLUME, "mountPath": SOURCE_MOUNT_PATH, "readOnly": True})
        volumes.append(
            {
                "name": SOURCE_VOLUME,
                "persistentVolumeClaim": {"claimName": source.claim, "readOnly": True},
            }
        )
    container = {
        "name": "tune",
        "image": runtime_image(spec, default_image),
        "command": tuning_command(inputs=inputs is not None),
        "env": [dict(e) for e in RUNTIME_ENV],
        "resources": runtime_resources(spec),
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        # The summary on success; a crash (OOM, a bug) leaves the log's tail instead.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
        "affinity": affinity,
    }
    if spec.hardware.node_selector:
        pod["nodeSelector"] = dict(sorted(spec.hardware.node_selector.items()))
    tolerations = pod_tolerations(spec)
    if tolerations:
        pod["tolerations"] = tolerations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(tuning, namespace, generation, uid),
        "spec": {
            # A search that died is reported, not silently run again on the node's capacity.
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_seconds(tuning_spec),
            "template": {"metadata": {"labels": tuning_labels(tuning)}, "spec": pod},
        },
    }
