"""What the demo and the node tests put on the real node: the operator through its Helm
chart, and small Python pods (a web server, a client that sends embedding requests)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterable
from typing import Any, Final

from tenfold.constants import CACHE_METRICS_PORT
from tenfold_tools.testbed.cluster import Testbed, status
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


# Closed-loop load through a Service from a client pod (its image has tritonclient):
#   python3 -c LOAD_CLIENT <host> <model> <seconds> <concurrency> <port>
# Sends one new text per request (nothing a cache could answer) for `seconds`, or, when
# seconds <= 0, until its stdin closes (`kubectl exec -i`: the caller decides when the load
# ends). Prints one JSON line: requests that succeeded and failed, the first errors, and p95
# latency per 10 s window. Each client opens a new connection every 20 requests, as a crowd
# of short-lived clients would: kube-proxy spreads connections, so one long-lived connection
# never reaches a new replica.
LOAD_CLIENT: Final = """
import json, sys, threading, time
import numpy as np
import tritonclient.http as httpclient
host, model, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
concurrency, port = int(sys.argv[4]), int(sys.argv[5])
RECONNECT_EVERY = 20
start = time.monotonic(); ok = []; errors = []; lock = threading.Lock(); done = threading.Event()
if seconds <= 0:
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
def running():
    return not done.is_set() and (seconds <= 0 or time.monotonic() - start < seconds)
def connect():
    return httpclient.InferenceServerClient(
        f"{host}:{port}", connection_timeout=10, network_timeout=10)
def client(i):
    http = connect(); n = 0
    while running():
        n += 1
        if n % RECONNECT_EVERY == 0:  # kube-proxy balances connections, not requests
            http.close(); http = connect()
        text = np.array([[f"load {i} {n} on the real node".encode()]], dtype=object)
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES"); tensor.set_data_from_numpy(text)
        sent = time.monotonic()
        try:
            http.infer(model, [tensor])
            with lock: ok.append((sent - start, time.monotonic() - sent))
        except Exception as error:
            with lock: errors.append(f"{sent - start:.1f}s {type(error).__name__}: {error}")
            http.close(); http = connect()
threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
[t.start() for t in threads]; [t.join() for t in threads]
windows = {}
for at, latency in ok: windows.setdefault(int(at // 10), []).append(latency)
p95 = {w * 10: sorted(v)[int(0.95 * (len(v) - 1))] * 1000 for w, v in sorted(windows.items())}
print(json.dumps({"ok": len(ok), "failed": len(errors), "errors": errors[:10],
                  "p95_ms_by_window": p95}))
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


def image_by_name(images: Iterable[str]) -> dict[str, str]:
    """Short name ("operator", "runtime-cpu") -> full reference."""
    return {ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]: ref for ref in images}


def node_images(testbed: Testbed) -> dict[str, str]:
    """Short name -> reference of the images the test bed's node was given at `up`: what
    its pods run, even when the tree has changed since (a rebuild would not reach the node
    before the next `up`)."""
    refs = status(testbed.name)["images"]
    if not refs:
        raise TestbedError(f"test bed {testbed.name!r} has no real node; start it with one")
    return image_by_name(refs)


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
    redis_repo, redis_tag = images["redis"].rsplit(":", 1)
    helm(testbed, "install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE,
         "--create-namespace", "--wait", "--timeout=240s",
         f"--set=image.repository={operator_repo}", f"--set=image.tag={operator_tag}",
         "--set=image.pullPolicy=Never", f"--set=runtimeImage.repository={runtime_repo}",
         f"--set=runtimeImage.tag={runtime_tag}", f"--set=redisImage.repository={redis_repo}",
         f"--set=redisImage.tag={redis_tag}", *extra)  # fmt: skip
    pods = json.loads(
        testbed.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "json").stdout
    )["items"]
    names = [p["metadata"]["name"] for p in pods if p["metadata"]["name"].startswith(RELEASE)]
    if len(names) != 1:
        raise TestbedError(f"expected one operator pod in {OPERATOR_NAMESPACE}, found {names}")
    return names[0]


def uninstall_operator(testbed: Testbed) -> None:
    """Delete every InferenceService while the operator still runs, then `helm uninstall`.

    kopf puts a finalizer on each service (its timers need one); with the operator gone
    first, nothing removes it, and deleting the service's namespace hangs until someone
    does (the order docs/install.md gives users too).
    """
    testbed.kubectl(
        "delete", "inferenceservices", "--all", "--all-namespaces", "--wait=true",
        "--timeout=120s", check=False, timeout=150,
    )  # fmt: skip
    helm(testbed, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait")


def sidecar_counts(pod_ip: str) -> dict[str, float]:
    """Hits and misses the sidecar process has counted since it started (all paths)."""
    url = f"http://{pod_ip}:{CACHE_METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    counts = {"hits": 0.0, "misses": 0.0}
    for kind in counts:
        for value in re.findall(rf"^tenfold_cache_{kind}_total{{[^}}]*}} (\S+)$", text, re.M):
            counts[kind] += float(value)
    return counts
