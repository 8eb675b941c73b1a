"""Index shards split by size and by load on real node processes, while clients write and
list: nothing is lost, listed twice or missed, and shard leaders spread over the voters."""

import asyncio
import hashlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.client.sdk import CairnClient
from cairn.localcluster import LocalCluster
from cairn.meta.directory import ShardInfo
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ShardStatsQuery, ShardStatsReply
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "shard-split-secret-00"
KEYS_MAX = 24


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], deadline_s: float, what: str
) -> None:
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < deadline_s, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


async def shard_stats(meta: MetaClient, shards: list[ShardInfo]) -> list[ShardStatsReply]:
    replies = []
    for shard in shards:
        query = ShardStatsQuery(shard.group_id, None, "linearizable")
        reply, _ = await meta.call(shard.group_id, query, ShardStatsReply)
        replies.append(reply)
    return replies


async def settled(meta: MetaClient) -> bool:
    """No split pending and no shard over the size threshold, with the same directory
    before and after the figures were read (a split may start in between)."""
    before = await meta.directory(refresh=True)
    if any(s.parent for s in before.shards):
        return False
    small = all(r.key_count <= KEYS_MAX for r in await shard_stats(meta, before.shards))
    after = await meta.directory(refresh=True)
    return small and after.epoch == before.epoch and not any(s.parent for s in after.shards)


async def listed(meta: MetaClient, bucket: str, page_keys: int) -> list[str]:
    keys: list[str] = []
    token = None
    for _ in range(1000):
        page = await meta.list_objects(bucket, continuation_token=token, max_keys=page_keys)
        keys += [e.key for e in page.entries]
        if not page.is_truncated:
            return keys
        token = page.next_continuation_token
    raise AssertionError("the listing did not end")


async def split_under_writes(cluster: LocalCluster) -> None:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.voters])
    sdk = CairnClient([f"http://{n.host}:{n.s3_port}" for n in cluster.nodes.values()], SECRET)
    written: dict[tuple[str, str], bytes] = {}
    try:
        for bucket in ("alpha", "beta"):
            await sdk.make_bucket(bucket)
        done = asyncio.Event()

        async def writer(bucket: str, count: int, size: int) -> None:
            for i in range(count):
                data = os.urandom(size + i)  # over 4 KiB: chunks, not inline bytes
                await sdk.put(bucket, f"obj/{i:04d}", data)
                written[(bucket, f"obj/{i:04d}")] = hashlib.sha256(data).digest()

        async def lister() -> int:
            """List alpha in small pages all through the splits: each listing is sorted,
            has no duplicates and holds every key acked before it began."""
            rounds = 0
            while not done.is_set():
                before = {k for (b, k) in list(written) if b == "alpha"}
                keys = await listed(meta, "alpha", 7)
                assert keys == sorted(set(keys)), "a listing repeated or reordered keys"
                assert before <= set(keys), f"a listing missed {sorted(before - set(keys))[:3]}"
                rounds += 1
            return rounds

        listing = asyncio.create_task(lister())
        await asyncio.gather(writer("alpha", 110, 5000), writer("beta", 40, 100))
        await wait_until(lambda: settled(meta), 60, "the splits to settle")
        done.set()
        assert await listing >= 1

        shards = (await meta.directory(refresh=True)).shards
        assert len(shards) >= 150 // KEYS_MAX, [s.group_id for s in shards]
        stats = await shard_stats(meta, shards)
        assert sum(r.key_count for r in stats) == len(written)
        left = [(s.group_id, r.seeds) for s, r in zip(shards, stats, strict=True) if r.seeds]
        assert not left, f"seeds left behind: {left}"
        assert [s.start for s in shards] == sorted(s.start for s in shards)
        assert all(a.end == b.start for a, b in itertools.pairwise(shards))

        assert await listed(meta, "alpha", 1000) == [f"obj/{i:04d}" for i in range(110)]
        assert await listed(meta, "beta", 9) == [f"obj/{i:04d}" for i in range(40)]
        assert (await meta.bucket_stats("alpha")).objects == 110
        assert (await meta.bucket_stats(None)).versions == 150
        for (bucket, key), digest in written.items():
            assert hashlib.sha256(await sdk.get(bucket, key)).digest() == digest, key
        live = await meta.live_chunk_ids()
        for bucket, key in written:
            version = await meta.head_object(bucket, key)
            assert version.manifest is not None
            assert set(version.manifest.chunk_ids()) <= live, key

        # Leaders spread: no voter leads two shards more than another.
        async def leaders_spread() -> bool:
            led = [r.leader_address for r in await shard_stats(meta, shards)]
            counts = [led.count(n.rpc_address) for n in cluster.voters]
            return max(counts) - min(counts) <= 1

        await wait_until(leaders_spread, 30, "shard leaders to spread over the voters")
    finally:
        await sdk.close()
        await pool.close()


def test_shards_split_by_size_under_writes_and_listings_miss_nothing(tmp_path: Path) -> None:
    settings = {"heartbeat_interval_s": "0.2", "index_split_keys": str(KEYS_MAX)}
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        asyncio.run(split_under_writes(cluster))


async def split_by_load(cluster: LocalCluster) -> None:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.voters])
    sdk = CairnClient([f"http://{n.host}:{n.s3_port}" for n in cluster.nodes.values()], SECRET)
    try:
        await sdk.make_bucket("hot")
        keys = [f"k{i:04d}" for i in range(400)]
        written = 0
        for key in keys:  # a steady write load on one shard, far above the threshold
            await sdk.put("hot", key, key.encode())
            written += 1
            if len((await meta.directory()).shards) >= 3 and written >= 100:
                break
        shards = (await meta.directory(refresh=True)).shards
        assert len(shards) >= 3, f"{written} writes split nothing"
        assert max(r.key_count for r in await shard_stats(meta, shards)) < written
        assert await listed(meta, "hot", 13) == keys[:written]
        for key in keys[:written]:
            assert await sdk.get("hot", key) == key.encode()
    finally:
        await sdk.close()
        await pool.close()


def test_a_busy_shard_splits_by_load(tmp_path: Path) -> None:
    settings = {
        "heartbeat_interval_s": "0.2",
        "index_split_keys": "0",
        "index_split_ops_per_s": "10",
    }
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        asyncio.run(split_by_load(cluster))
