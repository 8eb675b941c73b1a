"""The cluster's own users of the lock service, on real node processes (issue 8):

- GC: one round at a time cluster-wide (`cairn/gc`). A round finds the lock taken and is
  refused (`GcBusy`, and `cairn gc` says so and exits 1), or waits for it with `wait_s`;
  of two rounds started together one is refused.
- Bucket deletion: deletes of one bucket take turns (`cairn/bucket/<name>`); of two
  concurrent deletes through different gateways one deletes the bucket and the other gets
  `NoSuchBucket`; of two deletes of a non-empty bucket both get `BucketNotEmpty` and the
  bucket stays writable; a delete waits while the bucket's lock is held, before it marks
  the bucket `deleting`.
"""

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.client.errors import BucketNotEmpty, NoSuchBucket, Unavailable
from cairn.client.locks import LockClient
from cairn.client.sdk import CairnClient
from cairn.localcluster import LocalCluster
from cairn.node.gc_coordinator import GC_LOCK, GcBusy, GcReport, collect_garbage
from cairn.node.meta_client import MetaClient
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "internal-locks-integration"
READY_DEADLINE_S = 30.0
STEP_DEADLINE_S = 30.0
GRACE_S = 3600.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("internal-locks")
    with LocalCluster(base, 3, secret=SECRET, raft=True) as local:
        local.write_cluster_json()
        yield local


def cluster_json(cluster: LocalCluster) -> Path:
    return cluster.base_dir / "cluster.json"


def meta_addresses(cluster: LocalCluster) -> list[str]:
    return [n.rpc_address for n in cluster.voters]


async def _waiters(locks: LockClient, name: str) -> int:
    listing, _ = await locks.list_locks(name, consistency="linearizable")
    return sum(len(info.waiters) for info in listing if info.name == name)


async def _gc_turns(cluster: LocalCluster) -> None:
    pool = RpcPool("internal-locks-test", derive_auth_key(SECRET))
    meta = MetaClient(pool, meta_addresses(cluster))
    locks = LockClient(meta_addresses(cluster), SECRET, ttl_s=10, label="test holds gc")
    try:
        held = await locks.acquire(GC_LOCK)  # as if a round were running
        with pytest.raises(GcBusy, match="another GC round is running"):
            await collect_garbage(pool, meta, GRACE_S, dry_run=True)
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cairn",
            "gc",
            "--cluster",
            str(cluster_json(cluster)),
            "--dry-run",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(STEP_DEADLINE_S):
            _, err = await cli.communicate()
        assert cli.returncode == 1 and b"another GC round is running" in err, err

        waiting = asyncio.create_task(
            collect_garbage(pool, meta, GRACE_S, dry_run=True, wait_s=STEP_DEADLINE_S)
        )
        deadline = time.monotonic() + STEP_DEADLINE_S
        while await _waiters(locks, GC_LOCK) < 1:
            assert time.monotonic() < deadline and not waiting.done()
            await asyncio.sleep(0.02)  # polling a condition with a deadline
        assert not waiting.done()
        await held.release()
        report = await asyncio.wait_for(waiting, STEP_DEADLINE_S)
        assert report.lock_token > held.token and report.nodes_swept == 3

        # Two rounds started together: one runs, the other is refused.
        outcomes = await asyncio.gather(
            collect_garbage(pool, meta, GRACE_S, dry_run=True),
            collect_garbage(pool, meta, GRACE_S, dry_run=True),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["GcBusy", "GcReport"], outcomes
        # Both waiting: they take turns, each with its own grant.
        reports = await asyncio.gather(
            collect_garbage(pool, meta, GRACE_S, dry_run=True, wait_s=STEP_DEADLINE_S),
            collect_garbage(pool, meta, GRACE_S, dry_run=True, wait_s=STEP_DEADLINE_S),
        )
        assert all(isinstance(r, GcReport) for r in reports)
        assert reports[0].lock_token != reports[1].lock_token
        listing, sessions = await locks.list_locks("cairn/", consistency="linearizable")
        assert listing == []  # every round closed its session
        assert [s.label for s in sessions] == ["test holds gc"]
    finally:
        await locks.close()
        await pool.close()


def test_gc_rounds_take_turns(cluster: LocalCluster) -> None:
    asyncio.run(_gc_turns(cluster))


async def _make_bucket(client: CairnClient, name: str) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        try:
            await client.make_bucket(name)
            return
        except Unavailable:
            assert time.monotonic() < deadline, "the gateway never became ready"
            await asyncio.sleep(0.1)  # polling a condition with a deadline


async def _concurrent_deletes(cluster: LocalCluster) -> None:
    gateways = [f"http://{n.host}:{n.s3_port}" for n in cluster.nodes.values()]
    first = CairnClient(gateways[:1], SECRET)
    second = CairnClient(gateways[1:2], SECRET)
    try:
        await _make_bucket(first, "twice")
        outcomes = await asyncio.gather(
            first.remove_bucket("twice"), second.remove_bucket("twice"), return_exceptions=True
        )
        assert sum(o is None for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, NoSuchBucket) for o in outcomes) == 1, outcomes
        with pytest.raises(NoSuchBucket):
            await first.remove_bucket("twice")

        await _make_bucket(first, "kept")
        await first.put("kept", "k", b"v")
        outcomes = await asyncio.gather(
            first.remove_bucket("kept"), second.remove_bucket("kept"), return_exceptions=True
        )
        assert all(isinstance(o, BucketNotEmpty) for o in outcomes), outcomes
        await second.put("kept", "k2", b"still writable")
        assert await first.get("kept", "k2") == b"still writable"

        # A delete waits for the bucket's lock before it marks the bucket `deleting`.
        await _make_bucket(first, "held")
        async with LockClient(meta_addresses(cluster), SECRET, label="test") as locks:
            held = await locks.acquire("cairn/bucket/held")
            removing = asyncio.create_task(first.remove_bucket("held"))
            deadline = time.monotonic() + STEP_DEADLINE_S
            while await _waiters(locks, "cairn/bucket/held") < 1:
                assert time.monotonic() < deadline and not removing.done()
                await asyncio.sleep(0.02)  # polling a condition with a deadline
            await second.put("held", "k", b"not deleting yet")  # still active
            await second.delete("held", "k")
            assert not removing.done()
            await held.release()
            await asyncio.wait_for(removing, STEP_DEADLINE_S)
        with pytest.raises(NoSuchBucket):
            await first.put("held", "k", b"gone")
    finally:
        await first.close()
        await second.close()


def test_concurrent_deletes_of_one_bucket_take_turns(cluster: LocalCluster) -> None:
    asyncio.run(_concurrent_deletes(cluster))
