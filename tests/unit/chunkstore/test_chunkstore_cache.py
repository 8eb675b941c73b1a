"""The chunk store drops durable data from the page cache behind a window
(`StoreOptions.cache_behind_bytes`): checked with mincore(2) on the real segment files,
and by reading everything back."""

import ctypes
import hashlib
import mmap
import os
import random
from pathlib import Path

import pytest

from cairn.chunkstore import ChunkStore, StoreOptions
from cairn.chunkstore.segment import list_segment_numbers, segment_path
from cairn.chunkstore.store import DROP_STEP_BYTES, drop_span

MiB = 1024 * 1024
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
]  # fmt: skip
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def resident_pages(path: str) -> list[bool]:
    """Which pages of `path` are in the page cache (mincore on a shared mapping)."""
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vector = ctypes.create_string_buffer(pages)
            assert _libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
            return [bool(b & 1) for b in vector.raw[:pages]]
        finally:
            _libc.munmap(address, size)
    finally:
        os.close(fd)


def fill(store: ChunkStore, rng: random.Random, count: int) -> dict[bytes, bytes]:
    written = {}
    for _ in range(count):
        data = rng.randbytes(MiB)
        chunk_id = hashlib.sha256(data).digest()
        store.put(chunk_id, data)
        written[chunk_id] = data
    return written


def test_drop_span_keeps_the_window_and_drops_in_steps() -> None:
    window = 8 * MiB
    assert drop_span(0, window, window) is None  # nothing behind the window yet
    assert drop_span(0, window + DROP_STEP_BYTES - 1, window) is None  # less than a step
    assert drop_span(0, window + DROP_STEP_BYTES, window) == (0, DROP_STEP_BYTES)
    assert drop_span(DROP_STEP_BYTES, 40 * MiB, window) == (
        DROP_STEP_BYTES, 32 * MiB - DROP_STEP_BYTES,
    )  # fmt: skip
    # A span starts at the page the last one ended inside: the kernel drops whole pages.
    page = mmap.PAGESIZE
    assert drop_span(3 * page + 10, 3 * page + 11, 0) == (3 * page, 11)
    assert drop_span(3 * page + 11, 3 * page + 11, 0) is None


@pytest.mark.parametrize("policy", ["batch", "always"])
def test_durable_bytes_behind_the_window_leave_the_page_cache(
    tmp_path: Path, rng: random.Random, policy: str
) -> None:
    window = 8 * MiB
    options = StoreOptions(fsync=policy, cache_behind_bytes=window)  # type: ignore[arg-type]
    with ChunkStore.open(str(tmp_path), options) as store:
        written = fill(store, rng, 40)
        (number,) = list_segment_numbers(str(tmp_path))
        resident = resident_pages(segment_path(str(tmp_path), number))
        size = os.path.getsize(segment_path(str(tmp_path), number))
        behind = (size - window - DROP_STEP_BYTES) // mmap.PAGESIZE
        assert behind > 0
        assert not any(resident[:behind]), "durable data behind the window is still cached"
        for chunk_id, data in written.items():
            assert store.get(chunk_id) == data
    with ChunkStore.open(str(tmp_path), options) as store:
        for chunk_id, data in written.items():
            assert store.get(chunk_id) == data


def test_a_sealed_segment_is_dropped_whole(tmp_path: Path, rng: random.Random) -> None:
    options = StoreOptions(segment_bytes_max=6 * MiB, cache_behind_bytes=64 * MiB)
    with ChunkStore.open(str(tmp_path), options) as store:
        written = fill(store, rng, 20)
        numbers = list_segment_numbers(str(tmp_path))
        assert len(numbers) >= 3
        for number in numbers[:-1]:
            assert not any(resident_pages(segment_path(str(tmp_path), number)))
        for chunk_id, data in written.items():
            assert store.get(chunk_id) == data


def test_none_keeps_the_page_cache_and_a_negative_window_is_refused() -> None:
    assert StoreOptions(cache_behind_bytes=None).cache_behind_bytes is None
    with pytest.raises(ValueError, match="cache_behind_bytes"):
        StoreOptions(cache_behind_bytes=-1)
