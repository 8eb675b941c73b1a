"""The write path of one PUT: body -> chunks -> dedup check -> encode -> replicas -> manifest.

Theory of operation (DESIGN §4). The request body arrives as an async iterator of byte
pieces. The first `INLINE_BYTES_MAX + 1` bytes are gathered on the event loop: a body that
ends by then is stored inline in the manifest, with no chunk IO at all. A longer body goes
through a `ChunkCutter`: a worker thread runs FastCDC over the body (pulling pieces from
the event loop one at a time, so it never holds more than the chunker's own buffers),
hashes every chunk (MD5 of the body for the ETag, keyed BLAKE2b for the chunk id; both
release the GIL) and hands the chunks back through a bounded queue, which is the
back-pressure: when the network is slower than the CPU, the thread waits.

On the event loop the chunks are taken in batches (as many as are ready, at most
`dedup_batch_chunks_max`); one `present` call per batch asks the replicas which ids they
already hold (and touches them, so GC keeps them). Only the missing chunks are encoded
(zstd if it shrinks, AES-GCM, per the bucket's policy; on the codec thread pool) and
written, concurrently, at most `writes_in_flight_max` at a time. A chunk that occurs twice
in one body is stored once. When every write has reached its consistency level, the
bucket is checked again (a delete may have begun, see `meta.buckets`) and the manifest is
committed through the index shard's Raft group: only then is the object visible. A
failure anywhere before that leaves unreferenced chunks, which GC removes.

GC safety. The sweep spares chunks touched within `gc_grace_s`; this upload touched each
chunk when it wrote it or found it present. If the upload ran for more than half the
grace period, touches from its beginning may be near expiry, so before committing it asks
`present` again for every id (touching them all afresh) and fails if any is missing.

Memory per request is bounded by (`cut_queue_chunks_max` + `dedup_batch_chunks_max` +
2 x `writes_in_flight_max`) chunks plus the chunker's stream buffer, whatever the body's
length.
"""

import asyncio
import concurrent.futures
import hashlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from cairn.base.checksum import Buffer
from cairn.codec import ChunkCodec, Chunker, ChunkId
from cairn.gateway.errors import ApiError
from cairn.gateway.ports import ChunkPort
from cairn.meta.manifest import OBJECT_SIZE_BYTES_MAX
from cairn.node.chunk_client import Level

CUT_QUEUE_CHUNKS_MAX = 4
DEDUP_BATCH_CHUNKS_MAX = 8
WRITES_IN_FLIGHT_MAX = 4

BodyPieces = AsyncIterator[Buffer]


@dataclass(frozen=True, slots=True)
class WriteLimits:
    cut_queue_chunks_max: int = CUT_QUEUE_CHUNKS_MAX
    dedup_batch_chunks_max: int = DEDUP_BATCH_CHUNKS_MAX
    writes_in_flight_max: int = WRITES_IN_FLIGHT_MAX
    object_size_bytes_max: int = OBJECT_SIZE_BYTES_MAX


@dataclass(frozen=True, slots=True)
class CutChunk:
    offset: int
    data: bytes
    chunk_id: bytes


@dataclass(frozen=True, slots=True)
class StoredBody:
    """What the chunk stage produced: the manifest's refs and the upload's statistics."""

    size: int
    md5: bytes
    refs: list[tuple[bytes, int]]
    new_chunks: int
    new_bytes: int
    """Plaintext bytes of the chunks this upload stored (not found by dedup)."""
    stored_bytes: int
    """Encoded (compressed, encrypted, framed) bytes of those chunks, per replica."""


class _End:
    pass


_END = _End()


class _Aborted(Exception):
    pass


async def read_head(body: BodyPieces, limit: int) -> tuple[bytes, bool]:
    """At least `limit` bytes from the start of `body` (more if a piece straddles it), or
    all of it; and whether the body ended."""
    pieces: list[bytes] = []
    size = 0
    async for piece in body:
        pieces.append(bytes(piece))
        size += len(piece)
        if size >= limit:
            return b"".join(pieces), False
    return b"".join(pieces), True


