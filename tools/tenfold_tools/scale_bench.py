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
- per service of the burst, create -> Deployment exists: the Deployment's creationTimestamp
  minus the service's, p50 / p95 / max (the apiserver's timestamps have 1 s resolution)
  [p95 <= 1 s]; beside it, on the same burst and machine, the kube-controller-manager's own
  Deployment controller: each Deployment's first ReplicaSet's creationTimestamp minus the
  Deployment's (what a Go controller on client-go's informers reaches here);
- the same per service until every child of the example's plan existed (the latest
  creationTimestamp of its ConfigMap, Service, Deployment and PodDisruptionBudget);
- paced (PACED services created one at a time once the burst is Ready, 1 s apart): from the
  create's answer to a watch's ADDED event for its Deployment, and for the last of its
  children, sub-second [p95 <= 1 s];
- resume after a restart: the operator is stopped and started again; seconds from its start
  until its log holds a successful `apply-plan-resume` for every service [<= 60 s];
- at rest (IDLE seconds after everything settled): resident memory [<= 250 MB], CPU seconds
  per minute, apiserver requests per second per 100 services, counted from its own log
  (`--verbose` logs every request of the kubernetes client and every patch of kopf's)
  [<= 1], and from the operator's own histograms, status ticks completed per minute against
  the COUNT x 60 / 5 scheduled (whether one tick of every service fits in its 5 s)
  [tick <= 5 s], and the bounds under which half and 95 % of the status loop's rounds (every
  service's tick, run concurrently), of one service's tick within its round and of the
  periods between two ticks of one service fell.

Usage: python -m tenfold_tools.scale_bench [--count 1000] [--namespaces 10] [--idle 60]
[--paced 20]
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
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tenfold.plan import child_selector
from tenfold_tools.testbed import Testbed, down, up, wait_established
from tenfold_tools.testbed.nodes import MAX_PODS, NodePool, build_nodes

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "minilm-cpu.yaml"
CRD = REPO_ROOT / "crds" / "serving.tenfold.dev_inferenceservices.yaml"
TESTBED_NAME = "scale-bench"
# The children the example's plan makes (examples/minilm-cpu.yaml: no Redis, no monitor).
CHILDREN = ("configmaps", "services", "deployments", "poddisruptionbudgets")
POLL_SECONDS = 5.0
# A request of the kubernetes client (urllib3) or a patch of kopf's, as --verbose logs them.
REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) /|(Merge|JSON)-patching the')
RESUMED_LINE = "Handler 'apply-plan-resume' succeeded"
TICK_SECONDS = 5.0  # the operator's default status tick
# The operator's own metrics (its default port): how long each status tick took, and the
# time between two ticks of one service.
OPERATOR_METRICS = "http://127.0.0.1:9102/metrics"
TICK_SECONDS_METRIC = "tenfold_operator_status_tick_seconds"
TICK_PERIOD_METRIC = "tenfold_operator_status_tick_period_seconds"
ROUND_SECONDS_METRIC = "tenfold_operator_status_round_seconds"


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


def created(testbed: Testbed, kind: str) -> dict[tuple[str, str], tuple[float, str | None]]:
    """(namespace, name) -> (creationTimestamp in seconds, its controller owner's name)."""
    out = testbed.kubectl("get", kind, "-A", "-o", "json", timeout=300).stdout
    found = {}
    for item in json.loads(out)["items"]:
        meta = item["metadata"]
        owners = [o["name"] for o in meta.get("ownerReferences") or [] if o.get("controller")]
        at = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
        found[(meta["namespace"], meta["name"])] = (at.timestamp(), owners[0] if owners else None)
    return found


def owned_latencies(testbed: Testbed, owner_kind: str, *child_kinds: str) -> list[float]:
    """Per owner: seconds from its creationTimestamp until one controlled child of each of
    `child_kinds` existed (the latest of their first children's creationTimestamps)."""
    owners = created(testbed, owner_kind)
    firsts = []
    for child_kind in child_kinds:
        first: dict[tuple[str, str], float] = {}
        for (namespace, _), (at, owner) in created(testbed, child_kind).items():
            if owner is not None:
                key = (namespace, owner)
                first[key] = min(at, first.get(key, at))
        firsts.append(first)
    return [
        max(first[key] for first in firsts) - at
        for key, (at, _) in owners.items()
        if all(key in first for first in firsts)
    ]


