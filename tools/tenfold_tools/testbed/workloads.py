"""What the demo and the node tests put on the real node: the operator through its Helm
chart, and small Python pods (a web server, a client that sends embedding requests)."""

from __future__ import annotations

import json
import subprocess
from typing import Any, Final

from tenfold_tools.testbed.cluster import Testbed
from tenfold_tools.testbed.layout import REPO_ROOT, TestbedError

OPERATOR_NAMESPACE: Final = "tenfold-system"
RELEASE: Final = "tenfold"
CHART: Final = REPO_ROOT / "charts" / "tenfold"
# The operator image's non-root user; any pod of that image runs as it.
OPERATOR_IMAGE_UID: Final = 10001
# What PodSecurity's `restricted` profile demands of a container.
RESTRICTED_CONTAINER: Final = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": OPERATOR_IMAGE_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
SLEEPER: Final = "import time\nwhile True: time.sleep(3600)"

# Sent from a client pod: HTTP through the cache sidecar (JSON, as the sidecar caches per
# item), gRPC straight to Triton, both to the Service by name; prints both answers as JSON.
# Usage: python3 -c EMBED_CLIENT <service host> <model> <json list of texts>
EMBED_CLIENT: Final = """
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
host, model, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
def inputs(module, **options):
    array = np.array([[t.encode()] for t in texts], dtype=object)
    tensor = module.InferInput("TEXT", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array, **options)
    return [tensor]
with httpclient.InferenceServerClient(f"{host}:8080") as http:
    over_http = http.infer(model, inputs(httpclient, binary_data=False)).as_numpy("EMBEDDING")
grpc = grpcclient.InferenceServerClient(f"{host}:8001")
over_grpc = grpc.infer(model, inputs(grpcclient)).as_numpy("EMBEDDING")
print(json.dumps({"http": over_http.tolist(), "grpc": over_grpc.tolist()}))
"""


def python_pod(
    name: str, image: str, code: str, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A pod running one Python program from an image of ours, restricted settings."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", code],
                    "securityContext": RESTRICTED_CONTAINER,
                }
            ],
        },
    }


def image_by_name(images: dict[str, Any]) -> dict[str, str]:
    """Short name ("operator", "runtime-cpu") -> full reference."""
    return {ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]: ref for ref in images}


def helm(testbed: Testbed, *args: str, timeout: float = 300) -> str:
    """Run the pinned helm against the test bed; raise with its output on failure."""
    argv = [str(testbed.binaries.helm), *args, f"--kubeconfig={testbed.kubeconfig}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise TestbedError(f"helm {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def install_operator(testbed: Testbed, images: dict[str, str], *extra: str) -> str:
    """`helm install` the chart with the images built here; returns the operator pod's name.

    The operator image's pull policy is Never: the node holds it, and no registry does.
    """
    operator_repo, operator_tag = images["operator"].rsplit(":", 1)
    runtime_repo, runtime_tag = images["runtime-cpu"].rsplit(":", 1)
    helm(testbed, "install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE,
         "--create-namespace", "--wait", "--timeout=240s",
         f"--set=image.repository={operator_repo}", f"--set=image.tag={operator_tag}",
         "--set=image.pullPolicy=Never", f"--set=runtimeImage.repository={runtime_repo}",
         f"--set=runtimeImage.tag={runtime_tag}", *extra)  # fmt: skip
    pods = json.loads(
        testbed.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "json").stdout
    )["items"]
    names = [p["metadata"]["name"] for p in pods if p["metadata"]["name"].startswith(RELEASE)]
    if len(names) != 1:
        raise TestbedError(f"expected one operator pod in {OPERATOR_NAMESPACE}, found {names}")
    return names[0]


def uninstall_operator(testbed: Testbed) -> None:
    """`helm uninstall` the operator release."""
    helm(testbed, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait")
