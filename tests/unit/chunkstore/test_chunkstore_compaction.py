"""Compaction reclaims garbage without losing or resurrecting chunks, also under
concurrent reads and writes; the scrubber reports corruption; the rate limiter paces."""

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from cairn.chunkstore import ChunkNotFound, ChunkStore, Compactor, Scrubber, StoreOptions
from cairn.chunkstore.hint import HINT_FILE
from cairn.chunkstore.pacing import RateLimiter
from cairn.chunkstore.segment import segment_path


def make_chunk(rng: random.Random, size: int) -> tuple[bytes, bytes]:
    data = rng.randbytes(size)
    return hashlib.sha256(data).digest(), data


SMALL = StoreOptions(segment_bytes_max=20_000)


def test_compaction_reclaims_and_keeps_live(tmp_path: Path, rng: random.Random) -> None:
    d = str(tmp_path)
    chunks = [make_chunk(rng, 1000) for _ in range(100)]
    with ChunkStore.open(d, SMALL) as store:
        for cid, data in chunks:
            store.put(cid, data)
        for cid, _ in chunks[::2]:
            store.delete(cid)
        before = store.usage()
        result = Compactor(store, garbage_ratio_min=0.3, io_bytes_per_s_max=0).run_once()
        after = store.usage()
        assert result.segments_compacted >= 3
        assert after.stored_bytes < before.stored_bytes
        assert after.garbage_bytes < before.garbage_bytes
        assert after.live_bytes == before.live_bytes
        for cid, data in chunks[1::2]:
            assert store.get(cid) == data
    with ChunkStore.open(d, SMALL) as store:
        for cid, data in chunks[1::2]:
            assert store.get(cid) == data
        for cid, _ in chunks[::2]:
            with pytest.raises(ChunkNotFound):
                store.get(cid)


def test_tombstones_outlive_the_puts_they_hide(tmp_path: Path, rng: random.Random) -> None:
    d = str(tmp_path)
    chunks = [make_chunk(rng, 1000) for _ in range(60)]
    with ChunkStore.open(d, SMALL) as store:
        for cid, data in chunks:
            store.put(cid, data)
        # Tombstones for early chunks land in later segments; pad so those seal.
        for cid, _ in chunks[:5]:
            store.delete(cid)
        for _ in range(40):
            store.put(*make_chunk(rng, 1000))
        # Compact only the segments holding the tombstones, not the puts they hide.
        compactor = Compactor(store, garbage_ratio_min=0.0, io_bytes_per_s_max=0)
        first = store.segment_stats()[0].number
        for stats in store.segment_stats():
            if not stats.active and stats.number != first:
                compactor.compact_segment(stats.number)
    os.unlink(os.path.join(d, HINT_FILE))  # rebuild from the segments alone
    with ChunkStore.open(d, SMALL) as store:
        assert not store.recovery_report.hint_used
        for cid, _ in chunks[:5]:
            with pytest.raises(ChunkNotFound):
                store.get(cid)
    # Once the puts are gone too, the tombstones may go.
    with ChunkStore.open(d, SMALL) as store:
        Compactor(store, garbage_ratio_min=0.0, io_bytes_per_s_max=0).run_once()
    os.unlink(os.path.join(d, HINT_FILE))
    with ChunkStore.open(d, SMALL) as store:
        assert not set(store.ids()) & {cid for cid, _ in chunks[:5]}


def test_compaction_with_concurrent_reads_and_writes(tmp_path: Path, rng: random.Random) -> None:
    d = str(tmp_path)
    chunks = [make_chunk(rng, 800) for _ in range(200)]
    with ChunkStore.open(d, SMALL) as store:
        for cid, data in chunks:
            store.put(cid, data)
        for cid, _ in chunks[:150]:
            store.delete(cid)
        keep = chunks[150:]
        extra = [make_chunk(rng, 800) for _ in range(200)]
        errors: list[BaseException] = []
        done = threading.Event()

        def reader() -> None:
            try:
                for _ in range(50):
                    for cid, data in keep:
                        assert store.get(cid) == data
                    if done.is_set():
                        return
            except BaseException as exc:
                errors.append(exc)

        def writer() -> None:
            try:
                for cid, data in extra:
                    store.put(cid, data)
                for cid, _ in extra[:100]:
                    store.delete(cid)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        compactor = Compactor(store, garbage_ratio_min=0.2, io_bytes_per_s_max=0)
        for _ in range(3):
            compactor.run_once()
        threads[1].join(60)
        done.set()
        threads[0].join(60)
        assert not errors
        compactor.run_once()
        live = {*keep, *extra[100:]}
        assert set(store.ids()) == {cid for cid, _ in live}
    with ChunkStore.open(d, SMALL) as store:
        for cid, data in live:
            assert store.get(cid) == data
        assert len(store) == len(live)


def test_background_compactor_starts_and_stops(tmp_path: Path, rng: random.Random) -> None:
    with ChunkStore.open(str(tmp_path), SMALL) as store:
        chunks = [make_chunk(rng, 1000) for _ in range(60)]
        for cid, data in chunks:
            store.put(cid, data)
        for cid, _ in chunks[:50]:
            store.delete(cid)
        compactor = Compactor(store, io_bytes_per_s_max=0, interval_s=0.01)
        compactor.start()
        for _ in range(2000):  # bounded wait on a condition, not a sleep
            if not compactor.candidates():
                break
            compactor._worker.stop_event.wait(0.005)
        compactor.stop()
        assert not compactor.errors
        assert not compactor.candidates()


def test_scrubber_reports_flipped_bits(tmp_path: Path, rng: random.Random) -> None:
    d = str(tmp_path)
    chunks = [make_chunk(rng, 500) for _ in range(20)]
    with ChunkStore.open(d) as store:
        for cid, data in chunks:
            store.put(cid, data)
        locs = dict(store.live_locations())
        victims = [chunks[3][0], chunks[11][0]]
        fd = os.open(segment_path(d, 1), os.O_RDWR)
        try:
            for cid in victims:
                loc = locs[cid]
                byte = os.pread(fd, 1, loc.offset + 60)
                os.pwrite(fd, bytes([byte[0] ^ 1]), loc.offset + 60)
        finally:
            os.close(fd)
        found: list[bytes] = []
        result = Scrubber(store, io_bytes_per_s_max=0, on_corrupt=found.append).run_once()
        assert sorted(result.corrupt_ids) == sorted(victims)
        assert sorted(found) == sorted(victims)
        assert result.records_checked == 20
        assert store.has(victims) == set()
        for cid in victims:
            with pytest.raises(ChunkNotFound):
                store.get(cid)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


class RecordingStop(threading.Event):
    """A stop event whose waits advance the fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        self.clock.now += timeout
        return False


def test_rate_limiter_paces_bytes() -> None:
    clock = FakeClock()
    stop = RecordingStop(clock)
    limiter = RateLimiter(1000, clock=clock, stop=stop)
    for _ in range(10):
        limiter.consume(500)
    # 5000 bytes at 1000 B/s with a 1000-byte burst: about 4 s of waiting.
    assert sum(stop.waits) == pytest.approx(4.0)
