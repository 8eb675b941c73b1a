"""The chunk RPC service a node serves over its local chunkstore and hint store.

Theory of operation
-------------------
Records arrive already encoded (compressed, encrypted, framed with a CRC) by the gateway;
a node stores them as they are, keyed by chunk id, and never decodes them. `ChunkPut`
answers only once the record is durable: `ChunkStore.put` returns after the group commit
that covers it (the `batch` fsync policy), and a put of an id already held is acked once
that earlier record is durable. `ChunkHas` likewise never reports a record that is not
yet durable, so a gateway that skips an upload because of it can rely on the answer.

Replication, hints and reads with fallback are the caller's business
(`chunk_client.ReplicatedChunks`); hint delivery is `hints.HandoffLoop`. This service is
the node's half of each: store, report, delete, list, keep a hint.

Garbage collection. `GcBegin` notes the round's start on this node's monotonic clock;
`GcSweep` deletes every chunk that is neither in the live set (the payload, concatenated
32-byte ids) nor touched since ``round start - grace``. Safe against concurrent uploads:
an upload's dedup hits (`ChunkHas(touch=True)`) and puts touch every chunk it counts on,
so a sweep never removes one of them, provided the upload commits its manifest within the
grace period (the gateway enforces that). The argument, and how the races between a
sweep and a concurrent put or dedup check are closed, is in `chunk_gc.py`: in short,
touches are recorded before the store is asked, a sweep re-checks the touch time right
before deleting and marks the chunk, a marked chunk reads as absent to `ChunkHas`, and a
`ChunkPut` of a marked chunk waits for the delete to finish and then stores it again.
"""

import asyncio
import errno
import heapq
import logging
from collections.abc import Iterable

from prometheus_client import Counter

