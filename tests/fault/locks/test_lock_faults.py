"""The lock service under kill -9 (issue 8, faults):

- kill -9 the holder: the next waiter gets the lock within TTL + 1 s of the kill, and
  never before a full TTL has passed since the holder's last acknowledged keep-alive;
- kill -9 the root group's leader while the lock is held and contended: from the history
  of grants and releases (with their fencing tokens) no two clients ever held it at once,
  tokens strictly increase in grant order, every client keeps making progress after the
  failover, and the holder at the moment of the kill keeps its lock (no lock lost).
"""

import asyncio
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.client.locks import LockClient, LockUnavailable
from cairn.localcluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]
SECRET = "lock-fault-tests"
WORKER = Path(__file__).parents[2] / "integration" / "locks" / "lock_worker.py"
HOLDER_TTL_S = 2.0
CONTENDERS = 4
CYCLES_AFTER_KILL = 3
HISTORY_DEADLINE_S = 30.0
HOLD_S = 0.02
WARM_CYCLES = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("lock-faults")
    with LocalCluster(base, 3, secret=SECRET, raft=True) as local:
        local.write_cluster_json()
        yield local


def cluster_json(cluster: LocalCluster) -> str:
    return str(cluster.base_dir / "cluster.json")


async def _kill_holder(cluster: LocalCluster) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "hold",
        cluster_json(cluster),
        "victim",
        str(HOLDER_TTL_S),
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    waiter = LockClient.from_cluster_file(cluster_json(cluster), ttl_s=5)
    try:
        async with asyncio.timeout(30):
            first = (await holder.stdout.readline()).split()
        assert first[0] == b"granted", first
        held_token = int(first[1])
        waiting = asyncio.create_task(waiter.acquire("victim"))
        keepalives = 0
        async with asyncio.timeout(30):
            while keepalives < 3:  # let it renew a few times while the waiter queues
                line = (await holder.stdout.readline()).split()
                keepalives += line[0] == b"ka"
        assert not waiting.done()
        holder.kill()
        killed_at = time.monotonic()
        rest = (await holder.stdout.read()).split(b"\n")
        await holder.wait()
        sent = [float(w.split()[1]) for w in rest if w.startswith(b"ka")]
        last_keepalive = max(sent) if sent else float(line[1])
        granted = await asyncio.wait_for(waiting, HOLDER_TTL_S + 5)
        granted_at = time.monotonic()
        assert granted.token > held_token
        assert granted_at - killed_at <= HOLDER_TTL_S + 1.0, granted_at - killed_at
        assert granted_at - last_keepalive >= HOLDER_TTL_S, granted_at - last_keepalive
        await granted.release()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await waiter.close()


def test_kill_holder_hands_over_within_ttl_plus_one_second(cluster: LocalCluster) -> None:
    asyncio.run(_kill_holder(cluster))


History = list[tuple[int, float, float, str]]
"""(token, granted at, released at, client) per cycle."""


async def _contend(
    client: LockClient,
    label: str,
    history: History,
    warm: asyncio.Event,
    killed: asyncio.Event,
    stop_at: float,
) -> int:
    after_kill = 0
    while after_kill < CYCLES_AFTER_KILL and time.monotonic() < stop_at:
        try:
            held = await client.acquire("hot", timeout=stop_at - time.monotonic())
        except LockUnavailable:
            continue  # no leader for a while: try again
        granted_at = time.monotonic()
        assert held.held
        await asyncio.sleep(HOLD_S)  # work done while holding the lock
        assert held.held, "the lease ran out across the failover"
        released_at = time.monotonic()
        history.append((held.token, granted_at, released_at, label))
        if len(history) >= WARM_CYCLES:
            warm.set()
        while True:
            try:
                await held.release()
                break
            except LockUnavailable:
                held.released = False
        after_kill += killed.is_set()
    return after_kill


async def _kill_leader(cluster: LocalCluster) -> None:
    clients = [
        LockClient.from_cluster_file(cluster_json(cluster), ttl_s=5, label=f"c{i}")
        for i in range(CONTENDERS)
    ]
    history: History = []
    killed = asyncio.Event()
    warm = asyncio.Event()
    stop_at = time.monotonic() + HISTORY_DEADLINE_S
    try:
        workers = [
            asyncio.create_task(_contend(c, f"c{i}", history, warm, killed, stop_at))
            for i, c in enumerate(clients)
        ]
        async with asyncio.timeout(15):
            await warm.wait()
        leader = clients[0]._leader.leader
        victim = next(n for n in cluster.nodes.values() if n.rpc_address == leader)
        cluster.kill(victim.node_id)
        before = len(history)
        killed.set()
        progress = await asyncio.gather(*workers)
        assert all(p >= CYCLES_AFTER_KILL for p in progress), progress
        assert len(history) > before
        history.sort()
        tokens = [h[0] for h in history]
        assert len(set(tokens)) == len(tokens)
        for (t1, _, released, c1), (t2, granted, _, c2) in itertools.pairwise(history):
            assert released <= granted, f"token {t1} ({c1}) overlaps token {t2} ({c2})"
        locks, _ = await clients[0].list_locks(consistency="linearizable")
        assert locks == []
    finally:
        for client in clients:
            await client.close()


def test_kill_root_leader_keeps_mutual_exclusion(cluster: LocalCluster) -> None:
    asyncio.run(_kill_leader(cluster))
