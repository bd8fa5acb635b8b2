"""The operator at a thousand InferenceServices: how long until every one has its children and
is Ready, how long one service waits for its children, how long a restarted operator takes to
resume them all, what it holds in memory, and what it asks of the apiserver at rest.

A KWOK-only test bed of its own (`scale-bench`) gets extra fake nodes enough for one pod per
service; the operator runs as users run it (`tenfold run`, default settings: 5 s status tick,
20 s resync); COUNT copies of examples/minilm-cpu.yaml are applied in NAMESPACES namespaces in
one go. Figures (issue 13's goals in brackets):

- all children / all Ready: from the start of the apply until every service has
  status.observedGeneration (its plan applied) / a True Ready condition, polled every 5 s (so
  late by up to 5 s; nothing else waits inside a timed interval);
- per service, create -> Deployment exists: the Deployment's creationTimestamp minus the
  service's, p50 / p95 / max (the apiserver's timestamps have 1 s resolution) [p95 <= 1 s];
- resume after a restart: the operator is stopped and started again; seconds from its start
  until its log holds a successful `apply-plan-resume` for every service [<= 60 s];
- at rest (IDLE seconds after everything settled): resident memory [<= 250 MB], CPU seconds
  per minute, apiserver requests per second per 100 services, counted from its own log
  (`--verbose` logs every request of the kubernetes client and every patch of kopf's)
  [<= 1], and status ticks completed per minute against the COUNT x 60 / 5 scheduled
  (whether one tick of every service fits in its 5 s) [tick <= 5 s].

Usage: python -m tenfold_tools.scale_bench [--count 1000] [--namespaces 10] [--idle 60]
(about 20 minutes on 2 cores; the test bed is taken down at the end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import yaml

from tenfold_tools.testbed import Testbed, down, up, wait_established
from tenfold_tools.testbed.nodes import MAX_PODS, NodePool, build_nodes

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "minilm-cpu.yaml"
CRD = REPO_ROOT / "crds" / "serving.tenfold.dev_inferenceservices.yaml"
TESTBED_NAME = "scale-bench"
POLL_SECONDS = 5.0
# A request of the kubernetes client (urllib3) or a patch of kopf's, as --verbose logs them.
REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) /|(Merge|JSON)-patching the')
RESUMED_LINE = "Handler 'apply-plan-resume' succeeded"
TICK_LINE = "Timer 'refresh-status' succeeded"
TICK_SECONDS = 5.0  # the operator's default status tick


def scale_pool(services: int) -> NodePool:
    """Fake CPU nodes enough for one example pod (2 CPU, 4 GiB, plus the sidecar) each."""
    nodes = math.ceil(services / int(MAX_PODS)) + 1
    return NodePool("scale", nodes, "scale.bench", cpu="400", memory="800Gi")


def manifests(count: int, namespaces: int) -> dict[str, str]:
    """Namespace name -> a multi-document YAML of its share of `count` example services."""
    example = yaml.safe_load(EXAMPLE.read_text())
    per_namespace: dict[str, list[dict]] = {f"scale-{n}": [] for n in range(namespaces)}
    for index in range(count):
        namespace = f"scale-{index % namespaces}"
        service = json.loads(json.dumps(example))
        service["metadata"] = {"name": f"minilm-{index}", "namespace": namespace}
        per_namespace[namespace].append(service)
    return {ns: yaml.safe_dump_all(docs) for ns, docs in per_namespace.items()}


def count_where(testbed: Testbed, predicate: Callable[[dict], bool]) -> int:
    """How many InferenceServices, in all namespaces, satisfy `predicate`."""
    out = testbed.kubectl("get", "inferenceservices", "-A", "-o", "json", timeout=120).stdout
    return sum(1 for item in json.loads(out)["items"] if predicate(item))


def applied(item: dict) -> bool:
    """The service's plan was applied (its spec handler wrote observedGeneration)."""
    return (item.get("status") or {}).get("observedGeneration") == item["metadata"]["generation"]