def latency_figures(latencies: list[float]) -> dict[str, float]:
    """p50 / p95 / max and the count, rounded to milliseconds."""
    return {
        "p50": round(percentile(latencies, 0.5), 3),
        "p95": round(percentile(latencies, 0.95), 3),
        "max": round(max(latencies), 3),
        "count": len(latencies),
    }


def paced_latencies(testbed: Testbed, count: int) -> tuple[list[float], list[float]]:
    """Seconds from each of `count` creates, made one at a time into the loaded cluster,
    until a watch saw the service's Deployment, and until it saw every child the example's
    plan makes (ConfigMap, Service, Deployment, PodDisruptionBudget).

    Each kind's watch starts from a listing's resourceVersion taken before the create, so no
    event is missed; the interval runs from the create's answer to the ADDED event (the
    Deployment's watch is read first, then the others': the last one read is the time all
    existed). Sub-second, where creationTimestamps have 1 s.
    """
    from kubernetes import client, config, watch

    api = config.new_client_from_config(config_file=str(testbed.kubeconfig))
    custom, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    listings = (
        apps.list_namespaced_deployment,
        core.list_namespaced_config_map,
        core.list_namespaced_service,
        policy.list_namespaced_pod_disruption_budget,
    )
    example = yaml.safe_load(EXAMPLE.read_text())
    namespace = "scale-0"
    deployment_seen: list[float] = []
    all_seen: list[float] = []
    try:
        for index in range(count):
            name = f"paced-{index}"
            body = {**example, "metadata": {"name": name, "namespace": namespace}}
            streams = []
            for listing in listings:
                listed = listing(namespace, limit=1)
                version = listed.metadata.resource_version if listed.metadata else None
                streams.append(
                    watch.Watch().stream(
                        listing,
                        namespace,
                        label_selector=child_selector(name),
                        resource_version=version,
                        timeout_seconds=120,
                    )
                )
            custom.create_namespaced_custom_object(
                "serving.tenfold.dev", "v1alpha1", namespace, "inferenceservices", body
            )
            answered = time.monotonic()
            for stream in streams:
                next(event for event in stream if event["type"] == "ADDED")
                if len(deployment_seen) == index:  # the first stream read: the Deployment's
                    deployment_seen.append(time.monotonic() - answered)
            all_seen.append(time.monotonic() - answered)
            time.sleep(1.0)  # between creates, outside any timed interval
        for index in range(count):
            custom.delete_namespaced_custom_object(
                "serving.tenfold.dev", "v1alpha1", namespace, "inferenceservices", f"paced-{index}"
            )
    finally:
        api.close()
    return deployment_seen, all_seen


def seconds_until_logged(
    log: Path, text: str, count: int, since: float, limit: float
) -> float | None:
    """Seconds from `since` until the log holds `count` lines with `text`; None past `limit`."""
    while time.monotonic() - since < limit:
        if lines_logged(log, text) >= count:
            return time.monotonic() - since
        time.sleep(1.0)
    return None


STARTED_LINE = "Activity 'configure' succeeded"


