"""Start-up recovery: torn tails truncated, lost index entries restored from the log,
a bad hint ignored, corruption in the middle quarantined and reported, never served."""

import hashlib
import os
import random
from pathlib import Path

import pytest

from cairn.chunkstore import ChunkCorrupt, ChunkNotFound, ChunkStore, StoreOptions
from cairn.chunkstore.hint import HINT_FILE
from cairn.chunkstore.record import RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES
from cairn.chunkstore.segment import list_segment_numbers, segment_path


def make_chunk(rng: random.Random, size: int) -> tuple[bytes, bytes]:
    data = rng.randbytes(size)
    return hashlib.sha256(data).digest(), data


def _fill(directory: str, rng: random.Random, n: int, size: int = 500) -> list[tuple[bytes, bytes]]:
    chunks = [make_chunk(rng, size) for _ in range(n)]
    with ChunkStore.open(directory) as store:
        for cid, data in chunks:
            store.put(cid, data)
    return chunks


def _last_segment(directory: str) -> str:
    return segment_path(directory, list_segment_numbers(directory)[-1])


def test_every_truncation_of_the_tail_recovers(tmp_path: Path, rng: random.Random) -> None:
    base = str(tmp_path / "base")
    chunks = _fill(base, rng, 3, size=100)
    os.unlink(os.path.join(base, HINT_FILE))
    record = RECORD_HEADER_BYTES + 100
    full = SEGMENT_HEADER_BYTES + 3 * record
    with open(_last_segment(base), "rb") as f:
        image = f.read()
    assert len(image) == full
    # Cut inside the last record at every byte: the first two chunks survive.
    for cut in range(full - record, full):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        with open(segment_path(str(d), 1), "wb") as f:
            f.write(image[:cut])
        with ChunkStore.open(str(d)) as store:
            assert store.get(chunks[0][0]) == chunks[0][1]
            assert store.get(chunks[1][0]) == chunks[1][1]
            with pytest.raises(ChunkNotFound):
                store.get(chunks[2][0])
            report = store.recovery_report
            if cut > full - record:
                assert [d.action for d in report.damage] == ["truncated"]
            assert os.path.getsize(segment_path(str(d), 1)) == full - record
            # The store appends cleanly after the truncation.
            store.put(chunks[2][0], chunks[2][1])
        with ChunkStore.open(str(d)) as store:
            assert store.get(chunks[2][0]) == chunks[2][1]


def test_records_after_the_checkpoint_are_restored(tmp_path: Path, rng: random.Random) -> None:
    d = str(tmp_path)
    first = _fill(d, rng, 10)  # closed cleanly: the hint covers these
    store = ChunkStore.open(d)
    later = [make_chunk(rng, 300) for _ in range(10)]
    for cid, data in later:
        store.put(cid, data)
    store.delete(first[0][0])
    # Simulate a crash: drop the store without close (no new checkpoint).
    for seg in store._segments.values():
        seg.close()
    os.close(store._lock_fd)
    with ChunkStore.open(d) as store:
        assert store.recovery_report.hint_used
        assert store.recovery_report.records_scanned == 11
        for cid, data in [*first[1:], *later]:
            assert store.get(cid) == data
        with pytest.raises(ChunkNotFound):
            store.get(first[0][0])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing-segment"])
def test_bad_hint_falls_back_to_a_full_scan(
    tmp_path: Path, rng: random.Random, damage: str
) -> None:
    d = str(tmp_path)
    chunks = _fill(d, rng, 30)
    path = os.path.join(d, HINT_FILE)
    if damage == "garbage":
        with open(path, "r+b") as f:
            f.seek(60)
            f.write(b"\xde\xad")
    elif damage == "truncated":
        os.truncate(path, 30)
    else:
        with open(path, "rb") as f:
            hint = f.read()
        with ChunkStore.open(d, StoreOptions(segment_bytes_max=4000)) as store:
            store.put(*make_chunk(rng, 3000))  # roll to segment 2
            store.put(*make_chunk(rng, 3000))
        with open(path, "wb") as f:
            f.write(hint)
        os.unlink(segment_path(d, 1))
        chunks = []
    with ChunkStore.open(d) as store:
        assert not store.recovery_report.hint_used
        assert store.recovery_report.hint_problem
        for cid, data in chunks:
            assert store.get(cid) == data


def test_torn_segment_header_of_the_last_segment_is_removed(
    tmp_path: Path, rng: random.Random
) -> None:
    d = str(tmp_path)
    chunks = _fill(d, rng, 5)
    with open(segment_path(d, 2), "wb") as f:
        f.write(b"CSEG\x01")
    with ChunkStore.open(d) as store:
        assert [x.action for x in store.recovery_report.damage] == ["removed"]
        for cid, data in chunks:
            assert store.get(cid) == data


def test_corruption_in_the_middle_is_quarantined(tmp_path: Path, rng: random.Random) -> None:
    d = str(tmp_path)
    chunks = _fill(d, rng, 10, size=200)
    os.unlink(os.path.join(d, HINT_FILE))  # make start-up scan everything
    record = RECORD_HEADER_BYTES + 200
    victim = 4
    with open(segment_path(d, 1), "r+b") as f:
        f.seek(SEGMENT_HEADER_BYTES + victim * record + RECORD_HEADER_BYTES + 50)
        f.write(b"\x00\x01\x02")
    reported: list[bytes] = []
    with ChunkStore.open(d, on_corrupt=lambda cid, _: reported.append(cid)) as store:
        damage = store.recovery_report.corrupt
        assert len(damage) == 1
        assert damage[0].chunk_id == chunks[victim][0]
        assert reported == [chunks[victim][0]]
        with pytest.raises(ChunkNotFound):
            store.get(chunks[victim][0])
        for i, (cid, data) in enumerate(chunks):
            if i != victim:
                assert store.get(cid) == data
        # Repair: the chunk is put again (from another replica).
        assert store.has([chunks[victim][0]]) == set()
        store.put(*chunks[victim])
    with ChunkStore.open(d) as store:
        assert store.get(chunks[victim][0]) == chunks[victim][1]


def test_corruption_found_by_get_is_never_served(tmp_path: Path, rng: random.Random) -> None:
    d = str(tmp_path)
    chunks = _fill(d, rng, 5, size=200)
    record = RECORD_HEADER_BYTES + 200
    with open(segment_path(d, 1), "r+b") as f:
        f.seek(SEGMENT_HEADER_BYTES + 2 * record + 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    with ChunkStore.open(d) as store:  # the hint skips the scan: get must catch it
        with pytest.raises(ChunkCorrupt):
            store.get(chunks[2][0])
        with pytest.raises(ChunkNotFound):
            store.get(chunks[2][0])
        assert [cid for cid, _ in store.corrupt_chunks()] == [chunks[2][0]]
        assert store.get(chunks[3][0]) == chunks[3][1]
