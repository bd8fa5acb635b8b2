"""The main job on the embedded default: cluster, operator, example, real Triton.

1. Starts the local test bed (real apiserver, etcd, controller-manager, scheduler; KWOK nodes).
2. Installs the CRD, runs the operator, applies examples/minilm-cpu.yaml, waits for Ready and
   shows `kubectl get` of the InferenceService and its children.
3. Runs the pod the operator rendered, on this machine: the init container's command
   (`tenfold-runtime prepare`, guarded int8), then the Triton container's and the cache
   sidecar's commands, with /etc/tenfold and /models mapped to local folders.
4. Sends real requests (HTTP through the sidecar, gRPC straight to Triton), then a short
   perf_analyzer benchmark, and prints the figures with the command that produced them.

KWOK plays the kubelet, so the cluster's pods are stand-ins; step 3 is what proves the
rendered manifests serve. Everything started here is stopped at the end (--keep leaves the
test bed up).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the operator runner shared with the test suite

from tests.integration.operator_support import (  # noqa: E402
    OperatorProcess,
    get_json,
    install_crd,
    load_manifest,
    wait_ready,
)

from tenfold_runtime.bench import (  # noqa: E402
    parse_perf_csv,
    perf_analyzer_binary,
    perf_command,
    perf_input_data,
)
from tenfold_runtime.clients import embed_grpc, embed_http  # noqa: E402
from tenfold_runtime.local import free_port  # noqa: E402
from tenfold_tools.podrun import (  # noqa: E402
    container_argv,
    containers_by_name,
    localize_args,
    run_init_container,
    start_triton_container,
)
from tenfold_tools.testbed import down as testbed_down  # noqa: E402
from tenfold_tools.testbed import up as testbed_up  # noqa: E402

EXAMPLE = REPO / "examples" / "minilm-cpu.yaml"
NAMESPACE = "demo"
SENTENCES = [
    "Batching requests lets one forward pass serve many users.",
    "Serving several requests in a single model call raises throughput.",
    "The budget caps how many GPUs the service may rent.",
]
# A 2-vCPU on-demand VM (m6i.large, us-east-1): the same figure the catalog prices CPU with.
CPU_PRICE_PER_HOUR = 0.096


def banner(text: str) -> None:
    """A visible step header."""
    print(f"\n=== {text}", flush=True)


def show(kubectl: Any, *args: str) -> None:
    """Print a kubectl command and its output, as a user would see it."""
    print(f"$ kubectl {' '.join(args)}")
    print(kubectl(*args).stdout.rstrip())


def start_cluster_side(bed: Any, workdir: Path, stack: ExitStack) -> dict[str, Any]:
    """CRD, operator, example; returns the Deployment the operator rendered."""
    kubectl = bed.kubectl
    install_crd(kubectl)
    operator = OperatorProcess(workdir / "operator.log").start()
    stack.callback(operator.stop)
    print(f"operator running (log {operator.log_path})")
    kubectl("create", "namespace", NAMESPACE, check=False)
    kubectl("apply", "-n", NAMESPACE, "-f", str(EXAMPLE))
    wait_ready(kubectl, NAMESPACE, load_manifest(EXAMPLE)["metadata"]["name"], timeout=180)
    show(kubectl, "get", "inferenceservice", "-n", NAMESPACE)
    show(kubectl, "get", "deploy,svc,cm,pdb,pods", "-n", NAMESPACE, "-o", "wide")
    return get_json(kubectl, NAMESPACE, "deployment", "minilm")


def run_prepare(container: dict, config: dict, workdir: Path) -> tuple[Path, dict]:
    """The init container's command, with its ConfigMap and emptyDir mapped locally."""
    print(f"$ {shlex.join(container_argv(container))}  (pod paths mapped to {workdir})")
    started = time.perf_counter()
    models, manifest = run_init_container(container, config["data"], workdir, show_output=True)
    print(f"prepared in {time.perf_counter() - started:.0f}s: {json.dumps(summary(manifest))}")
    return models, manifest


def summary(manifest: dict) -> dict:
    """The manifest fields a user wants to see."""
    keys = ("precision_requested", "precision_served", "accuracy", "decision")
    return {k: manifest[k] for k in keys if k in manifest}


def start_sidecar(container: dict, triton_http: str, models: Path, stack: ExitStack) -> str:
    """The cache sidecar's command on free loopback ports; returns its URL."""
    port, metrics = free_port(), free_port()
    command = localize_args(
        container_argv(container),
        {
            "0.0.0.0:8080": f"127.0.0.1:{port}",
            "0.0.0.0:9090": f"127.0.0.1:{metrics}",
            "http://127.0.0.1:8000": f"http://{triton_http}",
            "/models": str(models),
        },
    )
    print(f"$ {shlex.join(command)}")
    process = subprocess.Popen(command, start_new_session=True)
    stack.callback(lambda: (process.terminate(), process.wait(10)))
    url = f"127.0.0.1:{port}"
    client = httpclient.InferenceServerClient(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the cache sidecar exited with {process.returncode}")
        try:
            if client.is_server_ready():
                return url
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.2)
    raise RuntimeError("the cache sidecar did not become ready")


def short_benchmark(http_url: str, model: str, workdir: Path) -> None:
    """perf_analyzer at concurrency 1 and 16, a few seconds each."""
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


def serve_locally(deployment: dict, kubectl: Any, workdir: Path, stack: ExitStack) -> None:
    """Step 3 and 4: the rendered pod on real Triton, real requests, a short benchmark."""
    containers = containers_by_name(deployment)
    config = get_json(kubectl, NAMESPACE, "configmap", "minilm-config")
    models, manifest = run_prepare(containers["prepare"], config, workdir)
    triton = containers["triton"]
    handle = start_triton_container(triton, models)
    stack.callback(handle.stop)
    print(f"tritonserver ready: http {handle.http_url}, grpc {handle.grpc_url}")
    sidecar = start_sidecar(containers["cache"], handle.http_url, models, stack)
    print(f"cache sidecar ready: http {sidecar}")

    banner("real requests")
    model = manifest.get("model_name", "minilm")
    with httpclient.InferenceServerClient(sidecar) as http:
        through_cache = embed_http(http, model, SENTENCES, binary=False)
    grpc = grpcclient.InferenceServerClient(handle.grpc_url)
    try:
        direct = embed_grpc(grpc, model, SENTENCES)
    finally:
        grpc.close()
    print(
        f"embeddings {through_cache.shape}; HTTP via sidecar vs gRPC direct max |diff| "
        f"{np.abs(through_cache - direct).max():.2e}"
    )
    similarity = through_cache @ through_cache.T
    for text, row in zip(SENTENCES, similarity, strict=True):
        print(f"  {' '.join(f'{v:5.2f}' for v in row)}  {text}")

    banner("short benchmark (perf_analyzer, real Triton, loopback)")
    short_benchmark(handle.http_url, model, workdir)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the test bed running")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-demo-"))
    with ExitStack() as stack:
        banner("local Kubernetes test bed")
        bed = testbed_up("demo")
        if not args.keep:
            stack.callback(testbed_down, "demo")
        os.environ.update(bed.env())
        banner("operator and the MiniLM example")
        deployment = start_cluster_side(bed, workdir, stack)
        banner("the rendered pod, run on this machine with real Triton")
        serve_locally(deployment, bed.kubectl, workdir, stack)
    print(f"\ndone; logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
