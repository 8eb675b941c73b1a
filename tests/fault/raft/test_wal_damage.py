"""Damage every byte of a multi-segment WAL, and cut its last segment at every offset.

What must hold (docs/design/raft-wal.md): recovery either refuses with `WalCorrupt`
naming the damaged file, or returns exactly the acknowledged log, minus at most the very
last record when the damage lies inside that record (indistinguishable from a torn write).
It never returns altered data and never silently drops a record in the middle.
"""

import os
from pathlib import Path

import pytest

from cairn.raft.wal import HardState, Wal, WalCorrupt, WalEntry
from cairn.raft.wal_record import SEGMENT_HEADER_BYTES, decode_record

SEGMENT_SIZE_BYTES_MAX = 300
ENTRY_COUNT = 24


def entry(index: int) -> WalEntry:
    return WalEntry(index, 1 + index // 10, bytes([index]) * (index % 13), kind=index % 2)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    wal, _ = Wal.open(tmp_path, SEGMENT_SIZE_BYTES_MAX)
    for index in range(1, ENTRY_COUNT + 1):
        if index % 10 == 0:
            wal.set_hard_state(HardState(1 + index // 10, 1, index - 1))
        wal.append([entry(index)])
        wal.sync()
    assert len(wal.segment_paths()) >= 4
    wal.close()
    return tmp_path


def poke(path: Path, position: int, value: int) -> None:
    """Overwrite one byte in place (much faster here than rewriting the file)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes([value]), position)
    finally:
        os.close(fd)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def records(buf: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, is_entry) of each record of a segment."""
    found, offset = [], SEGMENT_HEADER_BYTES
    while offset < len(buf):
        record, end = decode_record(buf, offset)
        found.append((offset, end, isinstance(record, WalEntry)))
        offset = end
    return found


def test_every_flipped_byte_is_refused_or_costs_only_the_torn_last_record(log_dir: Path) -> None:
    originals = {p: p.read_bytes() for p in segments(log_dir)}
    last = segments(log_dir)[-1]
    last_record_start = records(originals[last])[-1][0]
    full = [entry(i) for i in range(1, ENTRY_COUNT + 1)]
    outcomes = {"refused": 0, "torn": 0}
    for path, original in originals.items():
        for position in range(len(original)):
            poke(path, position, original[position] ^ (1 << (position % 8)))
            try:
                wal, recovered = Wal.open(log_dir, SEGMENT_SIZE_BYTES_MAX)
            except WalCorrupt as exc:
                assert exc.path == str(path), (path.name, position)
                assert not (path == last and position >= last_record_start), position
                outcomes["refused"] += 1
            else:
                wal.close()
                assert path == last and position >= last_record_start, (path.name, position)
                assert recovered.entries == full[:-1]
                assert recovered.torn_tail is not None
                outcomes["torn"] += 1
            if path.stat().st_size == len(original):
                poke(path, position, original[position])
            else:  # recovery cut the torn tail
                path.write_bytes(original)
    assert outcomes["torn"] == len(originals[last]) - last_record_start
    assert outcomes["refused"] > 1000


def test_cutting_the_last_segment_anywhere_keeps_every_whole_record(log_dir: Path) -> None:
    last = segments(log_dir)[-1]
    original = last.read_bytes()
    found = records(original)
    in_older = ENTRY_COUNT - sum(is_entry for _, _, is_entry in found)
    for cut in range(len(original) + 1):
        os.truncate(last, cut)
        wal, recovered = Wal.open(log_dir, SEGMENT_SIZE_BYTES_MAX)
        wal.close()
        whole = sum(is_entry for _, end, is_entry in found if end <= cut)
        assert [e.index for e in recovered.entries] == list(range(1, in_older + whole + 1)), cut
        boundaries = {SEGMENT_HEADER_BYTES, *(end for _, end, _ in found)}
        assert (recovered.torn_tail is None) == (cut in boundaries), cut
        if not last.exists():  # a segment cut inside its header is removed
            last.write_bytes(original)
        with last.open("ab") as f:  # put back what the cut and the recovery took
            f.write(original[last.stat().st_size :])


def test_cutting_an_older_segment_is_refused(log_dir: Path) -> None:
    older = segments(log_dir)[1]
    original = older.read_bytes()
    for cut in range(len(original)):
        older.write_bytes(original[:cut])
        with pytest.raises(WalCorrupt) as info:
            Wal.open(log_dir, SEGMENT_SIZE_BYTES_MAX)
        assert info.value.path == str(older)  # torn inside a record, or lost its seal
    older.write_bytes(original)
