"""Hinted handoff: durable hints for replicas that missed a write, and the loop that
delivers them.

When a writer cannot put a chunk on one of its owners (down, or the call failed), it
asks another live node to keep the record as a *hint* for that owner (`HintPut`). The
hint is an extra durable copy that does not count toward the write's consistency level;
`HandoffLoop` delivers it when the owner is live again and then deletes it.

Storage: one file per hint. ``<dir>/<blake2b-128(target) hex>/<chunk id hex>.hint``,
written to a unique temporary name, fsynced, renamed into place, and the directory
fsynced; a crash leaves either the whole hint or a ``.tmp`` that `open` removes. Why
files, not a second `ChunkStore`: a hint is identified by (target, chunk id), not by the
chunk id alone (one chunk can be hinted for two down owners), hints are few and short
lived, and deleting a file gives its space back at once with no compaction. The
filesystem is the index: `open` rebuilds the in-memory one from the file headers, so
there is no second index to keep consistent with the files.

A hint file is framed (little endian)::

    magic b"CHNT" 4 | version u16 2 | target length u16 2 | record length u32 4 |
    chunk id 32 | crc32c u32 4 (over the 44 bytes before it, the target, the record) |
    target (UTF-8) | record

`open` checks each header (magic, version, lengths against the file size); `get` checks
the CRC over the whole file. A hint that fails either is deleted and logged: it is an
extra copy, and the chunk's owners that acked the write still hold theirs.

Delivery. Each round, for every target that is live in the current placement view, the
loop asks it which hinted ids it already holds (one `ChunkHas` per batch), deletes those
hints, and `ChunkPut`s the rest (at most `concurrency_max` at once) deleting each hint
once the target acked it durably. A target that is no longer a member at all (removed
from the map) gets its hints delivered to the chunk's current owners instead, and the
hint is deleted once all of them hold it. Targets that are members but not live wait.
"""

import asyncio
import hashlib
import itertools
import logging
import os
import struct
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter

from cairn.base.checksum import Buffer, crc32c, crc32c_extend
from cairn.base.errors import CairnError
from cairn.chunkstore import CHUNK_BYTES_MAX, CHUNK_ID_BYTES
from cairn.monitor.logs import log_event
from cairn.monitor.metrics import REGISTRY
from cairn.node.chunk_messages import (
    CHUNK_HAS_IDS_MAX,
    TARGET_BYTES_MAX,
    ChunkHas,
    ChunkHasReply,
    ChunkPut,
    ChunkPutReply,
)
from cairn.node.placement_view import PlacementView
from cairn.runtime.fsync import fsync_directory
from cairn.wire import RpcPool

log = logging.getLogger("cairn.node.hints")

T = TypeVar("T")

HINT_MAGIC = b"CHNT"
HINT_VERSION = 1
_HEADER = struct.Struct("<4sHHI32sI")
HINT_HEADER_BYTES = _HEADER.size
assert HINT_HEADER_BYTES == 48
_SUFFIX = ".hint"

HINT_COUNT_MAX = 100_000
HINT_BYTES_MAX = 8 << 30
HANDOFF_INTERVAL_S = 5.0
HANDOFF_CONCURRENCY_MAX = 8
HANDOFF_CALL_TIMEOUT_S = 30.0


HINTS_HANDED_OFF = Counter(
    "cairn_hints_handed_off", "Hints delivered to their target and deleted.", registry=REGISTRY
)
HANDOFF_FAILURES = Counter(
    "cairn_hints_handoff_failures",
    "Hint deliveries that failed (retried later).",
    registry=REGISTRY,
)


class HintStoreFull(CairnError):
    """The hint store is at its count or byte limit."""


class HintNotFound(CairnError):
    """No hint for this (target, chunk id)."""


class HintCorrupt(CairnError):
    """A hint file failed its checks; it has been deleted."""


def encode_hint(target: str, chunk_id: bytes, record: Buffer) -> list[Buffer]:
    target_bytes = target.encode()
    head = _HEADER.pack(HINT_MAGIC, HINT_VERSION, len(target_bytes), len(record), chunk_id, 0)
    crc = crc32c_extend(crc32c_extend(crc32c(head[:44]), target_bytes), record)
    return [head[:44], struct.pack("<I", crc), target_bytes, record]


