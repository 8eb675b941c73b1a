"""A node that was killed misses writes; when it returns, hint handoff and the repair
worker bring it back to full replication, checked chunk by chunk on every replica."""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.codec.chunk_codec import ChunkCodec
from cairn.localcluster import LocalCluster
from cairn.node.chunk_client import ReplicatedChunks
from cairn.node.chunk_messages import ChunkHas, ChunkHasReply
from cairn.node.meta_client import MetaClient
from cairn.node.view_cache import ViewCache
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "repair-after-restart-secret"
SETTINGS = {
    "heartbeat_interval_s": "0.2",
    "suspect_after_s": "0.6",
    "down_after_s": "1.0",
    "repair_after_s": "600",
    "partition_count": "64",
}
CHUNKS = 60
CODEC = ChunkCodec.from_cluster_key(b"k" * 32)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], deadline_s: float, what: str
) -> None:
    deadline = time.monotonic() + deadline_s
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


async def scenario(cluster: LocalCluster) -> None:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.nodes.values()])
    views = ViewCache(meta)
    chunks = ReplicatedChunks(pool, views.require)
    try:

        async def all_alive() -> bool:
            view = await views.refresh()
            return len(view.live) == 3

        await wait_until(all_alive, 20, "three live nodes")
        cluster.kill("node-3")

        async def node3_down() -> bool:
            view = await views.refresh()
            return len(view.live) == 2

        await wait_until(node3_down, 10, "node-3 marked down")
        written = []
        for _ in range(CHUNKS):
            encoded = CODEC.encode(os.urandom(4096))
            chunk_id = bytes(encoded.chunk_id)
            outcome = await chunks.write(chunk_id, encoded.record, "quorum")
            assert len(outcome.acked) >= 2
            written.append(chunk_id)
        await chunks.drain()

        cluster.start_node("node-3")
        cluster.wait_healthy(["node-3"])
        addresses = [n.rpc_address for n in cluster.nodes.values()]

        async def fully_replicated() -> bool:
            for address in addresses:
                try:
                    reply, _ = await pool.call(address, ChunkHas(written, False), ChunkHasReply)
                except Exception:
                    return False
                if not all(reply.present):
                    return False
            return True

        await wait_until(fully_replicated, 30, "every chunk on every replica")
    finally:
        await pool.close()


def test_returning_node_is_repaired_to_full_replication(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=SETTINGS) as cluster:
        asyncio.run(scenario(cluster))
