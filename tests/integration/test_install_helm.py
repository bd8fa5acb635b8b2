"""`helm install` on the test bed: objects, least-privilege RBAC that is enough, uninstall.

KWOK fakes the operator's pod, so the operator itself runs here as a local subprocess that
authenticates as the chart's ServiceAccount: whatever it manages to do, the chart allows.
The session's test bed already holds the CRDs other tests applied: the module's first
release takes them over (--take-ownership), the others leave them to it (crds.enabled=false),
as docs/install.md tells a second release in a cluster to. test_helm_upgrade.py covers the
CRDs on clean clusters and the upgrade from chart 0.1.0.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tenfold_tools import testbed as tb
from tenfold_tools.testbed import Kubectl
from tests.cluster_fixtures import create_namespace
from tests.integration.helm_support import (
    CHART,
    CHART_CRDS,
    KEEP,
    RELEASE_NAME,
    chart_crd_annotations,
    helm,
)
from tests.integration.operator_support import (
    REPO_ROOT,
    OperatorProcess,
    PeeringOperator,
    apply_manifest,
    condition_of,
    get_json,
    load_manifest,
    settle,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.integration

# kopf polls a timer that is mid-run at deletion only every
# settings.background.cancellation_polling seconds (60 by default), so a deletion that lands
# during a status refresh takes up to a minute to clear the finalizer.
DELETE_TIMEOUT = 90

MINILM = REPO_ROOT / "examples" / "minilm-cpu.yaml"
# A CPU price the catalog does not have, so the status proves the price ConfigMap was read.
CPU_PRICE = 0.05
OPERATOR_DENIED = ("Traceback", "Forbidden", "forbidden", "Not enough permissions")


@dataclass(frozen=True)
class Release:
    """One installed release of the chart."""

    name: str
    namespace: str

    @property
    def fullname(self) -> str:
        """Prefix of the release's object names (release name + chart name)."""
        return f"{self.name}-tenfold"

    @property
    def user(self) -> str:
        """The ServiceAccount as an RBAC user name."""
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"


def install(testbed: tb.Testbed, kubectl: Kubectl, *values: str, owns_crds: bool = True) -> Release:
    """Install the chart (--set values) into a new namespace that enforces `restricted`.

    owns_crds: take the CRDs over from whoever applied them; else leave them out.
    """
    name = f"tf-{secrets.token_hex(3)}"
    release = Release(name, f"install-{name}")
    labels = {"tenfold.dev/test": "true", "pod-security.kubernetes.io/enforce": "restricted"}
    namespace = {"apiVersion": "v1", "kind": "Namespace"}
    namespace["metadata"] = {"name": release.namespace, "labels": labels}
    kubectl("create", "-f", "-", input=json.dumps(namespace))
    sets = [arg for value in values for arg in ("--set", value)]
    crds = ["--take-ownership"] if owns_crds else ["--set", "crds.enabled=false"]
    helm("install", release.name, str(CHART), "-n", release.namespace, *sets, *crds,
         "--wait", "--timeout=120s", kubeconfig=testbed.kubeconfig)  # fmt: skip
    return release


def uninstall(testbed: tb.Testbed, kubectl: Kubectl, release: Release) -> None:
    """Uninstall (if still installed) and drop the release's namespace."""
    helm("uninstall", release.name, "-n", release.namespace, "--wait",
         kubeconfig=testbed.kubeconfig, check=False)  # fmt: skip
    kubectl("delete", "namespace", release.namespace, "--wait=false", check=False)


def test_helm_lint_and_template():
    helm("lint", "--strict", str(CHART))
    values = ["replicaCount=2", "serviceMonitor.enabled=true", "grafanaDashboard.enabled=true",
              "prices.T4=0.35"]  # fmt: skip
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = helm("template", "ha", str(CHART), "--namespace", "ops", *sets).stdout
    documents = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    assert ("ClusterKopfPeering", "ha-tenfold") in documents
    assert ("ServiceMonitor", "ha-tenfold") in documents
    assert documents[("ConfigMap", "ha-tenfold-gpu-prices")]["data"] == {"T4": "0.35"}
    dashboard = json.loads(documents[("ConfigMap", "ha-tenfold-dashboard")]["data"]["tenfold.json"])
    assert len(dashboard["panels"]) == 7
    container = documents[("Deployment", "ha-tenfold")]["spec"]["template"]["spec"]["containers"][0]
    assert "--peering=ha-tenfold" in container["args"]
    assert "--standalone" not in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TENFOLD_NAMESPACE"] == "ops"
    assert env["TENFOLD_PRICES_CONFIGMAP"] == "ha-tenfold-gpu-prices"
    assert "TENFOLD_PROMETHEUS_CA_FILE" not in env  # the system's trust store by default


