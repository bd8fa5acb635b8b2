"""The operator under a control-plane outage: the apiserver or etcd stopped and started again.

It must reconnect without exiting and act on what changed within 30 s of the apiserver's
return (issue 13). Its own operator process: the outage makes kopf log connection errors,
which the shared fixture's traceback check would count against other tests. The seconds
are printed (`-s`); docs/reliability.md quotes them with this command.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tenfold_tools.testbed import Kubectl, Testbed, start_component, stop_component
from tests.integration.operator_support import (
    REPO_ROOT,
    OperatorProcess,
    apply_manifest,
    get_json_or_none,
    load_manifest,
    settle,
    wait_for,
    wait_ready,
)

NAME = "minilm"
OUTAGE_SECONDS = 10
CONVERGE_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def operator(crd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator for this module, whatever it logs during the outages."""
    process = OperatorProcess(tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield process
    process.stop()


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_the_operator_rides_out_a_restart_and_converges(
    component: str,
    operator: OperatorProcess,
    testbed: Testbed,
    kubectl: Kubectl,
    namespace: str,
):
    apply_manifest(kubectl, namespace, load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml"))
    wait_ready(kubectl, namespace, NAME)
    stop_component(testbed, component)
    settle(OUTAGE_SECONDS)  # the operator's watches and ticks fail meanwhile
    start_component(testbed, component)
    back = time.monotonic()
    # Changes made after the return: a child deleted by hand, and a new service.
    kubectl("delete", "-n", namespace, "deployment", NAME, "--wait=true")
    second = load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml", "after-outage")
    apply_manifest(kubectl, namespace, second)
    wait_for(
        lambda: get_json_or_none(kubectl, namespace, "deployment", NAME),
        "the deleted Deployment applied again",
        timeout=CONVERGE_TIMEOUT,
    )
    repaired = time.monotonic() - back
    wait_for(
        lambda: get_json_or_none(kubectl, namespace, "deployment", "after-outage"),
        "the new service's children",
        timeout=CONVERGE_TIMEOUT,
    )
    created = time.monotonic() - back
    # Ready also waits on the controller-manager, KWOK and the status tick (slowed here by
    # retries against the absent Prometheus), so it has a wider bound than the operator's
    # own work above.
    wait_ready(kubectl, namespace, "after-outage", timeout=2 * CONVERGE_TIMEOUT)
    ready = time.monotonic() - back
    print(
        f"{component} down {OUTAGE_SECONDS} s, after its return: drift repaired in "
        f"{repaired:.1f} s, a new service's children in {created:.1f} s, Ready in {ready:.1f} s"
    )
    assert operator._process is not None and operator._process.poll() is None, operator.log_text()[
        -4000:
    ]
