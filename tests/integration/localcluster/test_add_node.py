"""`LocalCluster.add_node`: a fourth node joins the cluster map as a storage member (not a
metadata voter), shows as alive, takes a share of the partitions, and is in cluster.json."""

import asyncio
import json
from pathlib import Path

import pytest

from cairn.client.cluster_file import load_cluster_file
from cairn.client.status_probe import probe_cluster
from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import FAST_FAILURE_DETECTION
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ClusterViewReply
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "add-node-test-secret-1"


async def view_of(cluster: LocalCluster) -> ClusterViewReply:
    pool = RpcPool("test", derive_auth_key(SECRET))
    try:
        meta = MetaClient(pool, [n.rpc_address for n in cluster.voters])
        return await meta.cluster_view()
    finally:
        await pool.close()


def test_fourth_node_joins_as_storage_member(tmp_path: Path) -> None:
    settings = dict(FAST_FAILURE_DETECTION)
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        assert all(n.member_id for n in cluster.nodes.values())  # start() waited for ready
        fourth = cluster.add_node(settings={"zone": "z4"})
        assert fourth.node_id == "node-4"
        assert fourth.raft_id == 0
        assert fourth.member_id == "n4"

        view = asyncio.run(view_of(cluster))
        members = {m.name: m for m in view.members}
        assert sorted(members) == ["node-1", "node-2", "node-3", "node-4"]
        assert members["node-4"].liveness == "alive"
        assert members["node-4"].zone == "z4"
        assert members["node-4"].address == fourth.rpc_address

        described = json.loads((tmp_path / "cluster.json").read_text())
        assert [n["raft_id"] for n in described["nodes"]] == [1, 2, 3, 0]
        assert described["nodes"][3]["member_id"] == "n4"

        status = asyncio.run(probe_cluster(load_cluster_file(tmp_path)))
        assert [n.health for n in status.nodes] == ["ok"] * 4
        assert status.balance is not None
        assert status.balance.per_member["n4"] > 0  # it owns a share of the partitions
        root = status.groups[0]
        assert sorted(r.node for r in root.replicas) == ["node-1", "node-2", "node-3"]
