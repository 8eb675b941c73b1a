"""Many Raft groups per process share one transport (one connection per peer, batched
messages): each group elects its own leader and keeps its own data."""

import asyncio
from pathlib import Path

import pytest

from cairn.localcluster import LocalCluster
from cairn.raft.kv_client import KvClient
from cairn.raft.kv_service import KV_GROUP_FIRST, RaftStatus, RaftStatusReply
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "raft-many-groups-secret-1"
GROUPS = 8


async def scenario(cluster: LocalCluster) -> None:
    addresses = [n.rpc_address for n in cluster.nodes.values()]
    clients = [
        KvClient(addresses, SECRET, group=g) for g in range(KV_GROUP_FIRST, KV_GROUP_FIRST + GROUPS)
    ]
    pool = RpcPool("test", derive_auth_key(SECRET))
    try:
        await asyncio.gather(*(c.put(b"key", b"group-%d" % c.group, timeout=30) for c in clients))
        for client in clients:
            assert await client.get(b"key") == b"group-%d" % client.group
        # Every node hosts every group; each group has exactly one leader.
        for group in range(KV_GROUP_FIRST, KV_GROUP_FIRST + GROUPS):
            roles = []
            for address in addresses:
                status, _ = await pool.call(address, RaftStatus(group), RaftStatusReply)
                roles.append(status.role)
            assert roles.count("leader") == 1, (group, roles)
    finally:
        for client in clients:
            await client.close()
        await pool.close()


def test_eight_groups_on_three_nodes(tmp_path: Path) -> None:
    settings = {"raft_kv_groups": str(GROUPS)}
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        asyncio.run(scenario(cluster))
