"""The local cluster harness with real node processes: health, kill -9, restart, clean
stop, and no orphans even when the harness itself is killed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import ClusterError, health

pytestmark = pytest.mark.xdist_group("processes")


def gone(pid: int) -> bool:
    """True when `pid` no longer runs (missing, or a zombie awaiting its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def wait_until(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)  # poll a condition with a deadline
    return False


def test_start_kill_restart_stop(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, nodes=3, secret="harness-test-secret-123")
    with cluster:
        described = json.loads((tmp_path / "cluster.json").read_text())
        assert [n["node_id"] for n in described["nodes"]] == ["node-1", "node-2", "node-3"]
        assert oct((tmp_path / "cluster.json").stat().st_mode & 0o777) == "0o600"
        for node in cluster.nodes.values():
            answer = health(node.host, node.admin_port)
            assert answer is not None
            assert answer[0] == 200
            assert answer[1]["node_id"] == node.node_id
        victim = cluster.nodes["node-2"]
        old_pid = victim.process.pid if victim.process else 0
        cluster.kill("node-2")
        assert health(victim.host, victim.admin_port) is None
        cluster.restart("node-2")
        assert victim.process is not None
        assert victim.process.pid != old_pid
        answer = health(victim.host, victim.admin_port)
        assert answer is not None
        assert answer[0] == 200
        pids = [n.process.pid for n in cluster.nodes.values() if n.process]
    assert all(gone(pid) for pid in pids)
    # A clean stop exits 0 (SIGTERM handled), not by SIGKILL.
    assert all(n.process is not None and n.process.returncode == 0 for n in cluster.nodes.values())


def test_second_process_on_same_data_dir_is_refused(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, nodes=1) as cluster:
        node = cluster.nodes["node-1"]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cairn",
                "server",
                "--data-dir",
                str(node.data_dir),
                "--rpc-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert "in use by another process" in result.stderr


def test_node_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, nodes=1, settings={"replication_factor": "0"})
    with pytest.raises(ClusterError, match="replication_factor"):
        cluster.start(wait_seconds=30)


HARNESS_SCRIPT = """
import sys, time
from pathlib import Path
from cairn.localcluster import LocalCluster
cluster = LocalCluster(Path(sys.argv[1]), nodes=2)
cluster.start()
print(" ".join(str(n.process.pid) for n in cluster.nodes.values()), flush=True)
time.sleep(600)
"""


def test_nodes_die_with_a_killed_harness(tmp_path: Path) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert harness.stdout is not None
        pids = [int(p) for p in harness.stdout.readline().split()]
        assert len(pids) == 2
        assert not any(gone(pid) for pid in pids)
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait()
        assert wait_until(lambda: all(gone(pid) for pid in pids)), "orphaned node processes"
    finally:
        harness.kill()
        harness.wait()


def test_a_port_taken_before_the_bind_makes_start_draw_new_ports(tmp_path: Path) -> None:
    """Another process binds one of the drawn ports between `free_ports` and the node's
    bind (another test's cluster drawing the same random port): start stops the cluster
    and starts it again on new ports instead of failing."""
    cluster = LocalCluster(tmp_path, nodes=2, secret="harness-test-secret-123")
    taken = cluster.nodes["node-2"].admin_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert cluster.nodes["node-2"].admin_port != taken
            for node in cluster.nodes.values():
                answer = health(node.host, node.admin_port, timeout=5.0)
                assert answer is not None and answer[0] == 200
            described = json.loads((tmp_path / "cluster.json").read_text())
            assert str(taken) not in json.dumps(described)
