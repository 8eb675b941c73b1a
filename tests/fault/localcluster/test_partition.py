"""Nodes in network namespaces: cut and heal the network between them.

Needs root and iproute2; without them the test is skipped with the reason printed.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from cairn.localcluster import LocalCluster, NetnsLab, unavailable_reason

SECRET = "partition-test-secret-123"
pytestmark = [pytest.mark.netns, pytest.mark.xdist_group("processes")]


def can_ping(lab: NetnsLab, source: str, target: LocalCluster, target_id: str) -> bool:
    """An authenticated RPC ping from inside `source`'s namespace."""
    node = target.nodes[target_id]
    result = subprocess.run(
        [
            *lab.exec_prefix(source),
            sys.executable,
            "-m",
            "cairn",
            "ping",
            node.rpc_address,
            "--secret",
            SECRET,
            "--timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0 and f"pong from {target_id}" in result.stdout


def test_cut_and_heal_between_nodes_in_namespaces(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    hosts = ["node-1", "node-2", "node-3"]
    with NetnsLab(hosts) as lab, LocalCluster(tmp_path, 3, secret=SECRET, lab=lab) as cluster:
        assert can_ping(lab, "node-1", cluster, "node-2")
        lab.cut("node-1", "node-2")
        assert not can_ping(lab, "node-1", cluster, "node-2")
        assert not can_ping(lab, "node-2", cluster, "node-1")
        assert can_ping(lab, "node-1", cluster, "node-3")  # only that link is cut
        lab.isolate("node-3")
        assert not can_ping(lab, "node-1", cluster, "node-3")
        lab.heal()
        assert can_ping(lab, "node-1", cluster, "node-2")
        assert can_ping(lab, "node-2", cluster, "node-3")
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert lab.tag not in namespaces  # nothing left behind