def started_up(log: Path, limit: float = 60.0) -> None:
    """Wait for the operator's start-up handler to succeed; a failed start (its metrics port
    still held by an operator of an earlier run, say) fails the benchmark rather than
    timing creations that waited for kopf's retry a minute later."""
    if seconds_until_logged(log, STARTED_LINE, 1, time.monotonic(), limit) is None:
        raise RuntimeError(f"the operator did not start within {limit:.0f} s: see {log}")


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
        started_up(log)
        started = time.monotonic()
        for text in manifests(args.count, args.namespaces).values():
            testbed.kubectl("apply", "-f", "-", input=text, timeout=600)
        figures["apply_seconds"] = round(time.monotonic() - started, 1)
        figures["all_children_seconds"] = seconds_until(testbed, applied, args.count, started, 1800)
        figures["all_ready_seconds"] = seconds_until(testbed, ready, args.count, started, 1800)
        burst = owned_latencies(testbed, "inferenceservices", "deployments")
        figures["burst_deployment_latency_seconds"] = latency_figures(burst)
        every = owned_latencies(testbed, "inferenceservices", *CHILDREN)
        figures["burst_all_children_latency_seconds"] = latency_figures(every)
        baseline = owned_latencies(testbed, "deployments", "replicasets")
        figures["burst_replicaset_latency_seconds"] = latency_figures(baseline)
        if args.paced:
            deployment_seen, all_seen = paced_latencies(testbed, args.paced)
            figures["paced_deployment_latency_seconds"] = latency_figures(deployment_seen)
            figures["paced_all_children_latency_seconds"] = latency_figures(all_seen)
    restarted = workdir / "operator-restarted.log"
    with operator(testbed, restarted) as process:
        since = time.monotonic()
        figures["resume_seconds"] = seconds_until_logged(
            restarted, RESUMED_LINE, args.count, since, 600
        )
        time.sleep(args.idle / 2)  # let the last status writes settle before the quiet window
        figures["at_rest"] = quiet_window(process.pid, restarted, args)
    return figures


def histogram(name: str) -> dict[float, float]:
    """A histogram of the operator's metrics endpoint: upper bound -> cumulative count."""
    with urllib.request.urlopen(OPERATOR_METRICS, timeout=10) as response:
        text = response.read().decode()
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{name}_bucket"
    }


def bucket_quantile(before: dict[float, float], after: dict[float, float], share: float) -> float:
    """The upper bound of the bucket holding the `share` quantile of what was observed
    between two scrapes (a histogram says no more than that)."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts[math.inf]
    return next(bound for bound, count in counts.items() if count >= share * total)


def tick_figures(before: dict[str, dict[float, float]]) -> dict[str, float]:
    """p50 / p95 bounds of the status ticks' duration and period since `before`."""
    figures = {}
    for name, label in (
        (TICK_SECONDS_METRIC, "duration"),
        (TICK_PERIOD_METRIC, "period"),
        (ROUND_SECONDS_METRIC, "round"),
    ):
        after = histogram(name)
        for share in (0.5, 0.95):
            figures[f"tick_{label}_p{int(share * 100)}_at_most"] = bucket_quantile(
                before[name], after, share
            )
    return figures


def quiet_window(pid: int, log: Path, args: argparse.Namespace) -> dict[str, object]:
    """The operator's memory, CPU, apiserver requests and ticks over `args.idle` seconds."""
    _, cpu_before = proc_figures(pid)
    requests_before = lines_logged(log, REQUEST_LINE)
    histograms = {
        name: histogram(name)
        for name in (TICK_SECONDS_METRIC, TICK_PERIOD_METRIC, ROUND_SECONDS_METRIC)
    }
    quiet_from = time.monotonic()
    time.sleep(args.idle)
    rss, cpu = proc_figures(pid)
    ticks_seen = tick_figures(histograms)
    minutes = (time.monotonic() - quiet_from) / 60
    requests = (lines_logged(log, REQUEST_LINE) - requests_before) / minutes
    ticks_done = (
        histogram(TICK_SECONDS_METRIC)[math.inf] - histograms[TICK_SECONDS_METRIC][math.inf]
    )
    ticks = ticks_done / minutes
    return {
        "rss_mib": round(rss / 1024),
        "cpu_seconds_per_minute": round((cpu - cpu_before) / minutes, 1),
        "requests_per_minute": round(requests),
        "requests_per_second_per_100_services": round(requests / 60 / (args.count / 100), 3),
        "ticks_per_minute": round(ticks),
        "ticks_scheduled_per_minute": round(args.count * 60 / TICK_SECONDS),
        **ticks_seen,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.scale_bench")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the quiet window")
    parser.add_argument("--paced", type=int, default=20, help="services then created one at a time")
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
