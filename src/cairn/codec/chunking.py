"""Content-defined chunking (FastCDC 2020) of buffers and of streams larger than memory.

Theory of operation: a rolling "gear" hash runs over the bytes; a chunk ends where the
hash matches a mask, so boundaries depend on the bytes around them, not on their offset.
An insertion or deletion therefore moves only the boundaries next to it, and every chunk
after the next boundary is the same as before: that is what makes edited copies of a file
deduplicate. FastCDC's normalised chunking uses a stricter mask before the average size and
a looser one after it, so chunk sizes cluster around the average, bounded by min and max.

The hashing loop is `pyfastcdc` (a Cython port of the FastCDC 2020 reference that matches
`fastcdc-rs`; it releases the GIL while it scans). Measured here it cuts a buffer at about
4 GB/s and a stream at about 2.4 GB/s; see `docs/design/codec.md` for the checks made on it.
Note that the mean chunk size is larger than `avg_size_bytes`: the scan starts at
`min_size_bytes`, so on random data the mean is about avg + min/4 (1.25 MiB by default).

A stream is read into a head buffer of `max_size_bytes`; if it is longer, into pyfastcdc's
stream buffer of `stream_buffer_bytes` (twice the maximum chunk size). The memory used does
not depend on the length of the stream. A chunk cut from a stream is copied out of those
buffers (`bytes`), so it stays valid after the next one.
"""

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, cast

from pyfastcdc import FastCDC

from cairn.base.checksum import Buffer
from cairn.base.errors import ConfigError

KiB = 1024
MiB = 1024 * KiB

# Bounds of the underlying implementation (pyfastcdc 0.3.1).
CHUNK_SIZE_BYTES_MIN_LOWEST = 64
CHUNK_SIZE_BYTES_AVG_LOWEST = 256
CHUNK_SIZE_BYTES_MAX_LOWEST = 1024
CHUNK_SIZE_BYTES_MIN_HIGHEST = 1 * MiB
CHUNK_SIZE_BYTES_AVG_HIGHEST = 4 * MiB
CHUNK_SIZE_BYTES_MAX_HIGHEST = 16 * MiB

_MIN_BOUNDS = (CHUNK_SIZE_BYTES_MIN_LOWEST, CHUNK_SIZE_BYTES_MIN_HIGHEST)
_AVG_BOUNDS = (CHUNK_SIZE_BYTES_AVG_LOWEST, CHUNK_SIZE_BYTES_AVG_HIGHEST)
_MAX_BOUNDS = (CHUNK_SIZE_BYTES_MAX_LOWEST, CHUNK_SIZE_BYTES_MAX_HIGHEST)

SPARE_HEADS_MAX = 8
"""Head buffers (max_size_bytes each) a `Chunker` keeps for reuse."""


class ReadableInto(Protocol):
    def readinto(self, buffer: memoryview, /) -> int: ...


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


ByteSource = ReadableInto | Readable | Iterable[Buffer]
"""A stream of bytes: a binary file (anything with `readinto` or `read`), or an iterable
of buffers such as a generator of request body pieces."""


