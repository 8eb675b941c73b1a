"""Bad input to a running Raft group: refused with a typed error, never a crash."""

import asyncio
from pathlib import Path

import pytest

from cairn.base.errors import FrameError, RemoteError
from cairn.localcluster import LocalCluster
from cairn.raft.kv_client import KvClient
from cairn.raft.kv_service import KV_GROUP_FIRST, KvReply, KvWrite, RaftStatus, RaftStatusReply
from cairn.raft.transport import RaftBatch, RaftBatchAck, WireMessage
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "raft-bad-input-secret-12"


async def scenario(cluster: LocalCluster) -> None:
    addresses = {n.node_id: n.rpc_address for n in cluster.nodes.values()}
    client = KvClient(list(addresses.values()), SECRET)
    pool = RpcPool("test", derive_auth_key(SECRET))
    try:
        await client.put(b"hello", b"world", timeout=20)
        leader_address = client.leader
        assert leader_address is not None
        follower = next(a for a in addresses.values() if a != leader_address)

        # A write sent to a follower: "not leader", carrying the leader's address.
        with pytest.raises(RemoteError) as info:
            await pool.call(follower, KvWrite(KV_GROUP_FIRST, "put", b"k", b"v"), KvReply)
        assert info.value.code == "not_leader"
        assert info.value.message == leader_address

        # Oversized values are refused with a clear error: by the server past the KV
        # limit, and by the client's frame limit before anything is sent.
        with pytest.raises(RemoteError) as info:
            await client.put(b"big", b"x" * (100 << 10))
        assert info.value.code in ("bad_request", "too_large")
        assert "exceeds" in info.value.message
        with pytest.raises(FrameError, match="exceeds"):
            await client.put(b"huge", b"x" * (2 << 20))

        # Messages for a group nobody hosts, or with an unknown type, are dropped.
        junk = RaftBatch(
            [
                WireMessage(type=1, to=1, frm=2, term=1, group_id=99),
                WireMessage(type=250, to=1, frm=2, term=1, group_id=1),
            ]
        )
        for address in addresses.values():
            ack, _ = await pool.call(address, junk, RaftBatchAck)
            assert ack.accepted == 0

        # A stale-term append is ignored: the group keeps its leader and keeps working.
        stale = RaftBatch([WireMessage(type=1, to=1, frm=2, term=0, group_id=1, index=999)])
        await pool.call(addresses["node-1"], stale, RaftBatchAck)
        await client.put(b"after", b"junk", timeout=20)
        assert await client.get(b"hello") == b"world"
        status, _ = await pool.call(leader_address, RaftStatus(KV_GROUP_FIRST), RaftStatusReply)
        assert status.role == "leader"
    finally:
        await client.close()
        await pool.close()


def test_bad_input_is_refused_and_counted(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True) as cluster:
        asyncio.run(scenario(cluster))
        for node_id in cluster.nodes:
            assert cluster.nodes[node_id].running
