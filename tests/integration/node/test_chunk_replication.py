"""Replicated chunk storage over real RPC servers on 127.0.0.1, one chunkstore each:
write levels, hints and handoff, reads with fallback and hedging, presence for dedup,
GC sweeps, listing, and bad input."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from cairn.base.errors import RemoteError
from cairn.chunkstore import (
    CHUNK_BYTES_MAX,
    AsyncChunkStore,
    ChunkStore,
    InvalidChunkId,
    StoreOptions,
)
from cairn.node.chunk_client import ChunkUnavailable, InsufficientReplicas, ReplicatedChunks
from cairn.node.chunk_messages import (
    ChunkDelete,
    ChunkDeleteReply,
    ChunkGet,
    ChunkGetReply,
    ChunkHas,
    ChunkHasReply,
    ChunkList,
    ChunkListReply,
    ChunkPut,
    ChunkPutReply,
    ChunkStats,
    ChunkStatsReply,
    GcBegin,
    GcBeginReply,
    GcSweep,
    GcSweepReply,
    HintPut,
    HintPutReply,
)
from cairn.node.chunk_service import ChunkService
from cairn.node.hints import HandoffLoop, HintStore
from cairn.node.placement_view import PlacementView
from cairn.placement import Node, build_table, partition_of
from cairn.wire import CallContext, Reply, Router, RpcPool, RpcServer, derive_auth_key

KEY = derive_auth_key("chunk-replication-test-secret")
PARTITIONS = 16
MEMBERS = ("m1", "m2", "m3", "m4")
TABLE = build_table([Node(m) for m in MEMBERS], PARTITIONS, 3)


def make_pool(name: str) -> RpcPool:
    # Short backoff so a restarted node is retried promptly.
    return RpcPool(name, KEY, backoff_seconds_initial=0.01, backoff_seconds_max=0.05)


class ManualClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


class StorageNode:
    """One member: a chunkstore, a hint store, the chunk service and an RPC server."""

    def __init__(self, member: str, directory: Path) -> None:
        self.member = member
        self.directory = directory
        self.port = 0
        self.clock = ManualClock()
        self.pool = make_pool(member)
        self.store: AsyncChunkStore | None = None
        self.hints: HintStore | None = None
        self.service: ChunkService | None = None
        self.server: RpcServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, stall_gets: asyncio.Event | None = None) -> None:
        """Serve the chunk RPCs; with `stall_gets`, serve only a ChunkGet that never
        answers until the event is set (a replica that hangs)."""
        self.store = await AsyncChunkStore.open(str(self.directory / "chunks"), StoreOptions())
        self.hints = HintStore.open(self.directory / "hints")
        self.service = ChunkService(self.store, self.hints, self.member, clock=self.clock)
        router = Router()
        if stall_gets is None:
            self.service.register(router)
        else:
            router.register(ChunkGet, stalled_get(stall_gets))
        self.server = RpcServer(router, node_id=self.member, auth_key=KEY)
        self.port = await self.server.start("127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None and self.store is not None
        await self.server.stop()
        await self.store.close()
        self.server = self.store = self.service = self.hints = None

    async def has(self, chunk_id: bytes) -> bool:
        assert self.store is not None
        return chunk_id in await self.store.has([chunk_id])


def stalled_get(
    release: asyncio.Event,
) -> Callable[[ChunkGet, memoryview, CallContext], Awaitable[Reply]]:
    async def handle(_request: ChunkGet, _payload: memoryview, _ctx: CallContext) -> Reply:
        await release.wait()
        raise RemoteError("not_found", "stalled replica")

    return handle


class Cluster:
    def __init__(self, root: Path) -> None:
        self.nodes = {m: StorageNode(m, root / m) for m in MEMBERS}
        self.live = set(MEMBERS)
        self.pool = make_pool("gateway")

    def view(self) -> PlacementView:
        return PlacementView(
            epoch=1,
            table=TABLE,
            previous=None,
            addresses={m: n.address for m, n in self.nodes.items()},
            live=frozenset(self.live),
        )

    def client(self, strategy: str = "p2c-ewma", **kwargs: float) -> ReplicatedChunks:
        return ReplicatedChunks(self.pool, self.view, strategy, **kwargs)

    def owners(self, chunk_id: bytes) -> list[StorageNode]:
        return [self.nodes[m] for m in TABLE.owners_of_chunk(chunk_id)]

    def hint_count(self) -> int:
        return sum(n.hints.count for n in self.nodes.values() if n.hints is not None)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path)
    for node in cluster.nodes.values():
        await node.start()
    yield cluster
    await cluster.pool.close()
    for node in cluster.nodes.values():
        if node.server is not None:
            await node.stop()
        await node.pool.close()


def chunk(n: int) -> tuple[bytes, bytes]:
    record = f"record {n} ".encode() * 50
    return hashlib.sha256(record).digest(), record


def verify_as(expected: bytes) -> Callable[[bytes], bytes]:
    def verify(record: bytes) -> bytes:
        if hashlib.sha256(record).digest() != hashlib.sha256(expected).digest():
            raise ValueError("checksum mismatch")
        return record

    return verify


async def eventually(check: Callable[[], object], timeout_s: float = 3.0) -> None:
    """Poll `check` until it holds, failing after `timeout_s` (state lives in other tasks
    and on disk, so there is no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - polling with a deadline, not synchronisation
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------- writes


async def test_write_at_each_level_reaches_every_owner(cluster: Cluster) -> None:
    chunks = cluster.client()
    for n, (level, required) in enumerate([("one", 1), ("quorum", 2), ("all", 3)]):
        chunk_id, record = chunk(n)
        outcome = await chunks.write(chunk_id, record, level)  # type: ignore[arg-type]
        assert outcome.required == required and len(outcome.acked) >= required
        assert set(outcome.acked) <= set(outcome.owners)
        await chunks.drain()
        for node in cluster.nodes.values():
            assert await node.has(chunk_id) == (node.member in outcome.owners)
    assert cluster.hint_count() == 0


async def test_owner_down_quorum_succeeds_all_fails_hint_is_handed_off(cluster: Cluster) -> None:
    chunk_id, record = chunk(10)
    down = cluster.owners(chunk_id)[0]
    await down.stop()  # still "live" in the view: the put fails, then a hint is left
    chunks = cluster.client()

    outcome = await chunks.write(chunk_id, record, "quorum")
    assert down.member not in outcome.acked
    await chunks.drain()
    assert cluster.hint_count() == 1 and chunks.stats.hints_placed == 1
    holder = next(n for n in cluster.nodes.values() if n.hints is not None and n.hints.count)
    assert holder.hints is not None and holder.hints.targets() == [down.member]

    with pytest.raises(InsufficientReplicas, match="at most 2 of 3 required acks"):
        await chunks.write(chunk_id, record, "all")
    await chunks.drain()

    # The view now knows the node is down: no put is tried, a hint is left at once.
    cluster.live.discard(down.member)
    third_id, third_record = next(
        c for c in map(chunk, range(100, 200)) if down.member in TABLE.owners_of_chunk(c[0])
    )
    await chunks.write(third_id, third_record, "quorum")
    await chunks.drain()
    hinted = cluster.hint_count()
    assert hinted >= 2

    # Restart on the same data dir and port; hints wait until the view says live.
    await down.start()
    loops = [
        HandoffLoop(n.hints, n.pool, cluster.view, interval_s=0.02)
        for n in cluster.nodes.values()
        if n.hints is not None and n is not down
    ]
    for loop in loops:
        await loop.run_once()
    assert cluster.hint_count() == hinted
    cluster.live.add(down.member)
    for loop in loops:
        loop.start()
    try:
        # A hint leaves the index before its file is removed and counted, so wait for
        # the count too: stopping a loop between the two would cancel the last delete.
        await eventually(
            lambda: cluster.hint_count() == 0 and sum(loop.handed_off for loop in loops) == hinted
        )
    finally:
        for loop in loops:
            await loop.stop()
    assert await down.has(chunk_id) and await down.has(third_id)
    assert [p for n in cluster.nodes.values() for p in (n.directory / "hints").rglob("*")] == [
        p for n in cluster.nodes.values() for p in (n.directory / "hints").glob("*")
    ]  # only the (now empty) target directories are left


async def test_write_refuses_bad_input_on_the_client(cluster: Cluster) -> None:
    chunks = cluster.client()
    with pytest.raises(InvalidChunkId):
        await chunks.write(b"short", b"x")
    with pytest.raises(InvalidChunkId):
        await chunks.present([b"short"])


# --------------------------------------------------------------------- reads


async def test_read_falls_back_past_stopped_and_corrupt_replicas(cluster: Cluster) -> None:
    chunk_id, record = chunk(20)
    chunks = cluster.client("round-robin")
    await chunks.write(chunk_id, record, "all")
    stopped, corrupt, _good = cluster.owners(chunk_id)
    await stopped.stop()  # still live in the view
    assert corrupt.store is not None
    await corrupt.store.delete(chunk_id)
    await corrupt.store.put(chunk_id, b"garbage for this id")

    for _ in range(3):  # round robin: each replica is asked first once
        assert await chunks.read(chunk_id, verify_as(record)) == record
    assert chunks.stats.read_fallbacks >= 1
    assert chunks.stats.read_failures == 0


async def test_read_fails_with_typed_error_when_no_replica_has_it(cluster: Cluster) -> None:
    chunks = cluster.client()
    chunk_id, _ = chunk(21)
    with pytest.raises(ChunkUnavailable, match="not_found") as info:
        await chunks.read(chunk_id, bytes)
    assert len(info.value.failures) == 3


async def test_read_hedges_past_a_replica_that_does_not_answer(cluster: Cluster) -> None:
    chunk_id, record = chunk(30)
    chunks = cluster.client("round-robin", hedge_delay_s=0.05)
    await chunks.write(chunk_id, record, "all")
    slow = cluster.owners(chunk_id)[0]
    release = asyncio.Event()
    await slow.stop()
    await slow.start(stall_gets=release)
    try:
        for _ in range(3):
            assert await chunks.read(chunk_id, verify_as(record)) == record
        assert chunks.stats.read_hedges >= 1
    finally:
        release.set()


# --------------------------------------------------------------------- presence


async def test_present_counts_owners_per_level(cluster: Cluster) -> None:
    ids = {}
    for copies in (0, 1, 2, 3):
        chunk_id, record = chunk(40 + copies)
        ids[copies] = chunk_id
        for node in cluster.owners(chunk_id)[:copies]:
            assert node.store is not None
            await node.store.put(chunk_id, record)
    chunks = cluster.client()
    for node in cluster.nodes.values():
        node.clock.now = 2000.0
    everything = list(ids.values())
    assert await chunks.present(everything, "one") == {ids[1], ids[2], ids[3]}
    assert await chunks.present(everything, "quorum") == {ids[2], ids[3]}
    assert await chunks.present(everything, "all") == {ids[3]}
    # Every owner asked touched the ids it was asked about.
    for node in cluster.owners(ids[1]):
        assert node.service is not None
        assert node.service.touches.time_of(ids[1]) == node.clock.now
    # An owner that is down counts as not holding the chunk.
    down = cluster.owners(ids[3])[0]
    await down.stop()
    assert ids[3] not in await chunks.present([ids[3]], "all")
    assert ids[3] in await chunks.present([ids[3]], "quorum")


# --------------------------------------------------------------------- GC


async def test_gc_sweeps_only_unreferenced_chunks_untouched_before_the_round(
    cluster: Cluster,
) -> None:
    node = cluster.nodes["m1"]
    assert node.store is not None
    pool, address = cluster.pool, node.address
    before_start = chunk(50)  # stored before the service's process start
    await node.stop()
    node.clock.now = 100.0
    node.store = await AsyncChunkStore.open(str(node.directory / "chunks"))
    await node.store.put(*before_start)
    await node.store.close()
    await node.start()  # process start at t=100

    live, stale, touched, rewritten = chunk(51), chunk(52), chunk(53), chunk(54)
    for chunk_id, record in (live, stale, touched, rewritten):
        await pool.call(address, ChunkPut(chunk_id), ChunkPutReply, record)  # touched at 100
    node.clock.now = 200.0
    await pool.call(address, ChunkHas([touched[0]], touch=True), ChunkHasReply)
    begin, _ = await pool.call(address, GcBegin(), GcBeginReply)  # round start 200

    # grace 150: cutoff 50, before the process start: nothing is old enough.
    sweep = GcSweep(begin.round_id, grace_seconds=150.0, dry_run=True)
    result, _ = await pool.call(address, sweep, GcSweepReply, live[0])
    assert (result.scanned, result.kept_live, result.kept_recent, result.deleted) == (5, 1, 4, 0)

    # grace 50: cutoff 150. A dry run deletes nothing; the real sweep deletes the
    # unreferenced chunks last touched at 100 (one of them never touched since start).
    sweep = GcSweep(begin.round_id, grace_seconds=50.0, dry_run=True)
    result, _ = await pool.call(address, sweep, GcSweepReply, live[0])
    assert (result.deleted, result.kept_recent) == (3, 1)
    assert await node.has(stale[0])
    sweep = GcSweep(begin.round_id, grace_seconds=50.0)
    result, _ = await pool.call(address, sweep, GcSweepReply, live[0] + rewritten[0])
    assert (result.kept_live, result.kept_recent, result.deleted) == (2, 1, 2)
    assert result.deleted_bytes > len(stale[1]) + len(before_start[1])
    assert await node.has(live[0]) and await node.has(touched[0]) and await node.has(rewritten[0])
    assert not await node.has(stale[0]) and not await node.has(before_start[0])

    # A deleted chunk can be stored again; a stale or foreign round is refused.
    put, _ = await pool.call(address, ChunkPut(stale[0]), ChunkPutReply, stale[1])
    assert put.stored
    with pytest.raises(RemoteError) as info:
        await pool.call(address, GcSweep(begin.round_id + 1, 0.0), GcSweepReply)
    assert info.value.code == "unknown_round"
    with pytest.raises(RemoteError) as info:
        await pool.call(address, GcSweep(begin.round_id, 0.0), GcSweepReply, b"x" * 33)
    assert info.value.code == "bad_request"
    with pytest.raises(RemoteError) as info:
        await pool.call(address, GcSweep(begin.round_id, -1.0), GcSweepReply)
    assert info.value.code == "bad_request"


# --------------------------------------------------------------------- node RPCs


async def test_list_pages_through_partitions_in_id_order(cluster: Cluster) -> None:
    node = cluster.nodes["m1"]
    assert node.store is not None
    stored = [chunk(n) for n in range(60, 110)]
    for chunk_id, record in stored:
        await node.store.put(chunk_id, record)
    wanted = [p for p in range(PARTITIONS) if p % 3 == 0]
    expected = sorted(
        (cid, len(rec)) for cid, rec in stored if partition_of(cid, PARTITIONS) in wanted
    )
    pages, after = [], b""
    while True:
        request = ChunkList(PARTITIONS, wanted, after=after, limit=7)
        page, _ = await cluster.pool.call(node.address, request, ChunkListReply)
        pages += list(zip(page.ids, page.sizes, strict=True))
        if not page.more:
            break
        after = page.ids[-1]
    assert pages == expected


async def test_stats_get_delete(cluster: Cluster) -> None:
    node = cluster.nodes["m2"]
    pool, address = cluster.pool, node.address
    chunk_id, record = chunk(120)
    await pool.call(address, ChunkPut(chunk_id), ChunkPutReply, record)
    await pool.call(address, HintPut("m3", chunk_id), HintPutReply, record)
    stats, _ = await pool.call(address, ChunkStats(), ChunkStatsReply)
    assert (stats.node, stats.chunk_count, stats.live_bytes) == ("m2", 1, len(record))
    assert (stats.hint_count, stats.hint_bytes) == (1, len(record))
    reply, payload = await pool.call(address, ChunkGet(chunk_id), ChunkGetReply)
    assert reply.size == len(record) and bytes(payload) == record
    deleted, _ = await pool.call(address, ChunkDelete(chunk_id), ChunkDeleteReply)
    assert deleted.deleted
    deleted, _ = await pool.call(address, ChunkDelete(chunk_id), ChunkDeleteReply)
    assert not deleted.deleted


@pytest.mark.parametrize(
    ("request_", "payload", "code"),
    [
        (ChunkPut(b"\x01" * 31), b"x", "bad_request"),
        (ChunkPut(b"\x01" * 32), b"x" * (CHUNK_BYTES_MAX + 1), "too_large"),
        (ChunkGet(b"\x01" * 32), b"", "not_found"),
        (ChunkGet(b"\x01" * 33), b"", "bad_request"),
        (ChunkHas([b"\x01" * 32, b"\x02"]), b"", "bad_request"),
        (ChunkList(12, [0]), b"", "bad_request"),
        (ChunkList(16, [16]), b"", "bad_request"),
        (ChunkList(16, [0], limit=0), b"", "bad_request"),
        (HintPut("", b"\x01" * 32), b"x", "bad_request"),
        (HintPut("m1", b"\x01" * 32), b"x" * (CHUNK_BYTES_MAX + 1), "too_large"),
    ],
)
async def test_bad_input_gets_clear_errors(
    cluster: Cluster, request_: object, payload: bytes, code: str
) -> None:
    assert isinstance(request_, msgspec.Struct)
    with pytest.raises(RemoteError) as info:
        await cluster.pool.call(cluster.nodes["m1"].address, request_, ChunkPutReply, payload)
    assert info.value.code == code, info.value


async def test_handoff_redirects_hints_of_a_removed_member(cluster: Cluster) -> None:
    holder = cluster.nodes["m1"]
    assert holder.hints is not None
    chunk_id, record = chunk(130)
    held_id, held_record = chunk(131)
    pool = cluster.pool
    await pool.call(holder.address, HintPut("gone", chunk_id), HintPutReply, record)
    # A hint whose target already holds the chunk is just dropped.
    target = cluster.owners(held_id)[0]
    await pool.call(target.address, ChunkPut(held_id), ChunkPutReply, held_record)
    await pool.call(holder.address, HintPut(target.member, held_id), HintPutReply, held_record)

    loop = HandoffLoop(holder.hints, holder.pool, cluster.view)
    assert await loop.run_once() == 2
    assert holder.hints.count == 0
    for node in cluster.owners(chunk_id):
        assert await node.has(chunk_id)


class GatedStore(AsyncChunkStore):
    """Deletes wait for `gate`: a GC delete that is still running."""

    gate = asyncio.Event()

    async def delete(self, chunk_id: bytes) -> bool:
        await self.gate.wait()
        return await super().delete(chunk_id)


async def test_dedup_check_and_put_racing_a_gc_delete(tmp_path: Path) -> None:
    store = GatedStore(ChunkStore.open(str(tmp_path / "chunks")))
    store.gate = asyncio.Event()
    clock = ManualClock(100.0)
    service = ChunkService(store, HintStore.open(tmp_path / "hints"), "n", clock=clock)
    router = Router()
    service.register(router)
    server = RpcServer(router, node_id="n", auth_key=KEY)
    address = f"127.0.0.1:{await server.start('127.0.0.1', 0)}"
    pool = make_pool("gateway")
    try:
        chunk_id, record = chunk(140)
        await pool.call(address, ChunkPut(chunk_id), ChunkPutReply, record)
        clock.now = 1000.0
        begin, _ = await pool.call(address, GcBegin(), GcBeginReply)
        sweep = asyncio.create_task(pool.call(address, GcSweep(begin.round_id, 0.0), GcSweepReply))
        await eventually(lambda: service.is_being_deleted(chunk_id))

        # Being deleted: a dedup check says absent, so the upload sends the chunk...
        has, _ = await pool.call(address, ChunkHas([chunk_id], touch=True), ChunkHasReply)
        assert has.present == [False]
        # ... and its put waits for the delete, then stores the chunk again.
        put = asyncio.create_task(pool.call(address, ChunkPut(chunk_id), ChunkPutReply, record))
        await pool.call(address, ChunkStats(), ChunkStatsReply)  # the put's handler started
        assert not put.done()
        store.gate.set()
        result, _ = await sweep
        assert result.deleted == 1
        reply, _ = await put
        assert reply.stored
        has, _ = await pool.call(address, ChunkHas([chunk_id]), ChunkHasReply)
        assert has.present == [True]
    finally:
        await pool.close()
        await server.stop()
        await store.close()