class ChunkCutter:
    """FastCDC, MD5 and chunk ids of an async body, in a worker thread (see the module doc).

    Use as an async context manager; iterate `batches()`; `size` and `md5` are final once
    the iteration ends. Leaving the context early stops the thread.
    """

    def __init__(
        self,
        chunker: Chunker,
        chunk_id_of: Callable[[Buffer], ChunkId],
        head: bytes,
        body: BodyPieces,
        executor: concurrent.futures.Executor,
        *,
        queue_chunks_max: int = CUT_QUEUE_CHUNKS_MAX,
        size_bytes_max: int = OBJECT_SIZE_BYTES_MAX,
    ) -> None:
        self._chunker = chunker
        self._chunk_id_of = chunk_id_of
        self._head = head
        self._body = body
        self._executor = executor
        self._size_max = size_bytes_max
        self._queue: asyncio.Queue[CutChunk | _End | BaseException] = asyncio.Queue(
            queue_chunks_max
        )
        self._loop = asyncio.get_running_loop()
        self._aborted = threading.Event()
        self._waiting: concurrent.futures.Future[bytes | None] | None = None
        self._thread: asyncio.Future[None] | None = None
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    @property
    def md5(self) -> bytes:
        return self._md5.digest()

    async def __aenter__(self) -> "ChunkCutter":
        self._thread = self._loop.run_in_executor(self._executor, self._run)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._aborted.set()
        waiting = self._waiting
        if waiting is not None:
            waiting.cancel()
        while not self._queue.empty():  # unblock a thread waiting to deliver
            self._queue.get_nowait()
        if self._thread is not None:
            await asyncio.gather(self._thread, return_exceptions=True)

    async def batches(self, batch_chunks_max: int) -> AsyncIterator[list[CutChunk]]:
        """The chunks in order, grouped: each batch is what was ready (at least one)."""
        while True:
            items = [await self._queue.get()]
            while len(items) < batch_chunks_max and not self._queue.empty():
                items.append(self._queue.get_nowait())
            batch: list[CutChunk] = []
            for item in items:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, _End):
                    if batch:
                        yield batch
                    return
                batch.append(item)
            yield batch

    # -- the worker thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            for chunk in self._chunker.chunk_stream(self._pieces()):
                data = bytes(chunk.data)
                self._md5.update(data)
                chunk_id = self._chunk_id_of(data).digest
                self._deliver(CutChunk(chunk.offset, data, chunk_id))
            self._deliver(_END)
        except BaseException as exc:  # handed to the event loop, raised there
            self._deliver(exc)

    def _pieces(self) -> Iterator[bytes]:
        self.size = len(self._head)
        yield self._head
        while True:
            if self._aborted.is_set():
                raise _Aborted
            future = asyncio.run_coroutine_threadsafe(self._next_piece(), self._loop)
            self._waiting = future
            piece = future.result()
            self._waiting = None
            if piece is None:
                return
            self.size += len(piece)
            if self.size > self._size_max:
                raise ApiError("EntityTooLarge", f"objects are at most {self._size_max} bytes")
            yield piece

    async def _next_piece(self) -> bytes | None:
        try:
            return bytes(await anext(self._body))
        except StopAsyncIteration:
            return None

    def _deliver(self, item: CutChunk | _End | BaseException) -> None:
        if self._aborted.is_set():
            return
        asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop).result()


class ChunkWriter:
    """Dedup, encode and replicate the chunks of one body (see the module doc)."""

    def __init__(
        self,
        chunks: ChunkPort,
        codec: ChunkCodec,
        codec_executor: concurrent.futures.Executor,
        level: Level,
        limits: WriteLimits,
    ) -> None:
        self._chunks = chunks
        self._codec = codec
        self._executor = codec_executor
        self._level = level
        self._limits = limits
        self._window = asyncio.Semaphore(limits.writes_in_flight_max)
        self._running: set[asyncio.Task[int]] = set()
        self._failure: BaseException | None = None
        self._seen: set[bytes] = set()
        self.refs: list[tuple[bytes, int]] = []
        self.new_chunks = 0
        self.new_bytes = 0
        self.stored_bytes = 0

    async def store(self, cutter: ChunkCutter) -> StoredBody:
        """Store every chunk `cutter` yields; return when all are at the write level."""
        try:
            async for batch in cutter.batches(self._limits.dedup_batch_chunks_max):
                await self._store_batch(batch)
            while self._running:
                await asyncio.wait(self._running, return_when=asyncio.FIRST_EXCEPTION)
                self._raise_failure()
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
        self._raise_failure()
        return StoredBody(
            cutter.size,
            cutter.md5,
            self.refs,
            self.new_chunks,
            self.new_bytes,
            self.stored_bytes,
        )

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _store_batch(self, batch: list[CutChunk]) -> None:
        self._raise_failure()  # a failed write fails the upload now, not at the end
        asking = list(dict.fromkeys(c.chunk_id for c in batch if c.chunk_id not in self._seen))
        present = await self._chunks.present(asking, self._level) if asking else set()
        for chunk in batch:
            self.refs.append((chunk.chunk_id, len(chunk.data)))
            if chunk.chunk_id in self._seen:
                continue
            self._seen.add(chunk.chunk_id)
            if chunk.chunk_id in present:
                continue
            self.new_chunks += 1
            self.new_bytes += len(chunk.data)
            await self._window.acquire()
            self._raise_failure()
            task = asyncio.get_running_loop().create_task(self._encode_and_write(chunk))
            task.add_done_callback(self._finished)
            self._running.add(task)

    def _finished(self, task: "asyncio.Task[int]") -> None:
        self._window.release()
        self._running.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._failure = self._failure or error
        else:
            self.stored_bytes += task.result()

    async def _encode_and_write(self, chunk: CutChunk) -> int:
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(
            self._executor, self._codec.encode, chunk.data, ChunkId(chunk.chunk_id)
        )
        await self._chunks.write(chunk.chunk_id, encoded.record, self._level)
        return len(encoded.record)
