"""Issue 6 faults through the object API on real node processes: kill -9 of a node under
put/get load, a 4th node added under load, and dedup followed by garbage collection."""

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.client.errors import CairnClientError
from cairn.client.sdk import CairnClient
from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import FAST_FAILURE_DETECTION
from cairn.node.chunk_messages import ChunkHas, ChunkHasReply
from cairn.node.gc_coordinator import collect_garbage
from cairn.node.meta_client import MetaClient
from cairn.node.view_cache import ViewCache
from cairn.wire import RpcPool, derive_auth_key


@dataclass(frozen=True)
class Written:
    key: str
    digest: bytes
    size: int


def body(size: int) -> bytes:
    return os.urandom(size)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], deadline_s: float, what: str
) -> float:
    """Poll `predicate` until true; returns the seconds it took. Bounded by `deadline_s`."""
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < deadline_s, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    return time.monotonic() - started


async def chunk_ids_of(meta: MetaClient, bucket: str, keys: list[str]) -> list[bytes]:
    ids: list[bytes] = []
    for key in keys:
        version = await meta.head_object(bucket, key, consistency="linearizable")
        assert version.manifest is not None
        ids += [ref.chunk_id for ref in version.manifest.chunks]
    return ids


async def holders(
    pool: RpcPool, cluster: LocalCluster, chunk_ids: list[bytes]
) -> dict[str, set[bytes]]:
    """Node name -> which of `chunk_ids` it holds (running nodes only)."""
    out: dict[str, set[bytes]] = {}
    for name, node in cluster.nodes.items():
        if not node.running:
            continue
        held: set[bytes] = set()
        for start in range(0, len(chunk_ids), 4096):
            batch = chunk_ids[start : start + 4096]
            reply, _ = await pool.call(node.rpc_address, ChunkHas(batch, False), ChunkHasReply)
            held.update(c for c, present in zip(batch, reply.present, strict=True) if present)
        out[name] = held
    return out


async def fully_replicated(
    pool: RpcPool, cluster: LocalCluster, views: ViewCache, chunk_ids: list[bytes]
) -> bool:
    """Every chunk is held by every owner of the current table, and moves are settled."""
    view = await views.refresh()
    if view.previous is not None:
        return False
    try:
        held = await holders(pool, cluster, chunk_ids)
    except Exception:
        return False
    for chunk_id in chunk_ids:
        for owner in view.owners(chunk_id):
            name = view.names.get(owner)
            if name is None or chunk_id not in held.get(name, set()):
                return False
    return True


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


pytestmark = pytest.mark.xdist_group("processes")
SECRET = "cluster-faults-secret-0"
BUCKET = "faults"
RECOVERY_BOUND_S = 15.0
"""After a node is killed, puts and gets must succeed again within this many seconds:
an election (0.5-1 s here) plus the clients' retries and gateway failover."""


async def clients(cluster: LocalCluster) -> tuple[RpcPool, MetaClient, ViewCache, CairnClient]:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.voters])
    views = ViewCache(meta)
    sdk = CairnClient([f"http://{n.host}:{n.s3_port}" for n in cluster.nodes.values()], SECRET)
    return pool, meta, views, sdk


async def check_objects(sdk: CairnClient, written: dict[str, Written]) -> None:
    for item in written.values():
        data = await sdk.get(BUCKET, item.key)
        assert len(data) == item.size and digest(data) == item.digest, item.key


async def kill_during_workload(cluster: LocalCluster) -> None:
    pool, meta, views, sdk = await clients(cluster)
    written: dict[str, Written] = {}
    try:
        await sdk.make_bucket(BUCKET)
        sizes = [1000, 5000, 70_000, 300_000, 1_500_000]
        killed_at: float | None = None
        recovered_put: float | None = None
        recovered_get: float | None = None
        deadline = time.monotonic() + 90
        for i in range(400):
            if len(written) >= 60 or time.monotonic() > deadline:
                break
            if len(written) == 20 and killed_at is None:
                cluster.kill("node-3")  # a metadata voter, a gateway and a replica
                killed_at = time.monotonic()
            data = body(sizes[i % len(sizes)])
            key = f"obj-{i:04d}"
            try:
                await sdk.put(BUCKET, key, data)
            except CairnClientError:
                assert killed_at is not None, "a put failed before any fault"
                continue
            written[key] = Written(key, digest(data), len(data))
            if killed_at is not None and recovered_put is None:
                recovered_put = time.monotonic() - killed_at
            some = written[list(written)[i % len(written)]]
            try:
                got = await sdk.get(BUCKET, some.key)
            except CairnClientError:
                assert killed_at is not None, "a get failed before any fault"
                continue
            assert digest(got) == some.digest, f"{some.key} corrupted"
            if killed_at is not None and recovered_get is None:
                recovered_get = time.monotonic() - killed_at
        assert len(written) >= 60, f"only {len(written)} objects acknowledged"
        assert recovered_put is not None and recovered_put < RECOVERY_BOUND_S
        assert recovered_get is not None and recovered_get < RECOVERY_BOUND_S
        await check_objects(sdk, written)  # nothing acknowledged lost or corrupted

        cluster.start_node("node-3")
        cluster.wait_healthy(["node-3"])
        ids = await chunk_ids_of(meta, BUCKET, list(written))
        assert ids, "the workload wrote no chunks"
        await wait_until(
            lambda: fully_replicated(pool, cluster, views, ids),
            60,
            "full replication after node-3 returned",
        )
        await check_objects(sdk, written)
    finally:
        await sdk.close()
        await pool.close()


