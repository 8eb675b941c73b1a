"""The read path of one GET: manifest + range -> the chunks that cover it -> verified bytes.

Theory of operation (DESIGN §4, read path). `slices_for_range` picks the chunks that cover
the requested range and the part of each to send, so a small range of a large object
reads one or two chunks. `ChunkReader.stream` keeps up to `prefetch_chunks_max` chunk
reads in flight ahead of the one being sent: while the client drains one chunk, the next
ones are already on their way, and memory stays bounded by the prefetch window.

Every chunk is verified end to end before a byte of it is sent: `ChunkCodec.decode`
checks the record's CRC, the GCM tag, the length and finally that the keyed hash of the
plaintext equals the id the manifest asked for. Decoding a large chunk (a few ms of
AES-GCM, zstd and BLAKE2b) runs on the codec thread pool, where those libraries release
the GIL, instead of stalling the event loop. The chunk client's `verify` callback is
synchronous, so for a large chunk the record is fetched as it is and decoded off the
loop afterwards; in the rare case that decoding fails (a replica returned a record that
passes its CRC but not the codec's checks), the chunk is read again with `decode` as the
`verify` callback, which makes the chunk client try the other replicas. Small chunks are
decoded inline, where a thread hop would cost more than the work.
"""

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import AsyncGenerator
from functools import partial

from cairn.codec import ChunkCodec, ChunkCorrupt, ChunkId
from cairn.gateway.ports import ChunkPort
from cairn.meta.manifest import ByteRange, ChunkSlice, Manifest, slices_for_range

PREFETCH_CHUNKS_MAX = 4
DECODE_INLINE_BYTES_MAX = 128 * 1024
"""Chunks of at most this many plaintext bytes are decoded on the event loop."""


def _as_is(record: bytes) -> bytes:
    return record


class ChunkReader:
    def __init__(
        self,
        chunks: ChunkPort,
        codec: ChunkCodec,
        codec_executor: concurrent.futures.Executor,
        *,
        prefetch_chunks_max: int = PREFETCH_CHUNKS_MAX,
        decode_inline_bytes_max: int = DECODE_INLINE_BYTES_MAX,
    ) -> None:
        assert prefetch_chunks_max >= 1
        self._chunks = chunks
        self._codec = codec
        self._executor = codec_executor
        self.prefetch_chunks_max = prefetch_chunks_max
        self.decode_inline_bytes_max = decode_inline_bytes_max

    async def plaintext(self, chunk_id: bytes, length: int) -> bytes:
        """The verified plaintext of one chunk of `length` bytes (see the module doc)."""
        decode = partial(self._codec.decode, ChunkId(chunk_id))
        if length <= self.decode_inline_bytes_max:
            return await self._chunks.read(chunk_id, decode)
        record = await self._chunks.read(chunk_id, _as_is)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, decode, record)
        except ChunkCorrupt:
            return await self._chunks.read(chunk_id, decode)

    async def stream(
        self, manifest: Manifest, byte_range: ByteRange | None
    ) -> AsyncGenerator[bytes, None]:
        """The bytes of `byte_range` (None: all) of the object, in order, prefetching.

        Close the iterator (`contextlib.aclosing`) if you stop early: that cancels the
        reads still in flight."""
        if manifest.size == 0:
            return
        whole = byte_range or ByteRange(0, manifest.size)
        if manifest.inline is not None:
            yield manifest.inline[whole.start : whole.end]
            return
        slices = iter(slices_for_range(manifest, whole))
        ahead: deque[tuple[ChunkSlice, asyncio.Task[bytes]]] = deque()
        loop = asyncio.get_running_loop()

        def top_up() -> None:
            while len(ahead) < self.prefetch_chunks_max:
                piece = next(slices, None)
                if piece is None:
                    return
                task = loop.create_task(self.plaintext(piece.ref.chunk_id, piece.ref.length))
                ahead.append((piece, task))

        try:
            top_up()
            while ahead:
                piece, task = ahead.popleft()
                plaintext = await task
                top_up()
                if piece.start == 0 and piece.end == len(plaintext):
                    yield plaintext
                else:
                    yield plaintext[piece.start : piece.end]
        finally:
            for _, task in ahead:
                task.cancel()
            await asyncio.gather(*(task for _, task in ahead), return_exceptions=True)