def decode_hint(data: bytes) -> tuple[str, bytes, bytes]:
    """(target, chunk id, record) of a whole hint file; HintCorrupt if any check fails."""
    target, chunk_id, record_bytes = _decode_header(data[: HINT_HEADER_BYTES + TARGET_BYTES_MAX])
    body_start = HINT_HEADER_BYTES + len(target.encode())
    if len(data) != body_start + record_bytes:
        raise HintCorrupt(f"hint is {len(data)} bytes, header says {body_start + record_bytes}")
    expected = _HEADER.unpack_from(data)[5]
    crc = crc32c_extend(crc32c(memoryview(data)[:44]), memoryview(data)[HINT_HEADER_BYTES:])
    if crc != expected:
        raise HintCorrupt("checksum mismatch")
    return target, chunk_id, data[body_start:]


def _decode_header(prefix: bytes) -> tuple[str, bytes, int]:
    if len(prefix) < HINT_HEADER_BYTES:
        raise HintCorrupt("truncated header")
    magic, version, target_len, record_len, chunk_id, _ = _HEADER.unpack_from(prefix)
    if magic != HINT_MAGIC or version != HINT_VERSION:
        raise HintCorrupt(f"bad magic or version {magic!r}/{version}")
    if not 0 < target_len <= TARGET_BYTES_MAX or record_len > CHUNK_BYTES_MAX:
        raise HintCorrupt(f"bad lengths {target_len}/{record_len}")
    raw_target = prefix[HINT_HEADER_BYTES : HINT_HEADER_BYTES + target_len]
    if len(raw_target) != target_len:
        raise HintCorrupt("truncated target")
    try:
        return raw_target.decode(), chunk_id, record_len
    except UnicodeDecodeError:
        raise HintCorrupt("target is not UTF-8") from None


def _target_dir_name(target: str) -> str:
    return hashlib.blake2b(target.encode(), digest_size=16).hexdigest()