def test_a_prometheus_ca_bundle_is_mounted_and_named():
    sets = ["--set", "operator.prometheusCaConfigMap=private-ca"]
    rendered = helm("template", "ca", str(CHART), "--namespace", "ops", *sets).stdout
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["TENFOLD_PROMETHEUS_CA_FILE"] == "/etc/tenfold/prometheus-ca/ca.crt"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["prometheus-ca"]["configMap"]["name"] == "private-ca"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["prometheus-ca"] == "/etc/tenfold/prometheus-ca"


@pytest.fixture(scope="module")
def release(testbed: tb.Testbed, kubectl: Kubectl) -> Iterator[Release]:
    """The chart with its defaults (one standalone replica) and a CPU price."""
    installed = install(testbed, kubectl, f"prices.cpu={CPU_PRICE}")
    yield installed
    uninstall(testbed, kubectl, installed)


def test_install_creates_the_operator_and_its_rbac(release: Release, kubectl: Kubectl):
    ns, name = release.namespace, release.fullname
    kubectl("wait", "-n", ns, "--for=condition=Available", "--timeout=90s", f"deployment/{name}")
    for kind in ("serviceaccount", "role", "rolebinding", "service"):
        get_json(kubectl, ns, kind, name)
    for kind in ("clusterrole", "clusterrolebinding"):
        kubectl("get", kind, name)
    # The release owns every CRD of the chart now, and uninstalling it would keep them.
    crds = chart_crd_annotations(kubectl)
    assert sorted(crds) == sorted(CHART_CRDS)
    for owner in crds.values():
        assert owner[RELEASE_NAME] == release.name and owner[KEEP] == "keep"
    prices = get_json(kubectl, ns, "configmap", f"{name}-gpu-prices")
    assert prices["data"] == {"cpu": str(CPU_PRICE)}
    pod_spec = get_json(kubectl, ns, "deployment", name)["spec"]["template"]["spec"]
    assert "--standalone" in pod_spec["containers"][0]["args"]
    # The namespace enforces `restricted`: a pod exists only if the profile admitted it.
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]


def _can_i(kubectl: Kubectl, release: Release, *args: str) -> bool:
    result = kubectl("auth", "can-i", *args, f"--as={release.user}", check=False)
    return result.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ("get", "secrets", "--all-namespaces"),
        ("list", "secrets", "--all-namespaces"),
        ("update", "secrets", "--all-namespaces"),
        ("delete", "secrets", "--all-namespaces"),
        ("update", "nodes"),
        ("patch", "nodes"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "inferenceservices.serving.tenfold.dev", "--all-namespaces"),
        ("create", "pods", "--all-namespaces"),
        ("patch", "clusterkopfpeerings.kopf.dev"),
        ("*", "*", "--all-namespaces"),
    ],
)
def test_service_account_cannot(release: Release, kubectl: Kubectl, args: tuple[str, ...]):
    assert not _can_i(kubectl, release, *args)


@pytest.mark.parametrize(
    "args",
    [
        ("patch", "inferenceservices.serving.tenfold.dev", "--subresource=scale", "-A"),
        ("patch", "inferenceservices.serving.tenfold.dev", "--subresource=status", "-A"),
        ("watch", "inferenceservices.serving.tenfold.dev", "-A"),
        ("patch", "deployments.apps", "-A"),
        ("delete", "poddisruptionbudgets.policy", "-A"),
        ("create", "events", "-A"),
    ],
)
def test_service_account_can(release: Release, kubectl: Kubectl, args: tuple[str, ...]):
    assert _can_i(kubectl, release, *args)


def test_service_account_reads_the_price_configmap(release: Release, kubectl: Kubectl):
    prices = f"configmap/{release.fullname}-gpu-prices"
    assert _can_i(kubectl, release, "get", prices, "-n", release.namespace)


