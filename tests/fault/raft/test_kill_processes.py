"""Real Raft groups of node processes on loopback, under kill -9 (issue 3, point 6).

- Kill the leader of a 3- and a 5-node group while clients write: every acknowledged
  write is still there afterwards, and a new leader is elected within two election
  timeouts (the randomised timeout's upper bound, 2 x raft_election_ticks ticks).
- Kill every node at once after enough writes to take snapshots, start them all again:
  the state comes back from snapshot + log.
"""

import asyncio
import time
from pathlib import Path

import pytest

from cairn.base.errors import CairnError
from cairn.localcluster import LocalCluster
from cairn.raft.kv_client import KvClient
from cairn.raft.kv_service import KV_GROUP_FIRST, RaftStatus, RaftStatusReply
from cairn.wire import RpcPool, derive_auth_key

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]

SECRET = "raft-fault-test-secret-1"
TICK_MS = 50
ELECTION_TICKS = 10
ELECTION_TIMEOUT_MAX_S = 2 * ELECTION_TICKS * TICK_MS / 1000  # randomised in [T, 2T)
SETTINGS = {"raft_tick_ms": str(TICK_MS), "raft_election_ticks": str(ELECTION_TICKS)}


async def status_of(pool: RpcPool, address: str) -> RaftStatusReply | None:
    try:
        reply, _ = await pool.call(
            address, RaftStatus(group=KV_GROUP_FIRST), RaftStatusReply, timeout=0.5
        )
    except CairnError:
        return None
    return reply


async def leader_among(pool: RpcPool, cluster: LocalCluster, node_ids: list[str]) -> str | None:
    """The node id all reachable `node_ids` agree leads the group, if any."""
    by_raft_id = {cluster.raft_id(n): n for n in cluster.nodes}
    leaders = set()
    for node_id in node_ids:
        status = await status_of(pool, cluster.nodes[node_id].rpc_address)
        if status is None or status.leader_id == 0:
            return None
        leaders.add(by_raft_id.get(status.leader_id))
    return leaders.pop() if len(leaders) == 1 and None not in leaders else None


async def wait_for_leader(
    pool: RpcPool, cluster: LocalCluster, node_ids: list[str], seconds: float
) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        leader = await leader_among(pool, cluster, node_ids)
        if leader is not None and leader in node_ids:
            return leader
        await asyncio.sleep(0.01)  # polling a condition with a deadline
    raise AssertionError(f"no leader among {node_ids} within {seconds} s")


async def write_until(
    client: KvClient,
    writer: int,
    acked: list[bytes],
    progress: asyncio.Condition,
    stop: asyncio.Event,
    count_max: int,
) -> None:
    """Write distinct keys until `stop`; record each acknowledged key."""
    for n in range(count_max):
        if stop.is_set():
            return
        key = b"w%d-%d" % (writer, n)
        try:
            await client.put(key, key * 4, timeout=10)
        except CairnError:
            continue  # unacknowledged: it may or may not be there, and that is allowed
        acked.append(key)
        async with progress:
            progress.notify_all()


async def kill_leader_under_load(cluster: LocalCluster) -> tuple[int, float]:
    addresses = [n.rpc_address for n in cluster.nodes.values()]
    pool = RpcPool("test", derive_auth_key(SECRET))
    clients = [KvClient(addresses, SECRET, client_id=f"c{i}") for i in range(8)]
    try:
        leader = await wait_for_leader(pool, cluster, list(cluster.nodes), 15)
        acked: list[bytes] = []
        stop = asyncio.Event()
        progress = asyncio.Condition()
        writers = [
            asyncio.create_task(write_until(c, i, acked, progress, stop, 2000))
            for i, c in enumerate(clients)
        ]
        async with asyncio.timeout(30), progress:
            await progress.wait_for(lambda: len(acked) >= 200)
        cluster.kill(leader)
        killed_at = time.monotonic()
        survivors = [n for n in cluster.nodes if n != leader]
        new_leader = await wait_for_leader(pool, cluster, survivors, 10)
        elected_after = time.monotonic() - killed_at
        acked_at_kill = len(acked)
        async with asyncio.timeout(30), progress:
            await progress.wait_for(lambda: len(acked) >= acked_at_kill + 200)
        stop.set()
        await asyncio.gather(*writers)
        reader = KvClient([cluster.nodes[new_leader].rpc_address], SECRET)
        missing = [k for k in acked if await reader.get(k, timeout=10) != k * 4]
        await reader.close()
        assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        return len(acked), elected_after
    finally:
        for client in clients:
            await client.close()
        await pool.close()


@pytest.mark.parametrize("nodes", [3, 5])
def test_kill_leader_under_write_load_loses_nothing(tmp_path: Path, nodes: int) -> None:
    with LocalCluster(tmp_path, nodes, secret=SECRET, raft=True, settings=SETTINGS) as cluster:
        acked, elected_after = asyncio.run(kill_leader_under_load(cluster))
    assert acked >= 400
    assert elected_after < 2 * ELECTION_TIMEOUT_MAX_S, f"new leader after {elected_after:.2f} s"


async def write_keys(cluster: LocalCluster, count: int) -> None:
    client = KvClient([n.rpc_address for n in cluster.nodes.values()], SECRET)
    try:
        for start in range(0, count, 50):
            await asyncio.gather(
                *(
                    client.put(b"k%05d" % i, b"v%d" % i, timeout=20)
                    for i in range(start, start + 50)
                )
            )
    finally:
        await client.close()


async def read_keys(cluster: LocalCluster, count: int) -> list[int]:
    client = KvClient([n.rpc_address for n in cluster.nodes.values()], SECRET)
    try:
        return [i for i in range(count) if await client.get(b"k%05d" % i, timeout=20) != b"v%d" % i]
    finally:
        await client.close()


def test_crash_all_nodes_then_recover_from_snapshot_and_log(tmp_path: Path) -> None:
    settings = {**SETTINGS, "raft_snapshot_entries": "200"}
    cluster = LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=settings)
    with cluster:
        asyncio.run(write_keys(cluster, 1000))
        for node_id in cluster.nodes:
            cluster.kill(node_id)  # kill -9 every node: only what was fsynced survives
        snapshots = list(tmp_path.glob(f"node-*/raft/group-{KV_GROUP_FIRST}/snap/*"))
        assert snapshots, "no snapshot was taken; the test would not cover snapshot recovery"
        for node_id in cluster.nodes:
            cluster.start_node(node_id)
        cluster.wait_healthy()
        assert asyncio.run(read_keys(cluster, 1000)) == []