@dataclass(frozen=True, slots=True)
class ChunkingParams:
    """Chunk size bounds. Defaults: 256 KiB / 1 MiB / 4 MiB (DESIGN.md section 4)."""

    min_size_bytes: int = 256 * KiB
    avg_size_bytes: int = 1 * MiB
    max_size_bytes: int = 4 * MiB
    gear_seed: int = 0
    """Alters the gear table (0 = the reference table); see docs/design/codec.md."""

    def __post_init__(self) -> None:
        checks = (
            ("min_size_bytes", self.min_size_bytes, _MIN_BOUNDS),
            ("avg_size_bytes", self.avg_size_bytes, _AVG_BOUNDS),
            ("max_size_bytes", self.max_size_bytes, _MAX_BOUNDS),
        )
        for name, value, (lowest, highest) in checks:
            if not lowest <= value <= highest:
                raise ConfigError(f"chunking.{name}: {value} is outside [{lowest}, {highest}]")
        if not self.min_size_bytes <= self.avg_size_bytes <= self.max_size_bytes:
            raise ConfigError(
                "chunking: need min_size_bytes <= avg_size_bytes <= max_size_bytes, got "
                f"{self.min_size_bytes} / {self.avg_size_bytes} / {self.max_size_bytes}"
            )
        if not 0 <= self.gear_seed < 2**63:
            raise ConfigError(f"chunking.gear_seed: {self.gear_seed} is outside [0, 2**63)")

    @property
    def stream_buffer_bytes(self) -> int:
        """The size of the one buffer a stream is read into."""
        return 2 * self.max_size_bytes


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the input: its offset in the stream and its bytes."""

    offset: int
    data: Buffer

    @property
    def length(self) -> int:
        return len(self.data)


class Chunker:
    """Cuts buffers and streams at content-defined boundaries. Safe to share between
    threads: the scanner holds no state between calls and each stream has its own
    iterator and buffers."""

    def __init__(self, params: ChunkingParams | None = None) -> None:
        self.params = params or ChunkingParams()
        self._cdc = FastCDC(
            self.params.avg_size_bytes,
            min_size=self.params.min_size_bytes,
            max_size=self.params.max_size_bytes,
            normalized_chunking=1,
            seed=self.params.gear_seed,
        )
        self._spare_heads: list[bytearray] = []
        self._spare_heads_lock = threading.Lock()

    def chunk_buffer(self, data: Buffer) -> Iterator[Chunk]:
        """Chunks of an in-memory buffer; their data are memoryview slices (no copy)."""
        for cut in self._cdc.cut_buf(data):
            yield Chunk(offset=cut.offset, data=cut.data)

    def chunk_stream(self, source: ByteSource) -> Iterator[Chunk]:
        """Chunks of a stream, in bounded memory; their data are `bytes` copies.

        The first `max_size_bytes` are read into a reused head buffer. A stream that ends
        there (most files) is cut in place; only a longer one gets pyfastcdc's stream
        buffer, whose allocation would otherwise cost more than chunking a small file.
        The boundaries are the same either way: they depend only on the bytes."""
        readinto = _readinto_of(source)
        head = self._take_head()
        try:
            filled = _fill(readinto, memoryview(head))
            if filled < len(head):
                for cut in self._cdc.cut_buf(memoryview(head)[:filled]):
                    yield Chunk(offset=cut.offset, data=bytes(cut.data))
                return
            reader = _PrefixedReader(bytes(head), readinto)
        finally:
            self._give_back(head)
        for cut in self._cdc.cut_stream(reader):
            yield Chunk(offset=cut.offset, data=bytes(cut.data))

    def _take_head(self) -> bytearray:
        with self._spare_heads_lock:
            if self._spare_heads:
                return self._spare_heads.pop()
        return bytearray(self.params.max_size_bytes)

    def _give_back(self, head: bytearray) -> None:
        with self._spare_heads_lock:
            if len(self._spare_heads) < SPARE_HEADS_MAX:
                self._spare_heads.append(head)


ReadInto = Callable[[memoryview], int]


def _readinto_of(source: ByteSource) -> ReadInto:
    if hasattr(source, "readinto"):
        return cast(ReadableInto, source).readinto
    if hasattr(source, "read"):
        read = cast(Readable, source).read

        def readinto(buffer: memoryview) -> int:
            data = read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

        return readinto
    return _IterableReader(source).readinto


def _fill(readinto: ReadInto, buffer: memoryview) -> int:
    """Read until `buffer` is full or the stream ends; the number of bytes read."""
    filled = 0
    while filled < len(buffer):
        count = readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled


class _PrefixedReader:
    """`readinto` that returns `prefix` first, then the rest of the stream."""

    def __init__(self, prefix: bytes, rest: ReadInto) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readinto(self, buffer: memoryview) -> int:
        if not self._prefix:
            return self._rest(buffer) or 0
        count = min(len(buffer), len(self._prefix))
        buffer[:count] = self._prefix[:count]
        self._prefix = self._prefix[count:]
        if not self._prefix:
            self._prefix = memoryview(b"")  # drop the reference to the prefix bytes
        return count


class _IterableReader:
    """`readinto` over an iterable of buffers; holds at most one piece of the iterable."""

    def __init__(self, pieces: Iterable[Buffer]) -> None:
        self._pieces = iter(pieces)
        self._current = memoryview(b"")

    def readinto(self, buffer: memoryview) -> int:
        while not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._current = memoryview(piece).cast("B")
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count
