"""Repair and rebalancing: every node pulls what its partitions should hold, and pushes away
what it holds for partitions it no longer owns.

Theory of operation. Chunks are immutable and content-addressed, so "is this replica
complete?" is a set difference, never a merge. One worker per node runs passes:

1. **Pull** (repair and rebalance alike). For every partition this node owns in the
   current table, the other live owners and the live owners of the previous table (while
   moves are under way) are sources. The worker lists each source's chunk ids for the
   partitions they share, subtracts what it holds, and fetches the rest, verifying the
   record's checksum on the way into the store and pacing itself to `bytes_per_s`. The
   order is the move plan's (`placement.plan_moves`): partitions that moved here first,
   interleaved by source, then the anti-entropy of partitions it already owned (which is
   how a node that was down catches up on writes it missed).
2. **Report.** A pass that reached every live source of every owned partition without an
   error makes this node *synced* at the table's epoch; the heartbeat carries that, and
   the root leader declares the moves done once every live owner is synced.
3. **Push, then drop** (only when the moves are done and the previous table forgotten).
   For every chunk held in a partition this node does not own, ask the live owners
   whether they have it, send it to those that do not, and only then delete the local
   copy. A writer with a stale view may have put a chunk on a former owner after the
   new owners synced; the push makes sure that chunk is not lost with the copy.

So a partition never has fewer copies than before a move: new owners fill up first, old
copies go last, and only after a fresh check. Passes repeat every `interval_s` and start
at once when the view changes.

Costs and limits: each pass lists every shared partition of every source (no digests yet),
which is O(chunks held) per pass; fine for the cluster sizes this runs at, and the place
to add per-partition digests when it is not.
"""

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from cairn.base.errors import CairnError, DeadlineExceeded, PeerUnavailable, RemoteError
from cairn.codec.errors import ChunkCorrupt
from cairn.codec.record import parse_record
from cairn.monitor.logs import log_event
from cairn.node.chunk_messages import (
    CHUNK_HAS_IDS_MAX,
    CHUNK_LIST_LIMIT_MAX,
    ChunkGet,
    ChunkGetReply,
    ChunkHas,
    ChunkHasReply,
    ChunkList,
    ChunkListReply,
    ChunkPut,
    ChunkPutReply,
)
from cairn.node.chunk_service import ChunkService
from cairn.node.placement_view import PlacementView
from cairn.node.view_cache import ViewCache
from cairn.placement import partition_of, plan_moves
from cairn.wire import CallContext, Reply, Router, RpcPool

log = logging.getLogger("cairn.repair")
PASS_INTERVAL_SECONDS = 5.0
FETCH_CONCURRENCY = 8
RPC_TIMEOUT_SECONDS = 30.0


class RepairStatus(msgspec.Struct, frozen=True, tag=True):
    pass


class RepairProgress(msgspec.Struct, frozen=True, tag=True):
    node: str
    table_epoch: int
    synced_epoch: int
    running: bool
    partitions_total: int
    partitions_done: int
    chunks_missing: int
    bytes_remaining: int
    chunks_copied: int
    bytes_copied: int
    chunks_pushed: int
    chunks_dropped: int
    passes: int
    last_pass_seconds: float
    last_error: str


@dataclass
class _Pass:
    table_epoch: int = 0
    partitions_total: int = 0
    partitions_done: int = 0
    chunks_missing: int = 0
    bytes_remaining: int = 0
    complete: bool = True
    errors: list[str] = field(default_factory=list)


class _Pacer:
    """Token bucket over bytes: `await take(n)` waits until n bytes fit the rate."""

    def __init__(self, bytes_per_s: int) -> None:
        self.bytes_per_s = bytes_per_s
        self._next_free = time.monotonic()

    async def take(self, size: int) -> None:
        if self.bytes_per_s <= 0:
            return
        now = time.monotonic()
        start = max(now, self._next_free)
        self._next_free = start + size / self.bytes_per_s
        if start > now:
            await asyncio.sleep(start - now)  # the bandwidth limit itself


