"""`down` leaves nothing of the real node behind: no process, container, mount, network
namespace, link, route, cgroup or iptables rule. Runs last in tests/node (file order): it
takes the session's test bed down itself, and the fixture's own `down` then finds nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tenfold_tools.testbed import Testbed
from tenfold_tools.testbed import down as stop_testbed
from tenfold_tools.testbed.node import NodeNetwork
from tenfold_tools.testbed.realnode import NODE_SLOT, NodeDirs, cgroup_dirs, mounts_below
from tests.node.conftest import HOST_STATE_AT_START, host_network_state


def _processes_naming(marker: str) -> list[str]:
    """Command lines of live processes that mention marker."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(cmdline)
    return found


def test_down_leaves_nothing_of_the_node_behind(testbed: Testbed) -> None:
    dirs = NodeDirs(testbed.state)
    network = NodeNetwork(NODE_SLOT)
    assert _processes_naming(str(testbed.state.root))  # the node runs before `down`
    stop_testbed(testbed.name)

    assert _processes_naming(str(testbed.state.root)) == []
    assert mounts_below(dirs.root, dirs.containerd_root) == []
    assert not testbed.state.root.exists()
    assert [d for d in cgroup_dirs() if d.exists()] == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert network.netns not in netns
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f" {network.host_link}@" not in links and f" {network.host_link}:" not in links
    # The host's own routes and iptables rules are as they were before the node started.
    assert host_network_state() == HOST_STATE_AT_START