class HintStore:
    """Durable hints, one file each (see the module docstring). Open with `HintStore.open`.

    The index is touched only from the event loop; file IO runs in worker threads.
    """

    def __init__(
        self,
        directory: Path,
        index: dict[str, dict[bytes, int]],
        *,
        hint_count_max: int,
        hint_bytes_max: int,
    ) -> None:
        self.directory = directory
        self.hint_count_max = hint_count_max
        self.hint_bytes_max = hint_bytes_max
        self._index = index
        self._bytes = sum(sum(hints.values()) for hints in index.values())
        self._reserved_bytes = 0
        self._temp_names = itertools.count(1)

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        hint_count_max: int = HINT_COUNT_MAX,
        hint_bytes_max: int = HINT_BYTES_MAX,
    ) -> "HintStore":
        """Open (creating) the hint directory and index what it holds. Blocking."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        index: dict[str, dict[bytes, int]] = {}
        for target_dir in sorted(p for p in path.iterdir() if p.is_dir()):
            for file in sorted(target_dir.iterdir()):
                _index_file(file, index)
            if not any(target_dir.iterdir()):
                target_dir.rmdir()  # all its hints were delivered
        return cls(path, index, hint_count_max=hint_count_max, hint_bytes_max=hint_bytes_max)

    # ----------------------------------------------------------------- figures

    @property
    def count(self) -> int:
        return sum(len(hints) for hints in self._index.values())

    @property
    def record_bytes(self) -> int:
        """Record bytes held in hints."""
        return self._bytes

    def targets(self) -> list[str]:
        return [target for target, hints in self._index.items() if hints]

    def chunk_ids(self, target: str) -> list[bytes]:
        return sorted(self._index.get(target, {}))

    def has(self, target: str, chunk_id: bytes) -> bool:
        return chunk_id in self._index.get(target, {})

    # ----------------------------------------------------------------- operations

    async def put(self, target: str, chunk_id: bytes, record: Buffer) -> bool:
        """Keep `record` durably for `target`; False if that hint was already held."""
        assert len(chunk_id) == CHUNK_ID_BYTES, len(chunk_id)
        assert 0 < len(target.encode()) <= TARGET_BYTES_MAX, target
        if self.has(target, chunk_id):
            return False
        size = len(record)
        if self.count >= self.hint_count_max:
            raise HintStoreFull(f"{self.count} hints held; the limit is {self.hint_count_max}")
        if self._bytes + self._reserved_bytes + size > self.hint_bytes_max:
            raise HintStoreFull(
                f"{self._bytes} hint bytes held; the limit is {self.hint_bytes_max}"
            )
        self._reserved_bytes += size
        try:
            await asyncio.to_thread(self._write, target, chunk_id, record, next(self._temp_names))
        finally:
            self._reserved_bytes -= size
        hints = self._index.setdefault(target, {})
        if chunk_id not in hints:
            hints[chunk_id] = size
            self._bytes += size
        return True

    async def get(self, target: str, chunk_id: bytes) -> bytes:
        """The record of a hint, checksum verified. Raises HintNotFound or HintCorrupt."""
        if not self.has(target, chunk_id):
            raise HintNotFound(f"no hint for {target} of {chunk_id.hex()}")
        path = self._path(target, chunk_id)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            self._unindex(target, chunk_id)
            raise HintNotFound(f"hint file {path} is gone") from None
        try:
            found_target, found_id, record = decode_hint(data)
            if found_target != target or found_id != chunk_id:
                raise HintCorrupt("header does not match the file's name")
        except HintCorrupt as exc:
            log_event(log, "hints.corrupt", logging.WARNING, path=str(path), reason=str(exc))
            await self.delete(target, chunk_id)
            raise
        return record

    async def delete(self, target: str, chunk_id: bytes) -> bool:
        if not self._unindex(target, chunk_id):
            return False
        await asyncio.to_thread(self._remove, self._path(target, chunk_id))
        return True

    # ----------------------------------------------------------------- internals

    def _unindex(self, target: str, chunk_id: bytes) -> bool:
        hints = self._index.get(target)
        if hints is None or chunk_id not in hints:
            return False
        self._bytes -= hints.pop(chunk_id)
        if not hints:
            del self._index[target]
        return True

    def _path(self, target: str, chunk_id: bytes) -> Path:
        return self.directory / _target_dir_name(target) / (chunk_id.hex() + _SUFFIX)

    def _write(self, target: str, chunk_id: bytes, record: Buffer, temp_number: int) -> None:
        path = self._path(target, chunk_id)
        target_dir = path.parent
        if not target_dir.exists():
            target_dir.mkdir(exist_ok=True)
            fsync_directory(self.directory)
        temp = path.with_name(f"{path.name}.{temp_number}.tmp")
        try:
            with open(temp, "wb") as file:
                file.writelines(encode_hint(target, chunk_id, record))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_directory(target_dir)

    @staticmethod
    def _remove(path: Path) -> None:
        path.unlink(missing_ok=True)
        fsync_directory(path.parent)


def _index_file(file: Path, index: dict[str, dict[bytes, int]]) -> None:
    """Add one file of a target directory to `index` at open (or clean it away)."""
    if file.name.endswith(".tmp"):
        file.unlink()
        return
    if not file.name.endswith(_SUFFIX):
        return
    try:
        with open(file, "rb") as f:
            prefix = f.read(HINT_HEADER_BYTES + TARGET_BYTES_MAX)
            size = os.fstat(f.fileno()).st_size
        target, chunk_id, record_bytes = _decode_header(prefix)
        expected = HINT_HEADER_BYTES + len(target.encode()) + record_bytes
        if size != expected:
            raise HintCorrupt(f"file is {size} bytes, header says {expected}")
        if file.name != chunk_id.hex() + _SUFFIX or file.parent.name != _target_dir_name(target):
            raise HintCorrupt("header does not match the file's name")
    except HintCorrupt as exc:
        log_event(log, "hints.corrupt", logging.WARNING, path=str(file), reason=str(exc))
        file.unlink()
        return
    index.setdefault(target, {})[chunk_id] = record_bytes


# --------------------------------------------------------------------- handoff


async def _bounded(items: Iterable[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run `work` on every item, at most `workers` at once (workers share one iterator)."""
    iterator: Iterator[T] = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(workers)))


