"""The real node's configuration, as data: addresses, kubelet, CNI, kube-proxy, CoreDNS."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from tenfold_tools.testbed.layout import TestbedError
from tenfold_tools.testbed.node import (
    CLUSTER_DNS_IP,
    REAL_NODE_NAME,
    KubeletPaths,
    NodeNetwork,
    cni_conflist,
    containerd_config,
    coredns_objects,
    kube_proxy_config,
    kubelet_args,
    kubelet_config,
    local_storage_objects,
)
from tenfold_tools.testbed.realnode import image_ref, parse_image_lines

PATHS = KubeletPaths(
    root_dir=Path("/s/node/kubelet"),
    pod_logs=Path("/s/node/pod-logs"),
    ca=Path("/s/pki/ca.crt"),
    serving_cert=Path("/s/pki/kubelet-serving.crt"),
    serving_key=Path("/s/pki/kubelet-serving.key"),
    runtime_socket=Path("/s/node/containerd/containerd.sock"),
)


@pytest.mark.parametrize("slot", [1, 7, 200])
def test_every_address_is_private_and_the_link_holds_both_ends(slot: int) -> None:
    network = NodeNetwork(slot)
    link = ipaddress.ip_network(f"{network.host_ip}/{network.link_prefix}", strict=False)
    assert ipaddress.ip_address(network.node_ip) in link
    assert network.host_ip != network.node_ip
    for address in (network.host_ip, network.node_ip):
        assert ipaddress.ip_address(address).is_private
    assert ipaddress.ip_network(network.pod_cidr).is_private
    assert not ipaddress.ip_network(network.pod_cidr).overlaps(link)
    assert len(network.host_link) <= 15  # Linux's limit on link names


@pytest.mark.parametrize("slot", [0, 201])
def test_slots_outside_the_range_are_refused(slot: int) -> None:
    with pytest.raises(ValueError, match="slot"):
        NodeNetwork(slot)


def test_the_kubelet_serves_on_the_node_ip_and_authenticates_every_caller() -> None:
    network = NodeNetwork(1)
    config = kubelet_config(network, PATHS, "/tenfold-node")
    assert config["address"] == network.node_ip
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authorization"]["mode"] == "Webhook"
    assert config["containerRuntimeEndpoint"] == f"unix://{PATHS.runtime_socket}"
    # A cgroup root of its own: `down` removes it, and no two test beds share kubepods.
    assert config["cgroupRoot"] == "/tenfold-node"
    assert config["clusterDNS"] == [CLUSTER_DNS_IP]
    argv = kubelet_args(Path("/bin/kubelet"), Path("c.yaml"), Path("k"), PATHS.root_dir, network)
    assert f"--node-ip={network.node_ip}" in argv


def test_containerd_clamps_oom_score_adj_and_uses_the_local_pause_image() -> None:
    text = containerd_config(Path("/r"), Path("/s"), Path("/s/c.sock"), Path("/n"))
    assert "restrict_oom_score_adj = true" in text
    assert 'sandbox_image = "docker.io/tenfold/pause:' in text
    assert 'address = "/s/c.sock"' in text


def test_pods_get_addresses_from_the_nodes_pod_cidr() -> None:
    network = NodeNetwork(3)
    config = json.loads(cni_conflist(network, Path("/ipam")))
    bridge = config["plugins"][0]
    assert bridge["ipam"]["ranges"] == [[{"subnet": network.pod_cidr}]]
    assert bridge["hairpinMode"] is True
    proxy = kube_proxy_config(network, Path("/k"))
    assert proxy["clusterCIDR"] == network.pod_cidr
    assert proxy["conntrack"]["maxPerCore"] == 0  # the machine's conntrack table stays as is


def test_coredns_serves_the_cluster_dns_address_without_privileges() -> None:
    objects = {o["kind"]: o for o in coredns_objects("docker.io/tenfold/coredns:v1")}
    assert objects["Service"]["spec"]["clusterIP"] == CLUSTER_DNS_IP
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_BIND_SERVICE"],
    }
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports == {1053}  # above 1024: no NET_BIND_SERVICE needed
    assert "1053" in objects["ConfigMap"]["data"]["Corefile"]


def test_image_lines_are_parsed_and_refs_found_by_name() -> None:
    output = "building...\nIMAGE docker.io/tenfold/operator:0.1.0 /c/operator-ab.tar\n"
    output += "IMAGE docker.io/tenfold/runtime-cpu:0.1.0 /c/runtime-cpu-cd.tar\n"
    images = parse_image_lines(output)
    assert images["docker.io/tenfold/operator:0.1.0"] == Path("/c/operator-ab.tar")
    assert image_ref(images, "runtime-cpu") == "docker.io/tenfold/runtime-cpu:0.1.0"
    with pytest.raises(TestbedError, match="coredns"):
        image_ref(images, "coredns")
    with pytest.raises(TestbedError, match="no IMAGE lines"):
        parse_image_lines("nothing built")


def test_gpu_nodes_are_tainted_only_beside_a_real_node() -> None:
    from tenfold_tools.testbed.nodes import GPU_TAINT, build_nodes, load_pools

    pools = load_pools()
    tainted = build_nodes(pools, gpu_taint=True)
    gpu_nodes = [n for n in tainted if "nvidia.com/gpu" in n["status"]["capacity"]]
    assert gpu_nodes and all(n["spec"]["taints"] == [GPU_TAINT] for n in gpu_nodes)
    assert all(not n["spec"] for n in tainted if n not in gpu_nodes)
    assert all(not n["spec"] for n in build_nodes(pools))


def test_local_volumes_bind_on_the_real_node_when_a_pod_lands_there() -> None:
    storage_class, *volumes = local_storage_objects(["/v/pv-0", "/v/pv-1"])
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    annotations = storage_class["metadata"]["annotations"]
    assert annotations["storageclass.kubernetes.io/is-default-class"] == "true"
    assert [v["spec"]["local"]["path"] for v in volumes] == ["/v/pv-0", "/v/pv-1"]
    assert len({v["metadata"]["name"] for v in volumes}) == 2
    for volume in volumes:
        (term,) = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert term["matchExpressions"][0]["values"] == [REAL_NODE_NAME]
        assert volume["spec"]["storageClassName"] == storage_class["metadata"]["name"]


def test_a_holder_that_is_still_starting_keeps_the_node(tmp_path: Path) -> None:
    """Between its claim and its containerd's start a holder has only its claimer's pid;
    a second `up` in that window must not take the node over (it did once, here)."""
    import os

    from tenfold_tools.testbed.realnode import holder_alive

    starting = {"name": "a", "state": str(tmp_path), "claimer_pid": os.getpid()}
    assert holder_alive(starting)
    assert not holder_alive({**starting, "claimer_pid": 0})
    # Once containerd runs, its pid decides: this test's own pid does not name the state.
    assert not holder_alive({**starting, "containerd_pid": os.getpid()})
