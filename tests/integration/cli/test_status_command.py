"""`cairn status`: the pure figures (partition balance, dedup ratio), and a cluster with
a killed node, which status reports as down (health, then liveness, then under-replicated
partitions) without failing."""

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.client.status_probe import dedup_ratio, partition_balance
from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import FAST_FAILURE_DETECTION
from cairn.meta.clustermap import AdminState, Liveness, Member

SECRET = "status-command-test-secret"


def member(
    ident: str, liveness: Liveness = Liveness.ALIVE, admin: AdminState = AdminState.ACTIVE
) -> Member:
    return Member(ident, ident, f"h:{ident[1:]}", 1, 1.0, 0.0, 0.0, admin=admin, liveness=liveness)


def test_partition_balance_counts_owners_and_live_replicas() -> None:
    members = [
        member("n1"),
        member("n2", liveness=Liveness.DOWN),
        member("n3", admin=AdminState.DRAINING),
        member("n4", admin=AdminState.OUT),
    ]
    owners = [("n1", "n2", "n3"), ("n1", "n3", "n4"), ("n1", "n3", "n9"), ("n1",)]
    balance = partition_balance(members, owners, replica_count=3)
    assert balance.per_member == {"n1": 4, "n2": 1}  # members holding placements only
    assert (balance.min, balance.max, balance.mean) == (1, 4, 2.5)
    # Live: n1 and n3 (draining still serves); n2 is down, n4 out, n9 unknown.
    assert balance.under_replicated == 4
    assert partition_balance(members, [("n1", "n3", "n3")], 2).under_replicated == 0


def test_dedup_ratio_is_logical_over_one_stored_copy() -> None:
    assert dedup_ratio(300, 300, 3) == 3.0
    assert dedup_ratio(None, 300, 3) is None
    assert dedup_ratio(300, 0, 3) is None
    assert dedup_ratio(300, None, 3) is None


@pytest.mark.xdist_group("processes")
def test_status_reports_a_killed_node_as_down(tmp_path: Path) -> None:
    settings = dict(FAST_FAILURE_DETECTION)
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        where = ["status", "--cluster", str(tmp_path), "--json"]
        cluster.kill("node-3")
        deadline = time.monotonic() + 15
        while True:
            result = CliRunner().invoke(cli, where, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            status = json.loads(result.stdout.strip().splitlines()[-1])
            by_name = {n["name"]: n for n in status["nodes"]}
            if by_name["node-3"]["liveness"] in ("down", "lost"):  # lost: given up on
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)  # poll a condition with a deadline
        assert by_name["node-3"]["health"] == "down"
        assert by_name["node-1"]["health"] == "ok"
        assert status["balance"]["under_replicated"] == status["balance"]["partition_count"]
        root = status["groups"][0]
        assert root["leader"] in {"node-1", "node-2"}
        assert root["unreachable"] == ["node-3"]

        text = CliRunner().invoke(cli, where[:-1], catch_exceptions=False)
        assert text.exit_code == 0
        assert "down" in text.stdout and "Traceback" not in text.output