class HandoffLoop:
    """Delivers hints to their targets when those are live (see the module docstring)."""

    def __init__(
        self,
        hints: HintStore,
        pool: RpcPool,
        view_provider: Callable[[], PlacementView | None],
        interval_s: float = HANDOFF_INTERVAL_S,
        *,
        concurrency_max: int = HANDOFF_CONCURRENCY_MAX,
        call_timeout_s: float = HANDOFF_CALL_TIMEOUT_S,
    ) -> None:
        assert interval_s > 0 and concurrency_max >= 1
        self.hints = hints
        self._pool = pool
        self._view_provider = view_provider
        self.interval_s = interval_s
        self.concurrency_max = concurrency_max
        self.call_timeout_s = call_timeout_s
        self.handed_off = 0
        """Hints delivered (or found already delivered) and deleted, since start."""
        self.failures = 0
        """Delivery attempts that failed (the hint stays for the next round)."""
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        return self.hints.count

    def start(self) -> None:
        assert self._task is None, "already started"
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hint-handoff")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def wake(self) -> None:
        """Run a round now instead of at the end of the interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("hints.handoff_round_failed")
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """One delivery round; returns how many hints it delivered."""
        view = self._view_provider()
        self.rounds += 1
        if view is None or not self.hints.count:
            return 0
        before = self.handed_off
        jobs: list[Awaitable[None]] = []
        for target in self.hints.targets():
            address = view.address(target)
            if address is not None and target in view.live:
                jobs.append(self._deliver(target, address))
            elif address is None:
                jobs.append(self._redirect(target, view))
        await asyncio.gather(*jobs)
        delivered = self.handed_off - before
        if delivered:
            log_event(log, "hints.handed_off", count=delivered, pending=self.hints.count)
        return delivered

    async def _deliver(self, target: str, address: str) -> None:
        ids = self.hints.chunk_ids(target)
        for start in range(0, len(ids), CHUNK_HAS_IDS_MAX):
            batch = ids[start : start + CHUNK_HAS_IDS_MAX]
            try:
                reply, _ = await self._pool.call(
                    address, ChunkHas(batch), ChunkHasReply, timeout=self.call_timeout_s
                )
            except CairnError as exc:
                self.failures += 1
                HANDOFF_FAILURES.inc()
                log_event(log, "hints.target_unreachable", target=target, error=str(exc))
                return
            missing = []
            for chunk_id, present in zip(batch, reply.present, strict=True):
                if present:
                    await self._done(target, chunk_id)
                else:
                    missing.append(chunk_id)
            dead = asyncio.Event()

            async def put(chunk_id: bytes, dead: asyncio.Event = dead) -> None:
                if not dead.is_set() and not await self._put(target, address, chunk_id):
                    dead.set()  # stop hammering a target that just failed; next round

            await _bounded(missing, put, self.concurrency_max)
            if dead.is_set():
                return

    async def _put(self, target: str, address: str, chunk_id: bytes) -> bool:
        """Deliver one hint to `address`; False if the target failed (not the hint)."""
        try:
            record = await self.hints.get(target, chunk_id)
        except (HintNotFound, HintCorrupt):
            return True
        try:
            await self._pool.call(
                address, ChunkPut(chunk_id), ChunkPutReply, record, timeout=self.call_timeout_s
            )
        except CairnError as exc:
            self.failures += 1
            HANDOFF_FAILURES.inc()
            log_event(log, "hints.put_failed", logging.WARNING, target=target, error=str(exc))
            return False
        await self._done(target, chunk_id)
        return True

    async def _redirect(self, target: str, view: PlacementView) -> None:
        """Hints for a member that left: give them to the chunk's current owners."""

        async def redirect(chunk_id: bytes) -> None:
            owners = view.owners(chunk_id)
            addresses = [a for o in owners if o in view.live and (a := view.address(o))]
            if not owners or len(addresses) != len(owners):
                return  # wait until every current owner is live
            try:
                record = await self.hints.get(target, chunk_id)
            except (HintNotFound, HintCorrupt):
                return
            for address in addresses:
                try:
                    await self._pool.call(
                        address,
                        ChunkPut(chunk_id),
                        ChunkPutReply,
                        record,
                        timeout=self.call_timeout_s,
                    )
                except CairnError:
                    self.failures += 1
                    HANDOFF_FAILURES.inc()
                    return
            await self._done(target, chunk_id)

        await _bounded(self.hints.chunk_ids(target), redirect, self.concurrency_max)

    async def _done(self, target: str, chunk_id: bytes) -> None:
        if await self.hints.delete(target, chunk_id):
            self.handed_off += 1
            HINTS_HANDED_OFF.inc()