def test_kill_one_of_three_nodes_under_put_get_load(tmp_path: Path) -> None:
    settings = {**FAST_FAILURE_DETECTION, "repair_after_s": "600", "partition_count": "256"}
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        asyncio.run(kill_during_workload(cluster))


async def add_fourth_node(cluster: LocalCluster) -> None:
    pool, meta, views, sdk = await clients(cluster)
    written: dict[str, Written] = {}
    try:
        await sdk.make_bucket(BUCKET)
        for i in range(40):
            data = body(200_000 + 1000 * i)
            await sdk.put(BUCKET, f"before-{i:03d}", data)
            written[f"before-{i:03d}"] = Written(f"before-{i:03d}", digest(data), len(data))
        first = await views.refresh()
        ids = await chunk_ids_of(meta, BUCKET, list(written))

        stop = asyncio.Event()

        async def writer() -> None:  # load during the moves
            for i in range(200):
                if stop.is_set():
                    return
                data = body(100_000 + i)
                await sdk.put(BUCKET, f"during-{i:03d}", data)
                written[f"during-{i:03d}"] = Written(f"during-{i:03d}", digest(data), len(data))

        load = asyncio.create_task(writer())
        await asyncio.to_thread(cluster.add_node)
        minimum = 3

        async def settled() -> bool:
            nonlocal minimum
            held = await holders(pool, cluster, ids)
            for chunk_id in ids:  # copies on live nodes, sampled throughout the moves
                minimum = min(minimum, sum(chunk_id in h for h in held.values()))
            view = await views.refresh()
            return view.table.epoch > first.table.epoch and view.previous is None

        await wait_until(settled, 90, "the moves to the 4th node to settle")
        stop.set()
        await load
        assert minimum >= 2, f"a chunk dropped to {minimum} copies during the moves"
        all_ids = await chunk_ids_of(meta, BUCKET, list(written))
        await wait_until(
            lambda: fully_replicated(pool, cluster, views, all_ids),
            60,
            "every chunk on every current owner",
        )
        held = await holders(pool, cluster, all_ids)
        assert held["node-4"], "the new node received no data"
        await check_objects(sdk, written)
    finally:
        await sdk.close()
        await pool.close()


def test_add_a_fourth_node_under_load_rebalances_safely(tmp_path: Path) -> None:
    settings = {**FAST_FAILURE_DETECTION, "partition_count": "64"}
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings) as cluster:
        asyncio.run(add_fourth_node(cluster))


async def dedup_then_gc(cluster: LocalCluster) -> None:
    pool, meta, views, sdk = await clients(cluster)
    try:
        await sdk.make_bucket(BUCKET)
        shared = body(9 << 20)  # above twice the 4 MiB max chunk: always several chunks
        first = await sdk.put(BUCKET, "a", shared)
        second = await sdk.put(BUCKET, "b", shared)
        assert first.new_chunks == first.chunks > 1
        assert second.new_chunks == 0, "the same content was stored twice"
        doomed = body(2 << 20)
        await sdk.put(BUCKET, "c", doomed)
        kept_ids = set(await chunk_ids_of(meta, BUCKET, ["b"]))
        doomed_ids = set(await chunk_ids_of(meta, BUCKET, ["c"])) - kept_ids
        await sdk.delete(BUCKET, "a")
        assert digest(await sdk.get(BUCKET, "b")) == digest(shared)
        await sdk.delete(BUCKET, "c")

        report = await collect_garbage(pool, meta, grace_seconds=0.0)
        assert not report.skipped
        replicas = len((await views.refresh()).owners(next(iter(doomed_ids))))
        assert report.deleted == len(doomed_ids) * replicas  # those, and only those
        held = await holders(pool, cluster, [*kept_ids, *doomed_ids])
        assert all(not (h & doomed_ids) for h in held.values())
        assert sum(len(h & kept_ids) for h in held.values()) == len(kept_ids) * replicas
        assert digest(await sdk.get(BUCKET, "b")) == digest(shared)
    finally:
        await sdk.close()
        await pool.close()


def test_dedup_stores_once_and_gc_reclaims_only_unreferenced_chunks(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True) as cluster:
        asyncio.run(dedup_then_gc(cluster))
