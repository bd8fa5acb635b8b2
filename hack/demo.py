"""The main job on the embedded default: cluster, operator, example, real Triton, real pod.

1. Starts the local test bed: a real control plane, a real kubelet node on containerd (CNI,
   kube-proxy, CoreDNS) and KWOK GPU nodes; builds the images on first use.
2. `helm install`s the operator as a pod of the image built from Dockerfile.operator.
3. Applies examples/minilm-local.yaml in a restricted namespace and waits for Ready: the
   pod's init container guards the precision, then tritonserver and the cache sidecar start.
4. Shows `kubectl get` of the service and its pod, and the guard's output (`kubectl logs`).
5. Sends requests through the Service from a client pod (HTTP via the sidecar, gRPC to
   Triton), then a short perf_analyzer run against the pod, with the command it ran.

Everything started here is stopped at the end (--keep leaves the test bed up).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from tenfold_runtime.bench import (
    parse_perf_csv,
    perf_analyzer_binary,
    perf_command,
    perf_input_data,
)
from tenfold_tools.testbed import down as testbed_down
from tenfold_tools.testbed import up as testbed_up
from tenfold_tools.testbed.workloads import (
    EMBED_CLIENT,
    SLEEPER,
    install_operator,
    node_images,
    python_pod,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "minilm-local.yaml"
NAMESPACE = "demo"
SENTENCES = [
    "Batching requests lets one forward pass serve many users.",
    "Serving several requests in a single model call raises throughput.",
    "The budget caps how many GPUs the service may rent.",
]
# A 2-vCPU on-demand VM (m6i.large, us-east-1): the same figure the catalog prices CPU with.
CPU_PRICE_PER_HOUR = 0.096
# Prepare guards MiniLM on two shared cores, then Triton loads it.
READY_TIMEOUT = 900


def banner(text: str) -> None:
    """A visible step header."""
    print(f"\n=== {text}", flush=True)


def show(kubectl: Any, *args: str) -> str:
    """Print a kubectl command and its output, as a user would see it; return the output."""
    print(f"$ kubectl {' '.join(args)}")
    out = kubectl(*args, timeout=READY_TIMEOUT + 60).stdout.rstrip()
    print(out, flush=True)
    return out


def serve_example(bed: Any, images: dict[str, str]) -> dict[str, Any]:
    """The operator from its chart, the example applied and Ready; returns the pod."""
    kubectl = bed.kubectl
    operator = install_operator(bed, images)
    show(kubectl, "get", "pods", "-n", "tenfold-system", "-o", "wide")
    print(f"operator pod {operator} runs image {images['operator']}")
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE,
                     "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    show(kubectl, "apply", "-n", NAMESPACE, "-f", str(EXAMPLE))
    started = time.monotonic()
    show(kubectl, "wait", "-n", NAMESPACE, "inferenceservice/minilm", "--for=condition=Ready",
         f"--timeout={READY_TIMEOUT}s")  # fmt: skip
    print(f"Ready {time.monotonic() - started:.0f}s after apply")
    show(kubectl, "get", "inferenceservice", "-n", NAMESPACE)
    show(kubectl, "get", "deploy,svc,cm,pdb,pods", "-n", NAMESPACE, "-o", "wide")
    selector = "app.kubernetes.io/instance=minilm"
    listed = kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout
    pod: dict[str, Any] = json.loads(listed)["items"][0]
    banner("the init container's guard (its report, as kubectl logs shows it)")
    name = pod["metadata"]["name"]
    report = json.loads(pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["message"])
    print(f"pod {name}: the report prepare wrote to its termination message")
    keys = ("precision_requested", "precision_served", "accuracy", "decision")
    print(json.dumps({k: report[k] for k in keys if k in report}, indent=2))
    return pod


def requests_through_the_service(bed: Any, images: dict[str, str]) -> None:
    """HTTP via the sidecar and gRPC to Triton, by the Service's name, from a client pod."""
    kubectl = bed.kubectl
    client = python_pod("client", images["operator"], SLEEPER)
    kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(client))
    kubectl("wait", "-n", NAMESPACE, "pod/client", "--for=condition=Ready", "--timeout=120s",
            timeout=150)  # fmt: skip
    host = f"minilm.{NAMESPACE}.svc.cluster.local"
    print(f"$ kubectl exec -n {NAMESPACE} client -- python3 -c <client> {host} minilm ...")
    out = kubectl("exec", "-n", NAMESPACE, "client", "--", "python3", "-c", EMBED_CLIENT,
                  host, "minilm", json.dumps(SENTENCES), timeout=120).stdout  # fmt: skip
    answers = json.loads(out)
    over_http, over_grpc = np.array(answers["http"]), np.array(answers["grpc"])
    print(
        f"embeddings {over_http.shape}; HTTP via sidecar vs gRPC direct max |diff| "
        f"{np.abs(over_http - over_grpc).max():.2e}"
    )
    similarity = over_http @ over_http.T
    for text, row in zip(SENTENCES, similarity, strict=True):
        print(f"  {' '.join(f'{v:5.2f}' for v in row)}  {text}")


def short_benchmark(http_url: str, model: str, workdir: Path) -> None:
    """perf_analyzer at concurrency 1 and 16 against the pod, a few seconds each."""
    binary = perf_analyzer_binary(None)
    data = workdir / "perf-input.json"
    data.write_text(json.dumps(perf_input_data(SENTENCES * 10)))
    print("concurrency  req/s   p50 ms  p95 ms  USD per 1k requests")
    for level in (1, 16):
        csv_path = workdir / f"demo-c{level}.csv"
        command = perf_command(binary, model, http_url, level, data, csv_path, 3000)
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        for point in parse_perf_csv(csv_path.read_text(), model, CPU_PRICE_PER_HOUR):
            print(
                f"{level:>11}  {point.throughput:6.1f}  {point.p50_ms:6.1f}  {point.p95_ms:6.1f}"
                f"  {point.cost_per_1k:.5f}"
            )
        print(f"  ($ {shlex.join(command)})")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the test bed running")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-demo-"))
    with ExitStack() as stack:
        banner("local Kubernetes test bed with a real node")
        bed = testbed_up("demo")
        if not args.keep:
            stack.callback(testbed_down, "demo")
        images = node_images(bed)
        show(bed.kubectl, "get", "nodes", "-o", "wide")
        banner("operator (helm install) and the MiniLM example")
        pod = serve_example(bed, images)
        banner("requests through the Service, from a client pod")
        requests_through_the_service(bed, images)
        banner("short benchmark (perf_analyzer from the host to the pod, real Triton)")
        short_benchmark(f"{pod['status']['podIP']}:8000", "minilm", workdir)
        if args.keep:
            print("\nthe test bed stays up: eval \"$(python -m tenfold_tools.testbed env "
                  "--name demo)\"; kubectl get pods -A")  # fmt: skip
    print(f"\ndone; files in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