def service_account_kubeconfig(
    kubectl: Kubectl, testbed: tb.Testbed, release: Release, path: Path
) -> Path:
    """A kubeconfig for the test bed whose user is the release's ServiceAccount (a token)."""
    token = kubectl(
        "create", "token", release.fullname, "-n", release.namespace, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(testbed.kubeconfig.read_text())
    cluster = next(c for c in admin["clusters"] if c["name"] == testbed.cluster_name)
    context = {"cluster": cluster["name"], "user": "operator"}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": context}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    whoami = kubectl("auth", "whoami", f"--kubeconfig={path}", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"]["username"] == release.user
    return path


def operator_env(kubeconfig: Path, release: Release) -> dict[str, str]:
    """What the chart's Deployment sets, with the ServiceAccount's kubeconfig."""
    return {
        "KUBECONFIG": str(kubeconfig),
        "TENFOLD_NAMESPACE": release.namespace,
        "TENFOLD_PRICES_CONFIGMAP": f"{release.fullname}-gpu-prices",
    }


def serve_minilm(kubectl: Kubectl, namespace: str) -> dict:
    """Apply the MiniLM example, wait for Ready, delete it (while the operator runs)."""
    apply_manifest(kubectl, namespace, load_manifest(MINILM))
    service = wait_ready(kubectl, namespace, "minilm", timeout=120)
    kubectl("delete", "-n", namespace, "inferenceservice", "minilm", f"--timeout={DELETE_TIMEOUT}s")
    return service


def assert_never_denied(output: str) -> None:
    """No traceback, no 403, no kopf fallback for missing permissions."""
    for word in OPERATOR_DENIED:
        assert word not in output, output[-6000:]


def test_operator_serves_with_only_the_charts_permissions(
    release: Release, testbed: tb.Testbed, kubectl: Kubectl, namespace: str, tmp_path: Path
):
    kubeconfig = service_account_kubeconfig(kubectl, testbed, release, tmp_path / "sa.yaml")
    env = operator_env(kubeconfig, release)
    operator = OperatorProcess(tmp_path / "operator.log", env=env).start()
    try:
        service = serve_minilm(kubectl, namespace)
    finally:
        operator.stop()
    # 2 vCPU and the cache sidecar's 0.1 at the chart's cpu price, one replica: the price
    # ConfigMap was readable.
    assert service["status"]["costPerHour"] == pytest.approx(2.1 * CPU_PRICE)
    assert_never_denied(operator.log_text())


def set_cpu_price(kubectl: Kubectl, release: Release, text: str) -> None:
    """Write the cluster's cpu price into the release's price ConfigMap, as an admin would."""
    patch = json.dumps({"data": {"cpu": text}})
    kubectl("patch", "configmap", f"{release.fullname}-gpu-prices", "-n", release.namespace,
            "--type=merge", "-p", patch)  # fmt: skip


def price_events(kubectl: Kubectl, namespace: str) -> list[str]:
    """Messages of the PriceRefused events on the service."""
    selector = "reason=PriceRefused,involvedObject.name=minilm"
    listing = kubectl("get", "events", "-n", namespace, f"--field-selector={selector}", "-o=json")
    return [e["message"] for e in json.loads(listing.stdout)["items"]]


