"""The real node behaves as a node of any cluster: it runs pods from the locally built images
under the restricted Pod Security level, `kubectl logs`, `exec` and `port-forward` reach
them, cluster DNS resolves Services, and kube-proxy routes ClusterIPs to pods."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

from tenfold_tools.testbed import Kubectl, Testbed, load_versions
from tenfold_tools.testbed.node import REAL_NODE_NAME
from tenfold_tools.testbed.workloads import SLEEPER, python_pod
from tests.integration.operator_support import get_json, wait_for

WEB_PORT = 8080


WEB_SERVER = f"""
import http.server, socketserver
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from " + self.headers["Host"].encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
socketserver.TCPServer(("0.0.0.0", {WEB_PORT}), Hello).serve_forever()
"""


def wait_pod_ready(kubectl: Kubectl, namespace: str, name: str, timeout: str = "120s") -> dict:
    """Wait for the pod's Ready condition; return the pod."""
    kubectl("wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", f"--timeout={timeout}",
            timeout=200)  # fmt: skip
    return get_json(kubectl, namespace, "pod", name)


def test_the_cpu_node_is_a_real_kubelet(kubectl: Kubectl, testbed: Testbed) -> None:
    node = json.loads(kubectl("get", "node", REAL_NODE_NAME, "-o", "json").stdout)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == load_versions().kubernetes
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal and not internal[0].startswith("127.")
    # The node's real capacity, not a pool's made-up one.
    assert int(node["status"]["capacity"]["cpu"]) == len(
        [line for line in open("/proc/cpuinfo") if line.startswith("processor")]
    )
    names = kubectl("get", "nodes", "-o", "name").stdout.split()
    assert "node/tenfold-t4-0" in names  # KWOK keeps the GPU pools
    assert not [n for n in names if re.fullmatch(r"node/tenfold-cpu-[1-9]", n)]


def test_pods_run_and_are_reachable_by_service_name(
    kubectl: Kubectl, make_namespace, images: dict[str, str]
) -> None:
    namespace = make_namespace("restricted")
    image = images["operator"]
    kubectl("apply", "-n", namespace, "-f", "-",
            input=json.dumps(python_pod("web", image, WEB_SERVER)))  # fmt: skip
    kubectl("apply", "-n", namespace, "-f", "-",
            input=json.dumps(python_pod("client", image, SLEEPER)))  # fmt: skip
    kubectl("expose", "-n", namespace, "pod/web", f"--port={WEB_PORT}")
    web = wait_pod_ready(kubectl, namespace, "web")
    wait_pod_ready(kubectl, namespace, "client")
    assert web["spec"]["nodeName"] == REAL_NODE_NAME
    assert web["status"]["podIP"].startswith("10.244.")

    # Through cluster DNS and kube-proxy's ClusterIP rules, from another pod (kubectl exec).
    url = f"http://web.{namespace}.svc.cluster.local:{WEB_PORT}/"
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read())"
    answer = wait_for(
        lambda: (
            kubectl(
                "exec", "-n", namespace, "client", "--", "python3", "-c", fetch, check=False
            ).stdout
        ),  # fmt: skip
        "the web Service to answer by name",
        timeout=60,
    )
    assert f"hello from web.{namespace}.svc.cluster.local" in answer
    # kubectl logs reads the container's log through the kubelet.
    logs = kubectl("logs", "-n", namespace, "web").stdout
    assert '"GET / HTTP/1.1" 200' in logs


def test_port_forward_reaches_a_pod_from_the_host(
    kubectl: Kubectl, testbed: Testbed, make_namespace, images: dict[str, str]
) -> None:
    namespace = make_namespace("restricted")
    kubectl("apply", "-n", namespace, "-f", "-",
            input=json.dumps(python_pod("web", images["operator"], WEB_SERVER)))  # fmt: skip
    wait_pod_ready(kubectl, namespace, "web")
    forward = subprocess.Popen(
        [str(testbed.binaries.kubectl), f"--kubeconfig={testbed.kubeconfig}", "port-forward",
         "-n", namespace, "pod/web", f":{WEB_PORT}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        assert body == f"hello from 127.0.0.1:{port}".encode()
    finally:
        forward.terminate()
        forward.wait(10)
