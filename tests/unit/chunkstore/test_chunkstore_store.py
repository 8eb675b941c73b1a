"""ChunkStore operations: put/get/has/delete, iteration by partition, figures, errors,
fsync policies and group commit, the asyncio wrapper."""

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

import cairn.chunkstore as chunkstore
from cairn.base.errors import CairnError
from cairn.chunkstore import (
    CHUNK_BYTES_MAX,
    AsyncChunkStore,
    ChunkNotFound,
    ChunkStore,
    ChunkTooLarge,
    InvalidChunkId,
    StoreClosed,
    StoreFailed,
    StoreLocked,
    StoreOptions,
    partition_of,
)
from cairn.chunkstore.record import RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES


def make_chunk(rng: random.Random, size: int) -> tuple[bytes, bytes]:
    data = rng.randbytes(size)
    return hashlib.sha256(data).digest(), data


def test_public_names_are_pinned() -> None:
    assert sorted(chunkstore.__all__) == sorted(
        [
            "CHUNK_BYTES_MAX",
            "CHUNK_ID_BYTES",
            "FSYNC_POLICIES",
            "AsyncChunkStore",
            "ChunkCorrupt",
            "ChunkNotFound",
            "ChunkStore",
            "ChunkStoreError",
            "ChunkTooLarge",
            "CompactionResult",
            "Compactor",
            "Damage",
            "FsyncPolicy",
            "InvalidChunkId",
            "Location",
            "RecoveryReport",
            "ScrubResult",
            "Scrubber",
            "SegmentStats",
            "StoreClosed",
            "StoreFailed",
            "StoreFull",
            "StoreLocked",
            "StoreOptions",
            "StoreUsage",
            "partition_of",
        ]
    )
    for name in chunkstore.__all__:
        assert hasattr(chunkstore, name)


def test_put_get_has_delete(tmp_path: Path, rng: random.Random) -> None:
    with ChunkStore.open(str(tmp_path)) as store:
        chunks = [make_chunk(rng, rng.randrange(0, 5000)) for _ in range(50)]
        for cid, data in chunks:
            assert store.put(cid, data) is True
        for cid, data in chunks:
            assert store.get(cid) == data
        missing = make_chunk(rng, 10)[0]
        ids = [cid for cid, _ in chunks]
        assert store.has([*ids, missing]) == set(ids)
        assert store.delete(ids[0]) is True
        assert store.delete(ids[0]) is False
        assert store.delete(missing) is False
        with pytest.raises(ChunkNotFound):
            store.get(ids[0])
        assert ids[0] not in store.has(ids)
        assert len(store) == 49
        # A deleted chunk can be stored again.
        assert store.put(ids[0], chunks[0][1]) is True
        assert store.get(ids[0]) == chunks[0][1]


def test_dedup_accounting(tmp_path: Path, rng: random.Random) -> None:
    with ChunkStore.open(str(tmp_path)) as store:
        cid, data = make_chunk(rng, 1000)
        assert store.put(cid, data) is True
        before = store.usage()
        assert store.put(cid, data) is False
        after = store.usage()
        assert after.logical_bytes == 2000
        assert after.live_bytes == 1000
        assert after.stored_bytes == before.stored_bytes
        assert after.dedup_ratio == 2.0
        assert after.chunk_count == 1
        assert after.segment_count == 1
        assert after.stored_bytes == SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 1000
        assert after.garbage_bytes == 0
        assert after.capacity_bytes > 0
        store.delete(cid)
        usage = store.usage()
        assert usage.live_bytes == 0
        assert usage.garbage_bytes == 2 * RECORD_HEADER_BYTES + 1000


def test_logical_bytes_survive_restart(tmp_path: Path, rng: random.Random) -> None:
    cid, data = make_chunk(rng, 300)
    with ChunkStore.open(str(tmp_path)) as store:
        store.put(cid, data)
        store.put(cid, data)
    with ChunkStore.open(str(tmp_path)) as store:
        assert store.usage().logical_bytes == 600
        assert store.recovery_report.hint_used


def test_input_errors_are_typed(tmp_path: Path) -> None:
    with ChunkStore.open(str(tmp_path)) as store:
        for bad in (b"", b"x" * 31, b"x" * 33):
            with pytest.raises(InvalidChunkId):
                store.put(bad, b"data")
            with pytest.raises(InvalidChunkId):
                store.get(bad)
            with pytest.raises(InvalidChunkId):
                store.has([bad])
        with pytest.raises(ChunkTooLarge):
            store.put(b"x" * 32, bytes(CHUNK_BYTES_MAX + 1))
        assert issubclass(ChunkTooLarge, CairnError)
        assert store.put(b"y" * 32, bytes(CHUNK_BYTES_MAX)) is True
        assert len(store.get(b"y" * 32)) == CHUNK_BYTES_MAX
    with pytest.raises(StoreClosed):
        store.get(b"y" * 32)


