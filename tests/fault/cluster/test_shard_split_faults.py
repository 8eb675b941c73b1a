"""Shard splits survive kill -9: a replica that was down when its shard split builds the
new group from its own log once back, and a new root leader finishes a split the killed
one left pending. Every acknowledged write is still there, listed once, on every replica."""

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.base.errors import CairnError
from cairn.client.sdk import CairnClient
from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import FAST_FAILURE_DETECTION
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ShardStatsQuery, ShardStatsReply
from cairn.raft.kv_service import RaftStatus, RaftStatusReply
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "shard-split-faults-00"
BUCKET = "splits"
KEYS_MAX = 12


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], deadline_s: float, what: str
) -> None:
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < deadline_s, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


async def root_leader(pool: RpcPool, cluster: LocalCluster) -> str | None:
    for node_id, node in cluster.nodes.items():
        if not node.running:
            continue
        try:
            status, _ = await pool.call(
                node.rpc_address, RaftStatus(ROOT_GROUP_ID), RaftStatusReply, timeout=1
            )
        except CairnError:
            continue
        if status.role == "leader":
            return node_id
    return None


async def scenario(cluster: LocalCluster) -> None:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.voters])
    sdk = CairnClient([f"http://{n.host}:{n.s3_port}" for n in cluster.nodes.values()], SECRET)
    acked: dict[str, bytes] = {}
    count = 0

    async def put_some(n: int) -> None:
        nonlocal count
        for _ in range(n):
            key = f"k/{count:04d}"
            data = os.urandom(200 + count)
            await sdk.put(BUCKET, key, data)
            acked[key] = hashlib.sha256(data).digest()
            count += 1

    async def pending() -> bool:
        return any(s.parent for s in (await meta.directory(refresh=True)).shards)

    try:
        await sdk.make_bucket(BUCKET)
        # 1. A replica is down when its shard splits: the split is recorded and the range
        #    cut off, but it stays pending, as the new group cannot start there yet.
        leader = None
        for _ in range(100):
            leader = await root_leader(pool, cluster)
            if leader is not None:
                break
            await asyncio.sleep(0.05)  # polling for an elected leader
        assert leader is not None
        down = next(n for n in ("node-1", "node-2", "node-3") if n != leader)
        cluster.kill(down)
        await put_some(3 * KEYS_MAX)
        await wait_until(pending, 30, "a split to wait for the replica that is down")
        await put_some(10)  # both halves take writes while the split is pending
        assert await pending()

        # 2. Kill -9 the root leader in the middle of that split and bring the other node
        #    back: the new root leader finishes it once the killed node returns too.
        cluster.kill(leader)
        cluster.start_node(down)
        cluster.wait_healthy([down])
        await put_some(10)
        cluster.start_node(leader)
        cluster.wait_healthy([leader])
        await put_some(KEYS_MAX)

        async def settled() -> bool:
            before = await meta.directory(refresh=True)
            if any(s.parent for s in before.shards):
                return False
            for shard in before.shards:
                query = ShardStatsQuery(shard.group_id, None, "linearizable")
                reply, _ = await meta.call(shard.group_id, query, ShardStatsReply)
                if reply.key_count > KEYS_MAX or reply.seeds:
                    return False
            after = await meta.directory(refresh=True)
            return after.epoch == before.epoch

        await wait_until(settled, 60, "every split to be carried out")
        shards = (await meta.directory(refresh=True)).shards
        assert len(shards) >= count // KEYS_MAX

        # 3. Nothing acknowledged is lost or listed twice, and every replica of every
        #    shard holds the same keys.
        for key, digest in acked.items():
            assert hashlib.sha256(await sdk.get(BUCKET, key)).digest() == digest, key
        listed = []
        token = None
        for _ in range(100):
            page = await meta.list_objects(BUCKET, continuation_token=token, max_keys=5)
            listed += [e.key for e in page.entries]
            if not page.is_truncated:
                break
            token = page.next_continuation_token
        assert listed == sorted(acked)

        async def replicas_agree() -> bool:
            for shard in shards:
                counts = set()
                for node in cluster.voters:
                    query = ShardStatsQuery(shard.group_id, None, "stale")
                    reply, _ = await pool.call(node.rpc_address, query, ShardStatsReply)
                    counts.add((reply.key_count, reply.stats.bytes))
                if len(counts) != 1:
                    return False
            return True

        await wait_until(replicas_agree, 30, "every replica of every shard to agree")
    finally:
        await sdk.close()
        await pool.close()


def test_kill_a_replica_and_the_root_leader_during_splits_loses_nothing(tmp_path: Path) -> None:
    settings = {**FAST_FAILURE_DETECTION, "index_split_keys": str(KEYS_MAX)}
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        asyncio.run(scenario(cluster))
