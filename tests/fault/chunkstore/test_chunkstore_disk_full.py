"""A full disk (a real 8 MiB tmpfs): writes fail with StoreFull, the store stays
consistent and readable, and writes work again once space is freed, also across a
reopen. Needs root to mount; skipped with the reason printed otherwise."""

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.chunkstore import ChunkStore, StoreFull, StoreOptions

FS_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
FILLER_BYTES = 2 * 1024 * 1024
PUTS_MAX = 1000


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _chunk(rng: random.Random) -> tuple[bytes, bytes]:
    data = rng.randbytes(CHUNK_BYTES)
    return hashlib.sha256(data).digest(), data


@pytest.mark.parametrize("fsync", ["batch", "always"])
def test_disk_full_then_space_returns(small_fs: Path, fsync: str) -> None:
    rng = random.Random(5)
    filler = small_fs / "filler"
    filler.write_bytes(bytes(FILLER_BYTES))
    d = str(small_fs / "store")
    options = StoreOptions(segment_bytes_max=1024 * 1024, fsync=fsync)  # type: ignore[arg-type]
    stored: dict[bytes, bytes] = {}
    with ChunkStore.open(d, options) as store:
        for _ in range(PUTS_MAX):
            cid, data = _chunk(rng)
            try:
                store.put(cid, data)
            except StoreFull as exc:
                assert "disk full" in str(exc)
                break
            stored[cid] = data
        else:
            raise AssertionError("the disk never filled")
        assert len(stored) > 10
        # Consistent and readable while full; a second attempt fails the same way.
        for cid, data in stored.items():
            assert store.get(cid) == data
        with pytest.raises(StoreFull):
            store.put(*_chunk(rng))
        assert store.has(list(stored)) == set(stored)
        usage = store.usage()
        assert usage.chunk_count == len(stored)
        assert usage.free_bytes < CHUNK_BYTES * 2
        # Space returns: writes work again.
        filler.unlink()
        more = dict(_chunk(rng) for _ in range(10))
        for cid, data in more.items():
            assert store.put(cid, data)
        stored.update(more)
    with ChunkStore.open(d, options) as store:
        assert not store.recovery_report.corrupt
        for cid, data in stored.items():
            assert store.get(cid) == data


def test_full_disk_at_open_is_readable(small_fs: Path) -> None:
    rng = random.Random(6)
    d = str(small_fs / "store")
    stored = {}
    with ChunkStore.open(d, StoreOptions(segment_bytes_max=512 * 1024)) as store:
        for _ in range(PUTS_MAX):
            cid, data = _chunk(rng)
            try:
                store.put(cid, data)
            except StoreFull:
                break
            stored[cid] = data
    # Reopen with the disk still full (the hint may not have fitted): all readable.
    with ChunkStore.open(d) as store:
        assert len(store) == len(stored)
        for cid, data in stored.items():
            assert store.get(cid) == data
        with pytest.raises(StoreFull):
            store.put(*_chunk(rng))