def test_second_open_of_a_directory_is_refused(tmp_path: Path) -> None:
    with ChunkStore.open(str(tmp_path)), pytest.raises(StoreLocked):
        ChunkStore.open(str(tmp_path))
    ChunkStore.open(str(tmp_path)).close()


def test_iteration_by_partition(tmp_path: Path, rng: random.Random) -> None:
    with ChunkStore.open(str(tmp_path)) as store:
        ids = set()
        for _ in range(200):
            cid, data = make_chunk(rng, 10)
            store.put(cid, data)
            ids.add(cid)
        assert set(store.ids()) == ids
        seen: set[bytes] = set()
        for p in range(8):
            part = set(store.ids(p, partition_count=8))
            assert all(int.from_bytes(c[:8], "big") >> 61 == p for c in part)
            assert not part & seen
            seen |= part
        assert seen == ids
        evens = set(store.ids(0, partition_of=lambda c: c[-1] % 2))
        assert evens == {c for c in ids if c[-1] % 2 == 0}
        with pytest.raises(ValueError):
            store.ids(0)


def test_partition_rule() -> None:
    cid = bytes([0b1010_0000]) + bytes(31)
    assert partition_of(cid, 1) == 0
    assert partition_of(cid, 2) == 1
    assert partition_of(cid, 4) == 2
    assert partition_of(cid, 8) == 5
    assert partition_of(b"\xff" * 32, 4096) == 4095


def test_segments_roll_at_the_size_limit(tmp_path: Path, rng: random.Random) -> None:
    options = StoreOptions(segment_bytes_max=10_000)
    chunks = [make_chunk(rng, 1000) for _ in range(40)]
    with ChunkStore.open(str(tmp_path), options) as store:
        for cid, data in chunks:
            store.put(cid, data)
        stats = store.segment_stats()
        assert len(stats) >= 4
        assert all(s.size_bytes <= 10_000 for s in stats)
        assert [s.active for s in stats] == [False] * (len(stats) - 1) + [True]
    with ChunkStore.open(str(tmp_path), options) as store:
        for cid, data in chunks:
            assert store.get(cid) == data


@pytest.mark.parametrize("policy", ["always", "batch", "none"])
def test_fsync_policies_store_and_reopen(
    tmp_path: Path, rng: random.Random, policy: chunkstore.FsyncPolicy
) -> None:
    chunks = [make_chunk(rng, 100) for _ in range(20)]
    with ChunkStore.open(str(tmp_path), StoreOptions(fsync=policy)) as store:
        for cid, data in chunks:
            store.put(cid, data)
    with ChunkStore.open(str(tmp_path)) as store:
        assert store.has([c for c, _ in chunks]) == {c for c, _ in chunks}


def test_group_commit_shares_fsyncs(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_fsync = os.fdatasync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    chunks = [make_chunk(rng, 4096) for _ in range(800)]
    with ChunkStore.open(str(tmp_path), StoreOptions(fsync="batch")) as store:
        monkeypatch.setattr(os, "fdatasync", counting_fsync)
        barrier = threading.Barrier(16)

        def writer(part: list[tuple[bytes, bytes]]) -> None:
            barrier.wait()
            for cid, data in part:
                store.put(cid, data)

        threads = [threading.Thread(target=writer, args=(chunks[i::16],)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        fsyncs = len(calls)
        monkeypatch.undo()
        assert store.has([c for c, _ in chunks]) == {c for c, _ in chunks}
    assert 1 <= fsyncs < len(chunks)


async def test_async_api(tmp_path: Path, rng: random.Random) -> None:
    import asyncio

    store = await AsyncChunkStore.open(str(tmp_path), threads_max=8)
    chunks = [make_chunk(rng, 2000) for _ in range(64)]
    results = await asyncio.gather(*(store.put(c, d) for c, d in chunks))
    assert all(results)
    got = await asyncio.gather(*(store.get(c) for c, _ in chunks))
    assert got == [d for _, d in chunks]
    assert await store.has([c for c, _ in chunks]) == {c for c, _ in chunks}
    assert await store.delete(chunks[0][0])
    assert (await store.usage()).chunk_count == 63
    await store.close()


@pytest.mark.parametrize("policy", ["always", "batch"])
def test_failed_flush_stops_writes_until_reopen(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    good = make_chunk(rng, 100)
    options = StoreOptions(fsync=policy)  # type: ignore[arg-type]
    store = ChunkStore.open(str(tmp_path), options)
    store.put(*good)

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(StoreFailed):
        store.put(*make_chunk(rng, 100))
    monkeypatch.undo()
    with pytest.raises(StoreFailed):  # what reached the disk is unknown: refuse writes
        store.put(*make_chunk(rng, 100))
    assert store.get(good[0]) == good[1]  # reads still work
    store.close()
    with ChunkStore.open(str(tmp_path), options) as store:
        assert store.get(good[0]) == good[1]
        store.put(*make_chunk(rng, 100))