from cairn.base.errors import RemoteError
from cairn.chunkstore import (
    CHUNK_BYTES_MAX,
    CHUNK_ID_BYTES,
    AsyncChunkStore,
    ChunkCorrupt,
    ChunkNotFound,
    ChunkStoreError,
    StoreFailed,
    StoreFull,
)
from cairn.monitor.logs import log_event
from cairn.monitor.metrics import REGISTRY
from cairn.node.chunk_gc import TouchLog, parse_live_ids, plan_sweep
from cairn.node.chunk_messages import (
    CHUNK_HAS_IDS_MAX,
    CHUNK_LIST_LIMIT_MAX,
    GC_LIVE_IDS_MAX,
    TARGET_BYTES_MAX,
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
from cairn.node.hints import HintStore, HintStoreFull
from cairn.placement import partition_of
from cairn.placement.table import partition_bits
from cairn.runtime.clock import Clock, SystemClock
from cairn.runtime.rng import Rng, SystemRng
from cairn.wire import CallContext, Reply, Router

log = logging.getLogger("cairn.node.chunks")

GC_DELETE_CONCURRENCY_MAX = 32
"""Deletes a sweep keeps in flight (they share group-commit fsyncs)."""

GC_DELETED = Counter("cairn_gc_deleted_chunks", "Chunks deleted by GC sweeps.", registry=REGISTRY)
GC_DELETED_BYTES = Counter(
    "cairn_gc_deleted_bytes", "Record bytes deleted by GC sweeps.", registry=REGISTRY
)


def _check_id(chunk_id: bytes) -> None:
    if len(chunk_id) != CHUNK_ID_BYTES:
        raise RemoteError(
            "bad_request", f"a chunk id is {CHUNK_ID_BYTES} bytes, got {len(chunk_id)}"
        )


def _check_record(record: memoryview) -> None:
    if len(record) > CHUNK_BYTES_MAX:
        raise RemoteError(
            "too_large", f"record is {len(record)} bytes; the limit is {CHUNK_BYTES_MAX}"
        )


def _store_error(exc: ChunkStoreError) -> RemoteError:
    if isinstance(exc, StoreFull):
        return RemoteError("disk_full", str(exc))
    if isinstance(exc, StoreFailed):
        return RemoteError("store_failed", str(exc))
    return RemoteError("unavailable", f"{type(exc).__name__}: {exc}")


class ChunkService:
    def __init__(
        self,
        store: AsyncChunkStore,
        hints: HintStore,
        node_name: str,
        *,
        clock: Clock | None = None,
        rng: Rng | None = None,
    ) -> None:
        self.store = store
        self.hints = hints
        self.node_name = node_name
        self.touches = TouchLog(clock or SystemClock(), rng or SystemRng())
        self._deleting: dict[bytes, asyncio.Event] = {}
        self._sweep_lock = asyncio.Lock()

    def register(self, router: Router) -> None:
        router.register(ChunkHas, self._has)
        router.register(ChunkPut, self._put)
        router.register(ChunkGet, self._get)
        router.register(ChunkDelete, self._delete)
        router.register(ChunkList, self._list)
        router.register(HintPut, self._hint_put)
        router.register(GcBegin, self._gc_begin)
        router.register(GcSweep, self._gc_sweep)
        router.register(ChunkStats, self._stats)

    def is_being_deleted(self, chunk_id: bytes) -> bool:
        """True while a delete of `chunk_id` (by GC or `ChunkDelete`) is running."""
        return chunk_id in self._deleting

    # ----------------------------------------------------------------- chunks

    async def _has(self, request: ChunkHas, _payload: memoryview, _ctx: CallContext) -> Reply:
        if len(request.ids) > CHUNK_HAS_IDS_MAX:
            raise RemoteError("too_large", f"at most {CHUNK_HAS_IDS_MAX} ids per ChunkHas")
        for chunk_id in request.ids:
            _check_id(chunk_id)
        # Being deleted reads as absent; touch the rest *before* asking the store.
        asked = [cid for cid in request.ids if cid not in self._deleting]
        if request.touch:
            self.touches.touch(asked)
        try:
            present = await self.store.has(asked)
        except ChunkStoreError as exc:
            raise _store_error(exc) from None
        return ChunkHasReply([cid in present for cid in request.ids])

    async def _put(self, request: ChunkPut, payload: memoryview, _ctx: CallContext) -> Reply:
        chunk_id = request.chunk_id
        _check_id(chunk_id)
        _check_record(payload)
        while (deleting := self._deleting.get(chunk_id)) is not None:
            await deleting.wait()
        self.touches.touch((chunk_id,))
        try:
            stored = await self.store.put(chunk_id, payload)
        except ChunkStoreError as exc:
            raise _store_error(exc) from None
        return ChunkPutReply(stored)

    async def _get(self, request: ChunkGet, _payload: memoryview, _ctx: CallContext) -> Reply:
        _check_id(request.chunk_id)
        try:
            record = await self.store.get(request.chunk_id)
        except ChunkNotFound:
            raise RemoteError("not_found", request.chunk_id.hex()) from None
        except ChunkCorrupt as exc:
            raise RemoteError("corrupt", str(exc)) from None
        except ChunkStoreError as exc:
            raise _store_error(exc) from None
        return ChunkGetReply(len(record)), record

    async def _delete(self, request: ChunkDelete, _payload: memoryview, _ctx: CallContext) -> Reply:
        _check_id(request.chunk_id)
        try:
            return ChunkDeleteReply(await self.drop(request.chunk_id))
        except ChunkStoreError as exc:
            raise _store_error(exc) from None

    async def drop(self, chunk_id: bytes) -> bool:
        """Delete a chunk held here (`ChunkDelete`, the repair worker dropping a copy it no
        longer owns) with the same protection as a GC delete: while it runs, `ChunkHas`
        reports the chunk absent and a `ChunkPut` of it waits. False if it was not held.
        Raises the chunkstore's errors (`StoreFull`, `StoreFailed`, `StoreClosed`)."""
        while (deleting := self._deleting.get(chunk_id)) is not None:
            await deleting.wait()
        return await self._delete_marked(chunk_id)

    async def _delete_marked(self, chunk_id: bytes) -> bool:
        """Delete with the chunk marked as being deleted; the store call is shielded, so a
        cancelled caller never unmarks a chunk whose delete is still running."""
        assert chunk_id not in self._deleting
        done = asyncio.Event()
        self._deleting[chunk_id] = done

        async def run() -> bool:
            try:
                deleted = await self.store.delete(chunk_id)
                self.touches.forget(chunk_id)
                return deleted
            finally:
                del self._deleting[chunk_id]
                done.set()

        return await asyncio.shield(asyncio.get_running_loop().create_task(run()))

    async def _list(self, request: ChunkList, _payload: memoryview, _ctx: CallContext) -> Reply:
        if not 1 <= request.limit <= CHUNK_LIST_LIMIT_MAX:
            raise RemoteError("bad_request", f"limit must be 1..{CHUNK_LIST_LIMIT_MAX}")
        try:
            partition_bits(request.partition_count)
        except ValueError as exc:
            raise RemoteError("bad_request", str(exc)) from None
        wanted = frozenset(request.partitions)
        if any(not 0 <= p < request.partition_count for p in wanted):
            raise RemoteError("bad_request", "a partition is out of range")
        held = await asyncio.to_thread(self.store.store.live_locations)
        count, after = request.partition_count, request.after
        page = heapq.nsmallest(
            request.limit + 1,
            (
                (cid, loc.length)
                for cid, loc in held
                if cid > after and partition_of(cid, count) in wanted
            ),
        )
        more = len(page) > request.limit
        page = page[: request.limit]
        return ChunkListReply([cid for cid, _ in page], [size for _, size in page], more)

    # ----------------------------------------------------------------- hints

    async def _hint_put(self, request: HintPut, payload: memoryview, _ctx: CallContext) -> Reply:
        _check_id(request.chunk_id)
        _check_record(payload)
        if not 0 < len(request.target.encode()) <= TARGET_BYTES_MAX:
            raise RemoteError("bad_request", f"target must be 1..{TARGET_BYTES_MAX} bytes")
        try:
            stored = await self.hints.put(request.target, request.chunk_id, payload)
        except HintStoreFull as exc:
            raise RemoteError("hints_full", str(exc)) from None
        except OSError as exc:
            code = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "io_error"
            raise RemoteError(code, str(exc)) from None
        return HintPutReply(stored)

    # ----------------------------------------------------------------- GC

    async def _gc_begin(self, _request: GcBegin, _payload: memoryview, _ctx: CallContext) -> Reply:
        round_id = self.touches.begin_round()
        log_event(log, "gc.begin", round_id=round_id)
        return GcBeginReply(round_id)

    async def _gc_sweep(self, request: GcSweep, payload: memoryview, _ctx: CallContext) -> Reply:
        start = self.touches.round_start(request.round_id)
        if start is None:
            raise RemoteError("unknown_round", f"round {request.round_id} was not begun here")
        if not request.grace_seconds >= 0:  # also refuses NaN
            raise RemoteError("bad_request", "grace_seconds must be >= 0")
        if len(payload) > GC_LIVE_IDS_MAX * CHUNK_ID_BYTES:
            raise RemoteError("too_large", f"at most {GC_LIVE_IDS_MAX} live ids per sweep")
        try:
            live = await asyncio.to_thread(parse_live_ids, payload)
        except ValueError as exc:
            raise RemoteError("bad_request", str(exc)) from None
        cutoff = start - request.grace_seconds
        async with self._sweep_lock:
            held = await asyncio.to_thread(self._held_sizes)
            plan = plan_sweep(held, live, self.touches, cutoff)
            if request.dry_run:
                deleted = len(plan.victims)
                deleted_bytes = sum(size for _, size in plan.victims)
                kept_recent = plan.kept_recent
            else:
                try:
                    deleted, deleted_bytes = await self._sweep(plan.victims, cutoff)
                except ChunkStoreError as exc:
                    raise _store_error(exc) from None
                kept_recent = plan.kept_recent + len(plan.victims) - deleted
                self.touches.prune_before(cutoff)
        log_event(
            log,
            "gc.sweep",
            round_id=request.round_id,
            dry_run=request.dry_run,
            scanned=plan.scanned,
            kept_live=plan.kept_live,
            kept_recent=kept_recent,
            deleted=deleted,
            deleted_bytes=deleted_bytes,
        )
        return GcSweepReply(plan.scanned, plan.kept_live, kept_recent, deleted, deleted_bytes)

    def _held_sizes(self) -> list[tuple[bytes, int]]:
        return [(cid, loc.record_bytes) for cid, loc in self.store.store.live_locations()]

    async def _sweep(self, victims: Iterable[tuple[bytes, int]], cutoff: float) -> tuple[int, int]:
        """Delete the victims still untouched since `cutoff`; (count, bytes) deleted."""
        iterator = iter(victims)
        totals = [0, 0]

        async def worker() -> None:
            for chunk_id, size in iterator:
                # Synchronous re-check and mark (no await in between): see chunk_gc.py.
                if self.touches.time_of(chunk_id) >= cutoff or chunk_id in self._deleting:
                    continue
                if await self._delete_marked(chunk_id):
                    totals[0] += 1
                    totals[1] += size
                    GC_DELETED.inc()
                    GC_DELETED_BYTES.inc(size)

        await asyncio.gather(*(worker() for _ in range(GC_DELETE_CONCURRENCY_MAX)))
        return totals[0], totals[1]

    # ----------------------------------------------------------------- figures

    async def _stats(self, _request: ChunkStats, _payload: memoryview, _ctx: CallContext) -> Reply:
        try:
            usage = await self.store.usage()
        except ChunkStoreError as exc:
            raise _store_error(exc) from None
        return ChunkStatsReply(
            node=self.node_name,
            chunk_count=usage.chunk_count,
            live_bytes=usage.live_bytes,
            stored_bytes=usage.stored_bytes,
            garbage_bytes=usage.garbage_bytes,
            capacity_bytes=usage.capacity_bytes,
            free_bytes=usage.free_bytes,
            hint_count=self.hints.count,
            hint_bytes=self.hints.record_bytes,
        )
