"""Flipped bits and truncated files, at seeded random places in real store files:
damage is detected and reported, and a damaged chunk is never served.

The contract checked for every chunk after the damage: `get` returns exactly the
bytes that were put, or raises `ChunkCorrupt` / `ChunkNotFound`; and every chunk whose
record bytes were hit is reported (by start-up recovery, `get` or the scrubber).
"""

import hashlib
import os
import random
from pathlib import Path

import pytest

from cairn.chunkstore import (
    ChunkCorrupt,
    ChunkNotFound,
    ChunkStore,
    Location,
    Scrubber,
    StoreOptions,
)
from cairn.chunkstore.hint import HINT_FILE
from cairn.chunkstore.segment import list_segment_numbers, segment_path

OPTIONS = StoreOptions(segment_bytes_max=64 * 1024, fsync="none")
CHUNKS = 120
TRIALS = 20


def _populate(
    directory: str, rng: random.Random
) -> tuple[dict[bytes, bytes], dict[bytes, Location]]:
    chunks = {}
    with ChunkStore.open(directory, OPTIONS) as store:
        for _ in range(CHUNKS):
            data = rng.randbytes(rng.randrange(1, 3000))
            cid = hashlib.sha256(data).digest()
            store.put(cid, data)
            chunks[cid] = data
        for cid in list(chunks)[:10]:
            store.delete(cid)
            del chunks[cid]
        locations = dict(store.live_locations())
    return chunks, locations


def _check_never_served(
    store: ChunkStore, chunks: dict[bytes, bytes], must_report: set[bytes]
) -> None:
    Scrubber(store, io_bytes_per_s_max=0).run_once()
    served = set()
    for cid, data in chunks.items():
        try:
            got = store.get(cid)
        except (ChunkCorrupt, ChunkNotFound):
            continue
        assert got == data
        served.add(cid)
    reported = {cid for cid, _ in store.corrupt_chunks()}
    reported |= {d.chunk_id for d in store.recovery_report.damage if d.chunk_id}
    # Every hit chunk that is not served must be accounted for by a report.
    assert not served & must_report
    missing = (set(chunks) - served) - reported
    if store.recovery_report.damage:
        return  # ranges whose ids were unreadable are reported as ranges
    assert not missing, [m.hex() for m in missing]
    for cid in store.ids():  # nothing unknown is served either
        assert hashlib.sha256(store.get(cid)).digest() == cid


@pytest.mark.parametrize("seed", range(TRIALS))
@pytest.mark.parametrize("with_hint", [True, False])
def test_flipped_bits_are_detected_and_never_served(
    tmp_path: Path, seed: int, with_hint: bool
) -> None:
    rng = random.Random(seed)
    d = str(tmp_path)
    chunks, locations = _populate(d, rng)
    if not with_hint:
        os.unlink(os.path.join(d, HINT_FILE))
    numbers = list_segment_numbers(d)
    hit: set[bytes] = set()
    for _ in range(rng.randrange(1, 6)):
        number = rng.choice(numbers)
        path = segment_path(d, number)
        size = os.path.getsize(path)
        offset = rng.randrange(size)
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ (1 << rng.randrange(8))]))
        for cid, loc in locations.items():
            if loc.segment == number and loc.offset <= offset < loc.offset + loc.record_bytes:
                hit.add(cid)
    with ChunkStore.open(d, OPTIONS) as store:
        _check_never_served(store, chunks, hit)
        # Each hit chunk is reported by id, or (when the flip hit the id bytes themselves)
        # its record lies in a damaged range that start-up recovery reported.
        reported = {cid for cid, _ in store.corrupt_chunks()}
        for cid in hit - reported:
            loc = locations[cid]
            assert any(
                dmg.segment == loc.segment
                and dmg.start < loc.offset + loc.record_bytes
                and loc.offset < dmg.end
                for dmg in store.recovery_report.damage
            ), seed


@pytest.mark.parametrize("seed", range(TRIALS))
def test_truncated_segments_are_detected_and_never_served(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    d = str(tmp_path)
    chunks, _ = _populate(d, rng)
    numbers = list_segment_numbers(d)
    number = rng.choice(numbers)
    path = segment_path(d, number)
    os.truncate(path, rng.randrange(os.path.getsize(path)))
    with ChunkStore.open(d, OPTIONS) as store:
        report = store.recovery_report
        assert not report.hint_used  # the hint no longer matches the files
        assert report.damage or number == numbers[-1]
        _check_never_served(store, chunks, set())


def test_damaged_hint_is_detected(tmp_path: Path) -> None:
    rng = random.Random(99)
    d = str(tmp_path)
    chunks, _ = _populate(d, rng)
    path = os.path.join(d, HINT_FILE)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\x55")
    with ChunkStore.open(d, OPTIONS) as store:
        assert store.recovery_report.hint_problem == "hint checksum mismatch"
        for cid, data in chunks.items():
            assert store.get(cid) == data