def ready(item: dict) -> bool:
    """The service's Ready condition is True."""
    conditions = (item.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def seconds_until(testbed: Testbed, predicate: Callable[[dict], bool], count: int, since: float,
                  limit: float) -> float | None:  # fmt: skip
    """Seconds from `since` until `count` services satisfy `predicate`; None past `limit`."""
    while time.monotonic() - since < limit:
        if count_where(testbed, predicate) >= count:
            return time.monotonic() - since
        time.sleep(POLL_SECONDS)
    return None


def proc_figures(pid: int) -> tuple[int, float]:
    """(resident KiB, CPU seconds used so far) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def lines_logged(log: Path, pattern: re.Pattern[str] | str) -> int:
    """Lines of the operator's log so far that match `pattern` (a regex or a substring)."""
    with log.open(errors="replace") as handle:
        if isinstance(pattern, str):
            return sum(1 for line in handle if pattern in line)
        return sum(1 for line in handle if pattern.search(line))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def children_latencies(testbed: Testbed) -> list[float]:
    """Per service: its Deployment's creationTimestamp minus its own, in seconds."""

    def created(kind: str) -> dict[tuple[str, str], float]:
        out = testbed.kubectl("get", kind, "-A", "-o", "json", timeout=300).stdout
        return {
            (i["metadata"]["namespace"], i["metadata"]["name"]): datetime.fromisoformat(
                i["metadata"]["creationTimestamp"].replace("Z", "+00:00")
            ).timestamp()
            for i in json.loads(out)["items"]
        }

    services, deployments = created("inferenceservices"), created("deployments")
    return [deployments[key] - at for key, at in services.items() if key in deployments]


def seconds_until_logged(
    log: Path, text: str, count: int, since: float, limit: float
) -> float | None:
    """Seconds from `since` until the log holds `count` lines with `text`; None past `limit`."""
    while time.monotonic() - since < limit:
        if lines_logged(log, text) >= count:
            return time.monotonic() - since
        time.sleep(1.0)
    return None


@contextmanager
def operator(testbed: Testbed, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`tenfold run` against the test bed, with its default settings, logging verbosely."""
    env = {**os.environ, **testbed.env(), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tenfold.cli", "run", "--standalone", "--verbose"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)


def prepare_cluster(testbed: Testbed, count: int, namespaces: int) -> None:
    """The CRD, the extra nodes and the namespaces."""
    testbed.kubectl("apply", "--server-side", "-f", str(CRD))
    wait_established(testbed.kubectl, "crd/inferenceservices.serving.tenfold.dev")
    nodes = {"apiVersion": "v1", "kind": "List", "items": build_nodes([scale_pool(count)])}
    testbed.kubectl("apply", "-f", "-", input=json.dumps(nodes))
    for n in range(namespaces):
        testbed.kubectl("create", "namespace", f"scale-{n}")


def measure(testbed: Testbed, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """Apply the services under a running operator, time what follows, restart it."""
    figures: dict[str, object] = {"services": args.count, "namespaces": args.namespaces}
    log = workdir / "operator.log"
    with operator(testbed, log):
        time.sleep(5)  # before the timed interval: the operator's start-up
        started = time.monotonic()
        for text in manifests(args.count, args.namespaces).values():
            testbed.kubectl("apply", "-f", "-", input=text, timeout=600)
        figures["apply_seconds"] = round(time.monotonic() - started, 1)
        figures["all_children_seconds"] = seconds_until(testbed, applied, args.count, started, 1800)
        figures["all_ready_seconds"] = seconds_until(testbed, ready, args.count, started, 1800)
        latencies = children_latencies(testbed)
        figures["children_latency_seconds"] = {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "services": len(latencies),
        }
    restarted = workdir / "operator-restarted.log"
    with operator(testbed, restarted) as process:
        since = time.monotonic()
        figures["resume_seconds"] = seconds_until_logged(
            restarted, RESUMED_LINE, args.count, since, 600
        )
        time.sleep(args.idle / 2)  # let the last status writes settle before the quiet window
        figures["at_rest"] = quiet_window(process.pid, restarted, args)
    return figures


def quiet_window(pid: int, log: Path, args: argparse.Namespace) -> dict[str, object]:
    """The operator's memory, CPU, apiserver requests and ticks over `args.idle` seconds."""
    _, cpu_before = proc_figures(pid)
    requests_before, ticks_before = lines_logged(log, REQUEST_LINE), lines_logged(log, TICK_LINE)
    quiet_from = time.monotonic()
    time.sleep(args.idle)
    rss, cpu = proc_figures(pid)
    minutes = (time.monotonic() - quiet_from) / 60
    requests = (lines_logged(log, REQUEST_LINE) - requests_before) / minutes
    ticks = (lines_logged(log, TICK_LINE) - ticks_before) / minutes
    return {
        "rss_mib": round(rss / 1024),
        "cpu_seconds_per_minute": round((cpu - cpu_before) / minutes, 1),
        "requests_per_minute": round(requests),
        "requests_per_second_per_100_services": round(requests / 60 / (args.count / 100), 3),
        "ticks_per_minute": round(ticks),
        "ticks_scheduled_per_minute": round(args.count * 60 / TICK_SECONDS),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.scale_bench")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the quiet window")
    args = parser.parse_args(argv)
    testbed = up(TESTBED_NAME, real_node=False)
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-scale-"))
    try:
        prepare_cluster(testbed, args.count, args.namespaces)
        figures = measure(testbed, args, workdir)
    finally:
        down(TESTBED_NAME)
    print(json.dumps(figures, indent=2))
    print(f"operator logs: {workdir}")
    print("command: python -m tenfold_tools.scale_bench " + " ".join(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