def test_bad_cluster_prices_are_refused_and_scale_nothing(
    release: Release, testbed: tb.Testbed, kubectl: Kubectl, namespace: str, tmp_path: Path
):
    manifest = load_manifest(MINILM)
    # 3 replicas of 2.1 vCPU at 0.05 cost 0.315 USD/h: the budget pays for exactly 3.
    manifest["spec"]["budget"] = {"maxCostPerHour": 0.33}
    manifest["spec"]["replicas"] = 3
    kubeconfig = service_account_kubeconfig(kubectl, testbed, release, tmp_path / "sa.yaml")
    env = operator_env(kubeconfig, release)
    operator = OperatorProcess(tmp_path / "operator.log", env=env).start()
    try:
        apply_manifest(kubectl, namespace, manifest)
        before = wait_ready(kubectl, namespace, "minilm", timeout=120)
        assert before["status"]["costPerHour"] == pytest.approx(0.315)
        # Before the fix: nan raised in every reconcile, inf scaled to 0, 0 lifted the cap.
        for bad in ("inf", "nan", "0", "-1"):
            set_cpu_price(kubectl, release, bad)
            refused = wait_for(
                lambda bad=bad: (
                    (s := get_json(kubectl, namespace, "inferenceservice", "minilm"))
                    and f"cpu={bad!r}" in condition_of(s, "PricesRefused").get("message", "")
                    and s
                ),
                f"PricesRefused naming cpu={bad!r}",
                timeout=30,
            )
            assert condition_of(refused, "PricesRefused")["status"] == "True"
            wait_for(
                lambda bad=bad: any(f"cpu={bad!r}" in m for m in price_events(kubectl, namespace)),
                f"a PriceRefused event naming cpu={bad!r}",
                timeout=30,
            )
            settle(3)  # ticks that would have scaled on the bad price
            now = get_json(kubectl, namespace, "inferenceservice", "minilm")
            deployment = get_json(kubectl, namespace, "deployment", "minilm")
            assert now["spec"]["replicas"] == 3 and deployment["spec"]["replicas"] == 3
            assert now["status"]["costPerHour"] == pytest.approx(0.315)  # last good: 0.05
        # A good price applies at once: 2.1 x 0.06 = 0.126 a replica, 0.33 pays for 2.
        set_cpu_price(kubectl, release, "0.06")
        wait_for(
            lambda: (
                (s := get_json(kubectl, namespace, "inferenceservice", "minilm"))["spec"]
                and (s.get("status") or {}).get("desiredReplicas") == 2
                and condition_of(s, "PricesRefused").get("status") == "False"
            ),
            "the budget to hold 2 replicas at the new good price",
            timeout=60,
        )
    finally:
        operator.stop()
        set_cpu_price(kubectl, release, str(CPU_PRICE))
    assert_never_denied(operator.log_text())


def test_namespaced_template_has_no_cluster_wide_rights():
    sets = ["--set", "watchNamespaces={team-a,team-b}"]
    rendered = helm("template", "ns", str(CHART), "--namespace", "ops", *sets).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in documents}
    assert not [k for k in kinds if k[0] in ("ClusterRole", "ClusterRoleBinding")]
    for served in ("team-a", "team-b"):
        assert ("Role", served, "ns-tenfold-services") in kinds
        assert ("RoleBinding", served, "ns-tenfold-services") in kinds
    # The release's own namespace keeps only the price ConfigMap's Role.
    assert ("Role", "ops", "ns-tenfold") in kinds
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=team-a", "--namespace=team-b"} <= set(args)
    # One replica only: kopf's namespaced peering objects are not shipped.
    failed = helm("template", "ns", str(CHART), *sets, "--set", "replicaCount=2", check=False)
    assert failed.returncode != 0 and "watchNamespaces" in failed.stderr


@dataclass(frozen=True)
class Namespaced:
    """A namespaced install serving `served` only; `unlisted` is any other namespace."""

    release: Release
    served: str
    unlisted: str


@pytest.fixture(scope="module")
def namespaced(testbed: tb.Testbed, kubectl: Kubectl, release: Release) -> Iterator[Namespaced]:
    """The chart with watchNamespaces naming one fresh namespace, and a second one it omits;
    the CRDs stay `release`'s."""
    served = create_namespace(kubectl, "served")
    unlisted = create_namespace(kubectl, "unlisted")
    values = (f"watchNamespaces={{{served}}}", f"prices.cpu={CPU_PRICE}")
    scoped = install(testbed, kubectl, *values, owns_crds=False)
    yield Namespaced(scoped, served, unlisted)
    uninstall(testbed, kubectl, scoped)
    for name in (served, unlisted):
        kubectl("delete", "namespace", name, "--wait=false", check=False)