class RepairWorker:
    def __init__(
        self,
        service: ChunkService,
        pool: RpcPool,
        views: ViewCache,
        member_id: Callable[[], str | None],
        on_synced: Callable[[int], None],
        *,
        bytes_per_s: int = 0,
        interval_s: float = PASS_INTERVAL_SECONDS,
    ) -> None:
        self.service = service
        self.pool = pool
        self.views = views
        self._member_id = member_id
        self._on_synced = on_synced
        self.pacer = _Pacer(bytes_per_s)
        self.interval_s = interval_s
        self.synced_epoch = 0
        self.passes = 0
        self.chunks_copied = 0
        self.bytes_copied = 0
        self.chunks_pushed = 0
        self.chunks_dropped = 0
        self.last_pass_seconds = 0.0
        self.last_error = ""
        self._current = _Pass()
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------
    def register(self, router: Router) -> None:
        router.register(RepairStatus, self._status)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def poke(self) -> None:
        """Run a pass now (the view changed)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pass()
            except Exception as exc:  # a pass failed as a whole: log, retry next period
                self.last_error = repr(exc)
                log_event(log, "repair.pass_failed", logging.WARNING, error=repr(exc))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass

    def progress(self) -> RepairProgress:
        p = self._current
        return RepairProgress(
            node=self.service.node_name,
            table_epoch=p.table_epoch,
            synced_epoch=self.synced_epoch,
            running=self._running,
            partitions_total=p.partitions_total,
            partitions_done=p.partitions_done,
            chunks_missing=p.chunks_missing,
            bytes_remaining=p.bytes_remaining,
            chunks_copied=self.chunks_copied,
            bytes_copied=self.bytes_copied,
            chunks_pushed=self.chunks_pushed,
            chunks_dropped=self.chunks_dropped,
            passes=self.passes,
            last_pass_seconds=self.last_pass_seconds,
            last_error=self.last_error,
        )

    async def _status(self, _r: RepairStatus, _p: memoryview, _c: CallContext) -> Reply:
        return self.progress()

    # -- one pass ----------------------------------------------------------------------
    async def run_pass(self) -> bool:
        """One pull (+ push when settled) pass; True when this node is synced at the
        epoch of the view the pass started with."""
        view = self.views.current()
        me = self._member_id()
        if view is None or me is None:
            return False
        started = time.monotonic()
        self._running = True
        try:
            held = await asyncio.to_thread(self.service.store.store.live_locations)
            held_ids = {cid for cid, _ in held}
            current = _Pass(table_epoch=view.table.epoch)
            self._current = current
            await self._pull(view, me, held_ids, current)
            if current.complete:
                if view.table.epoch > self.synced_epoch:
                    log_event(
                        log,
                        "repair.synced",
                        table_epoch=view.table.epoch,
                        copied=self.chunks_copied,
                    )
                self.synced_epoch = max(self.synced_epoch, view.table.epoch)
                self._on_synced(self.synced_epoch)
            else:
                self.last_error = "; ".join(current.errors[:3])
            if view.previous is None and current.complete:
                await self._push_and_drop(view, me, held)
            return current.complete
        finally:
            self._running = False
            self.passes += 1
            self.last_pass_seconds = time.monotonic() - started

    def _sources(self, view: PlacementView, me: str, mine: list[int]) -> dict[str, list[int]]:
        """Source member -> partitions to list there, in move-plan order."""
        table = view.table
        ordered: list[int] = []
        if view.previous is not None:
            plan = plan_moves(view.previous, table, view.live)
            ordered = [m.partition for m in plan.moves if m.to_node == me]
        seen = set(ordered)
        ordered += [p for p in mine if p not in seen]
        sources: dict[str, list[int]] = defaultdict(list)
        for partition in ordered:
            owners = list(table.owners[partition])
            if view.previous is not None:
                owners += [o for o in view.previous.owners[partition] if o not in owners]
            for owner in owners:
                if owner != me and owner in view.live and view.address(owner):
                    sources[owner].append(partition)
        return sources

    async def _pull(self, view: PlacementView, me: str, held: set[bytes], p: _Pass) -> None:
        mine = view.table.partitions_of(me)
        sources = self._sources(view, me, mine)
        p.partitions_total = len(mine)
        wanted: dict[bytes, tuple[int, list[str]]] = {}
        for source, partitions in sources.items():
            try:
                listed = await self._list(view, source, partitions)
            except (CairnError, OSError) as exc:
                p.complete = False
                p.errors.append(f"list {source}: {exc!r}")
                continue
            for chunk_id, size in listed:
                if chunk_id in held:
                    continue
                entry = wanted.setdefault(chunk_id, (size, []))
                entry[1].append(source)
        p.chunks_missing = len(wanted)
        p.bytes_remaining = sum(size for size, _ in wanted.values())
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        count = view.table.partition_count
        for chunk_id in wanted:
            by_partition[partition_of(chunk_id, count)].append(chunk_id)
        p.partitions_done = p.partitions_total - len(by_partition)
        semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def fetch(chunk_id: bytes) -> None:
            size, from_nodes = wanted[chunk_id]
            async with semaphore:
                await self.pacer.take(size)
                ok = await self._fetch_one(view, chunk_id, from_nodes)
            if ok:
                p.chunks_missing -= 1
                p.bytes_remaining -= size
            else:
                p.complete = False
                p.errors.append(f"fetch {chunk_id.hex()[:16]}: no source had it")

        for chunk_ids in by_partition.values():  # every sourced partition is one of `mine`
            await asyncio.gather(*(fetch(c) for c in chunk_ids))
            p.partitions_done += 1

    async def _list(
        self, view: PlacementView, source: str, partitions: list[int]
    ) -> list[tuple[bytes, int]]:
        address = view.address(source)
        assert address is not None
        out: list[tuple[bytes, int]] = []
        after = b""
        while True:
            request = ChunkList(view.table.partition_count, partitions, after, CHUNK_LIST_LIMIT_MAX)
            reply, _ = await self.pool.call(
                address, request, ChunkListReply, timeout=RPC_TIMEOUT_SECONDS
            )
            out += zip(reply.ids, reply.sizes, strict=True)
            if not reply.more or not reply.ids:
                return out
            after = reply.ids[-1]

    async def _fetch_one(self, view: PlacementView, chunk_id: bytes, sources: list[str]) -> bool:
        for source in sources:
            address = view.address(source)
            if address is None:
                continue
            try:
                _, payload = await self.pool.call(
                    address, ChunkGet(chunk_id), ChunkGetReply, timeout=RPC_TIMEOUT_SECONDS
                )
            except (RemoteError, PeerUnavailable, DeadlineExceeded):
                continue
            record = bytes(payload)
            try:
                parse_record(record, chunk_id.hex())  # shape and CRC32C of the stored form
            except ChunkCorrupt:
                continue  # a corrupt copy at the source: try another one
            await self.service.store.put(chunk_id, record)
            self.service.touches.touch([chunk_id])
            self.chunks_copied += 1
            self.bytes_copied += len(record)
            return True
        return False

    async def _push_and_drop(
        self, view: PlacementView, me: str, held: Sequence[tuple[bytes, object]]
    ) -> None:
        """Hand chunks of partitions this node no longer owns to their owners, then drop."""
        table = view.table
        mine = set(table.partitions_of(me))
        strays = [cid for cid, _ in held if table.partition_of(cid) not in mine]
        for start in range(0, len(strays), CHUNK_HAS_IDS_MAX):
            batch = strays[start : start + CHUNK_HAS_IDS_MAX]
            owners_of: dict[str, list[bytes]] = defaultdict(list)
            for chunk_id in batch:
                for owner in table.owners_of_chunk(chunk_id):
                    owners_of[owner].append(chunk_id)
            missing: dict[bytes, list[str]] = defaultdict(list)
            unsure: set[bytes] = set()
            for owner, ids in owners_of.items():
                address = view.address(owner)
                if owner not in view.live or address is None:
                    unsure.update(ids)  # an owner we cannot check: keep our copy for now
                    continue
                try:
                    reply, _ = await self.pool.call(
                        address, ChunkHas(ids, False), ChunkHasReply, timeout=RPC_TIMEOUT_SECONDS
                    )
                except (CairnError, OSError):
                    unsure.update(ids)
                    continue
                for chunk_id, present in zip(ids, reply.present, strict=True):
                    if not present:
                        missing[chunk_id].append(owner)
            for chunk_id in batch:
                if chunk_id in unsure:
                    continue
                if missing.get(chunk_id) and not await self._push(
                    view, chunk_id, missing[chunk_id]
                ):
                    continue
                if await self.service.drop(chunk_id):
                    self.chunks_dropped += 1

    async def _push(self, view: PlacementView, chunk_id: bytes, owners: list[str]) -> bool:
        try:
            record = await self.service.store.get(chunk_id)
        except (CairnError, OSError):
            return False
        for owner in owners:
            address = view.address(owner)
            if address is None:
                return False
            await self.pacer.take(len(record))
            try:
                await self.pool.call(
                    address, ChunkPut(chunk_id), ChunkPutReply, record, timeout=RPC_TIMEOUT_SECONDS
                )
            except (CairnError, OSError):
                return False
            self.chunks_pushed += 1
        return True