# Every right the operator has in a served namespace: none of it anywhere else.
NAMESPACED_RIGHTS = [
    ("patch", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("delete", "statefulsets.apps"),
    ("create", "configmaps"),
    ("create", "secrets"),
    ("watch", "pods"),
    ("create", "events"),
    ("watch", "inferenceservices.serving.tenfold.dev"),
    ("patch", "inferenceservices.serving.tenfold.dev", "--subresource=scale"),
]


@pytest.mark.parametrize("right", NAMESPACED_RIGHTS, ids="-".join)
def test_namespaced_install_acts_only_in_its_namespaces(
    namespaced: Namespaced, kubectl: Kubectl, right: tuple[str, ...]
):
    release = namespaced.release
    assert _can_i(kubectl, release, *right, "-n", namespaced.served)
    for elsewhere in ("kube-system", "default", namespaced.unlisted, release.namespace):
        assert not _can_i(kubectl, release, *right, "-n", elsewhere), elsewhere
    assert not _can_i(kubectl, release, *right, "--all-namespaces")


@pytest.mark.parametrize(
    "args",
    [
        ("list", "namespaces"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("get", "secrets", "-n", "kube-system"),
        ("get", "configmaps", "-n", "kube-system"),
        ("list", "clusterkopfpeerings.kopf.dev"),
    ],
)
def test_namespaced_install_reads_nothing_cluster_wide(
    namespaced: Namespaced, kubectl: Kubectl, args: tuple[str, ...]
):
    assert not _can_i(kubectl, namespaced.release, *args)


def test_namespaced_operator_serves_its_namespace_and_ignores_others(
    namespaced: Namespaced, testbed: tb.Testbed, kubectl: Kubectl, tmp_path: Path
):
    release = namespaced.release
    kubeconfig = service_account_kubeconfig(kubectl, testbed, release, tmp_path / "sa.yaml")
    env = operator_env(kubeconfig, release)
    scoped = (f"--namespace={namespaced.served}",)
    operator = OperatorProcess(tmp_path / "operator.log", env=env, args=scoped).start()
    try:
        apply_manifest(kubectl, namespaced.unlisted, load_manifest(MINILM))
        service = serve_minilm(kubectl, namespaced.served)
        settle(3)  # ticks of the operator, which must not reach the unlisted namespace
        ignored = get_json(kubectl, namespaced.unlisted, "inferenceservice", "minilm")
    finally:
        operator.stop()
    assert service["status"]["costPerHour"] == pytest.approx(2.1 * CPU_PRICE)
    assert "status" not in ignored and not ignored["metadata"].get("finalizers")
    gone = kubectl("get", "deployment", "minilm", "-n", namespaced.unlisted, check=False)
    assert gone.returncode != 0
    assert_never_denied(operator.log_text())


def test_replicated_operator_peers_with_only_the_charts_permissions(
    release: Release, testbed: tb.Testbed, kubectl: Kubectl, namespace: str, tmp_path: Path
):
    # The ClusterKopfPeering CRD must be served before a release can hold a peering object:
    # `release` installed it.
    ha = install(testbed, kubectl, "replicaCount=2", owns_crds=False)
    try:
        kubeconfig = service_account_kubeconfig(kubectl, testbed, ha, tmp_path / "sa.yaml")
        env = {**operator_env(kubeconfig, ha), "POD_ID": "peer-under-test"}
        operator = PeeringOperator(tmp_path / "operator.log", env, ha.fullname).start()
        try:
            serve_minilm(kubectl, namespace)
            peering = json.loads(
                kubectl("get", "clusterkopfpeering", ha.fullname, "-o", "json").stdout
            )
            assert "peer-under-test" in (peering.get("status") or {})
        finally:
            operator.stop()
        assert_never_denied(operator.log_text())
    finally:
        uninstall(testbed, kubectl, ha)


def test_uninstall_keeps_the_crd_and_the_users_services(
    release: Release, testbed: tb.Testbed, kubectl: Kubectl, namespace: str
):
    # No operator runs here, so the service carries no finalizer and is just stored data.
    apply_manifest(kubectl, namespace, load_manifest(MINILM))
    helm("uninstall", release.name, "-n", release.namespace, "--wait",
         kubeconfig=testbed.kubeconfig)  # fmt: skip
    wait_for(
        lambda: kubectl("get", "deployment", release.fullname, "-n", release.namespace,
                        check=False).returncode != 0,
        "the operator Deployment to go",
    )  # fmt: skip
    for kind in ("clusterrole", "clusterrolebinding", "role", "serviceaccount"):
        found = kubectl("get", kind, release.fullname, "-n", release.namespace, check=False)
        assert found.returncode != 0, f"{kind} survived the uninstall"
    # The release owned the CRDs (helm.sh/resource-policy: keep): all stay, and the service.
    assert sorted(chart_crd_annotations(kubectl)) == sorted(CHART_CRDS)
    kubectl("get", "-n", namespace, "inferenceservice", "minilm")
