"""The WAL on real files: durability, segments, compaction, torn tails, corruption."""

import asyncio
import os
from pathlib import Path

import pytest

from cairn.base.errors import CairnError
from cairn.raft.wal import HardState, SnapshotMark, Wal, WalCorrupt, WalEntry, WalError
from cairn.raft.wal_record import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    Seal,
    encode_entry,
    encode_seal,
)


def e(index: int, term: int = 1, size: int = 10) -> WalEntry:
    return WalEntry(index, term, bytes([index % 256]) * size, kind=index % 3)


def reopen(path: Path, **kw: int) -> tuple[Wal, list[WalEntry]]:
    wal, rec = Wal.open(path, **kw)
    return wal, rec.entries


def test_fresh_wal_is_empty(tmp_path: Path) -> None:
    wal, rec = Wal.open(tmp_path / "wal")
    assert rec.entries == []
    assert rec.hard_state == HardState()
    assert rec.snapshot_mark is None
    assert rec.torn_tail is None
    assert (wal.first_index, wal.last_index) == (1, 0)
    wal.close()


def test_synced_entries_and_hard_state_survive_reopen(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    fsyncs = wal.stats.fsyncs
    wal.append([e(1), e(2), e(3, 2)])
    wal.set_hard_state(HardState(term=2, vote=3, commit=2))
    assert wal.has_unsynced
    assert wal.durable_last_index == 0
    wal.sync()
    assert wal.durable_last_index == 3
    assert wal.durable_hard_state == HardState(2, 3, 2)
    assert wal.stats.fsyncs == fsyncs + 1  # one group commit, one fsync
    wal.close()
    wal, rec = Wal.open(tmp_path)
    assert rec.entries == [e(1), e(2), e(3, 2)]
    assert rec.hard_state == HardState(2, 3, 2)
    assert wal.term_at(3) == 2
    wal.close()


def test_unsynced_records_are_not_durable(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append([e(1)])
    wal.sync()
    wal.append([e(2)])
    wal.set_hard_state(HardState(5, 0, 0))
    wal.close()  # like a crash: the buffer is gone
    wal, rec = Wal.open(tmp_path)
    assert rec.entries == [e(1)]
    assert rec.hard_state == HardState()
    wal.close()


def test_overwrite_truncates_the_conflicting_suffix_durably(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append([e(1), e(2), e(3), e(4)])
    wal.sync()
    wal.append([e(3, 2), e(4, 2), e(5, 2)])
    wal.sync()
    assert wal.last_index == 5
    wal.close()
    wal, entries = reopen(tmp_path)
    assert entries == [e(1), e(2), e(3, 2), e(4, 2), e(5, 2)]
    wal.append([e(2, 3)])  # overwrite shrinking the log
    wal.sync()
    wal.close()
    wal, entries = reopen(tmp_path)
    assert entries == [e(1), e(2, 3)]
    wal.close()


@pytest.mark.parametrize(
    "batch",
    [
        [e(3)],  # gap after last
        [e(0)],  # at the floor
        [e(1), e(3)],  # not consecutive
        [e(2, 0)],  # term below the previous
    ],
)
def test_bad_appends_are_refused_and_buffer_nothing(tmp_path: Path, batch: list[WalEntry]) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append([e(1)])
    wal.sync()
    with pytest.raises(ValueError):
        wal.append(batch)
    assert not wal.has_unsynced
    assert wal.last_index == 1
    wal.close()


def test_vote_cannot_change_within_a_term(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.set_hard_state(HardState(term=4, vote=0, commit=0))
    wal.set_hard_state(HardState(term=4, vote=2, commit=0))
    with pytest.raises(ValueError, match="vote changed"):
        wal.set_hard_state(HardState(term=4, vote=3, commit=0))
    with pytest.raises(ValueError, match="term went back"):
        wal.set_hard_state(HardState(term=3, vote=0, commit=0))
    wal.set_hard_state(HardState(term=5, vote=3, commit=0))
    assert wal.durable_hard_state == HardState()  # nothing durable before sync
    wal.sync()
    assert wal.durable_hard_state == HardState(5, 3, 0)
    wal.close()


def test_segments_roll_at_the_size_limit_and_replay_in_order(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_size_bytes_max=256)
    wal.set_hard_state(HardState(1, 1, 0))
    for i in range(1, 41):
        wal.append([e(i, size=30)])
        if i % 7 == 0:
            wal.sync()
    wal.sync()
    paths = wal.segment_paths()
    assert len(paths) > 5
    assert all(p.stat().st_size <= 256 for p in paths)
    wal.close()
    wal, rec = Wal.open(tmp_path, segment_size_bytes_max=256)
    assert rec.entries == [e(i, size=30) for i in range(1, 41)]
    assert rec.hard_state == HardState(1, 1, 0)
    wal.close()


def test_a_record_larger_than_a_segment_gets_one_to_itself(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_size_bytes_max=128)
    wal.append([e(1, size=500), e(2, size=500)])
    wal.sync()
    assert len(wal.segment_paths()) == 2
    wal.close()
    wal, entries = reopen(tmp_path)
    assert entries == [e(1, size=500), e(2, size=500)]
    wal.close()


def test_compaction_removes_whole_segments_and_keeps_state(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_size_bytes_max=200)
    wal.set_hard_state(HardState(3, 2, 0))
    wal.append([e(i, 3, size=40) for i in range(1, 31)])
    wal.set_hard_state(HardState(3, 2, 25))
    wal.sync()
    before = wal.segment_paths()
    wal.compact(25, 3)
    assert wal.segment_paths() == before  # buffered until the next sync
    wal.sync()
    after = wal.segment_paths()
    assert wal.stats.segments_removed > 0
    assert len(after) < len(before)
    assert before[0] not in after
    assert all(p.exists() for p in after)
    assert wal.first_index == 26
    wal.close()
    wal, rec = Wal.open(tmp_path, segment_size_bytes_max=200)
    assert rec.snapshot_mark == SnapshotMark(25, 3)
    assert rec.entries == [e(i, 3, size=40) for i in range(26, 31)]
    assert rec.hard_state == HardState(3, 2, 25)
    wal.append([e(31, 3)])
    wal.compact(20, 3)  # below the floor: no-op
    assert wal.snapshot_mark == SnapshotMark(25, 3)
    wal.close()


def test_compaction_past_the_log_or_to_another_term_drops_everything(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_size_bytes_max=200)
    wal.append([e(i, size=40) for i in range(1, 11)])
    wal.compact(50, 4)  # a follower installed the leader's snapshot
    wal.sync()
    assert len(wal.segment_paths()) == 1
    assert wal.last_index == 50
    with pytest.raises(ValueError):
        wal.append([e(52, 4)])
    wal.append([e(51, 4)])
    wal.sync()
    wal.close()
    wal, rec = Wal.open(tmp_path, segment_size_bytes_max=200)
    assert rec.snapshot_mark == SnapshotMark(50, 4)
    assert rec.entries == [e(51, 4)]
    wal.close()


def test_segment_size_has_a_floor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment_size_bytes_max"):
        Wal.open(tmp_path, segment_size_bytes_max=10)


def test_only_one_open_wal_per_directory(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    with pytest.raises(WalError, match="locked"):
        Wal.open(tmp_path)
    wal.close()
    wal, _ = Wal.open(tmp_path)
    wal.close()
    with pytest.raises(WalError, match="closed"):
        wal.append([e(1)])


async def test_sync_async_coalesces_concurrent_callers(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)

    async def propose(index: int) -> int:
        wal.append([e(index)])
        await wal.sync_async()
        assert wal.durable_last_index >= index
        return index

    done = await asyncio.gather(*(propose(i) for i in range(1, 65)))
    assert done == list(range(1, 65))
    assert wal.stats.syncs <= 3  # 64 proposals, a handful of fsyncs
    await wal.sync_async()  # nothing buffered: returns at once
    wal.close()
    wal, entries = reopen(tmp_path)
    assert entries == [e(i) for i in range(1, 65)]
    wal.close()


async def test_sync_async_leaves_the_event_loop_running(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append([e(i, size=4096) for i in range(1, 2001)])  # 8 MiB to write and fsync
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await wal.sync_async()
    stop.set()
    await task
    assert ticks > 1  # the loop kept running while the worker thread wrote
    assert wal.durable_last_index == 2000
    wal.close()


async def test_a_failed_write_fails_every_waiter_and_later_call(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append([e(1)])
    os.close(wal._fd)  # the disk goes away under the writer
    with pytest.raises(OSError):
        await wal.sync_async()
    with pytest.raises(WalError, match="earlier WAL write failed"):
        wal.append([e(2)])
    wal._fd = -1
    wal.close()


# -- recovery ----------------------------------------------------------------------------


def write_log(path: Path, count: int, size: int = 20, **kw: int) -> list[Path]:
    wal, _ = Wal.open(path, **kw)
    for i in range(1, count + 1):
        wal.append([e(i, size=size)])
        wal.sync()  # one record per sync, so each record was acknowledged on its own
    paths = wal.segment_paths()
    wal.close()
    return paths


def test_torn_tail_at_every_offset_of_the_last_record_recovers_the_rest(tmp_path: Path) -> None:
    (segment,) = write_log(tmp_path / "src", 3)
    whole = segment.read_bytes()
    last_record = len(whole) - len(encode_entry(e(3, size=20)))
    for cut in range(last_record, len(whole)):
        work = tmp_path / f"cut{cut}"
        work.mkdir()
        (work / segment.name).write_bytes(whole[:cut])
        wal, rec = Wal.open(work)
        assert rec.entries == [e(1, size=20), e(2, size=20)], cut
        if cut > last_record:
            assert rec.torn_tail is not None
            assert rec.torn_tail.offset == last_record
        assert (work / segment.name).stat().st_size == last_record
        wal.append([e(3, size=20)])  # the log goes on from the cut
        wal.sync()
        wal.close()
        assert reopen(work)[1] == [e(i, size=20) for i in (1, 2, 3)]


@pytest.mark.parametrize("tail", [b"\x00" * 4096, b"\xff" * 7])
def test_garbage_or_zeros_after_the_last_record_are_torn(tmp_path: Path, tail: bytes) -> None:
    (segment,) = write_log(tmp_path, 3)
    with segment.open("ab") as f:
        f.write(tail)
    wal, rec = Wal.open(tmp_path)
    assert len(rec.entries) == 3
    assert rec.torn_tail is not None
    assert rec.torn_tail.bytes_dropped == len(tail)
    wal.close()


def test_bad_checksum_on_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    (segment,) = write_log(tmp_path, 3)
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0x40
    segment.write_bytes(data)
    wal, rec = Wal.open(tmp_path)
    assert len(rec.entries) == 2
    assert rec.torn_tail is not None
    assert "checksum" in rec.torn_tail.reason
    wal.close()


def test_corruption_followed_by_valid_records_is_refused(tmp_path: Path) -> None:
    (segment,) = write_log(tmp_path, 5)
    data = bytearray(segment.read_bytes())
    second = SEGMENT_HEADER_BYTES + len(encode_entry(e(1, size=20)))
    data[second + RECORD_HEADER_BYTES + 3] ^= 0x01  # a bit in the second record's payload
    segment.write_bytes(data)
    with pytest.raises(WalCorrupt) as info:
        Wal.open(tmp_path)
    assert info.value.path == str(segment)
    assert info.value.offset == second
    assert isinstance(info.value, CairnError)
    assert segment.stat().st_size == len(data)  # nothing was cut
    # A damaged length field is refused just the same.
    data[second + RECORD_HEADER_BYTES + 3] ^= 0x01
    data[second + 8] ^= 0x10
    segment.write_bytes(data)
    with pytest.raises(WalCorrupt, match=f"offset {second}"):
        Wal.open(tmp_path)


def test_any_damage_in_a_segment_that_is_not_the_last_is_refused(tmp_path: Path) -> None:
    paths = write_log(tmp_path, 20, segment_size_bytes_max=200)
    assert len(paths) >= 3
    first = paths[0]
    first.write_bytes(first.read_bytes()[:-3])  # "torn" tail, but not in the last segment
    with pytest.raises(WalCorrupt, match=first.name):
        Wal.open(tmp_path)


def test_a_missing_segment_is_refused(tmp_path: Path) -> None:
    paths = write_log(tmp_path, 20, segment_size_bytes_max=200)
    paths[1].unlink()
    with pytest.raises(WalCorrupt, match="missing"):
        Wal.open(tmp_path)
    paths = write_log(tmp_path / "b", 20, segment_size_bytes_max=200)
    paths[0].unlink()  # the oldest, with no snapshot mark to cover it
    with pytest.raises(WalCorrupt, match="missing"):
        Wal.open(tmp_path / "b")


def test_a_segment_torn_while_being_created_is_removed(tmp_path: Path) -> None:
    paths = write_log(tmp_path, 8, segment_size_bytes_max=200)
    number = int(paths[-1].name.split(".")[0]) + 1
    with paths[-1].open("ab") as f:  # the roll sealed the old segment...
        f.write(encode_seal(Seal(number)))
    torn = tmp_path / f"{number:020d}.wal"
    torn.write_bytes(b"CWAL\x01")  # ...and died writing the new one's header
    wal, rec = Wal.open(tmp_path, segment_size_bytes_max=200)
    assert len(rec.entries) == 8
    assert rec.torn_tail is not None
    assert rec.torn_tail.path == str(torn)
    assert torn.exists()  # removed, then created again by the open
    assert torn.stat().st_size == SEGMENT_HEADER_BYTES
    wal.append([e(9, size=20)])
    wal.sync()
    wal.close()
    assert len(reopen(tmp_path)[1]) == 9


def test_an_unsealed_older_segment_is_refused_even_at_a_record_boundary(tmp_path: Path) -> None:
    paths = write_log(tmp_path, 20, segment_size_bytes_max=200)
    older = paths[1]
    data = older.read_bytes()
    older.write_bytes(data[: len(data) - len(encode_seal(Seal(0)))])  # drop just the seal
    with pytest.raises(WalCorrupt, match="not sealed") as info:
        Wal.open(tmp_path)
    assert info.value.path == str(older)


def test_a_damaged_header_of_a_segment_with_records_is_refused(tmp_path: Path) -> None:
    (segment,) = write_log(tmp_path, 3)
    data = bytearray(segment.read_bytes())
    data[10] ^= 1
    segment.write_bytes(data)
    with pytest.raises(WalCorrupt, match="offset 0"):
        Wal.open(tmp_path)


async def test_inline_sync_is_durable_and_defers_to_a_threaded_sync_in_flight(
    tmp_path: Path,
) -> None:
    """The driver's follower path: `sync_inline` writes and fsyncs on the caller's thread;
    while a threaded sync is in flight it does nothing and says so, and the caller awaits."""
    wal, _ = Wal.open(tmp_path)
    wal.append([e(1), e(2)])
    wal.set_hard_state(HardState(term=1, vote=2, commit=1))
    assert wal.sync_inline()
    assert wal.durable_last_index == 2 and wal.durable_hard_state == HardState(1, 2, 1)
    wal.append([e(3)])
    threaded = asyncio.ensure_future(wal.sync_async())
    await asyncio.sleep(0)  # one loop turn: the task runs until it hands its batch to a thread
    wal.append([e(4)])
    assert not wal.sync_inline()
    await threaded
    await wal.sync_async()
    assert wal.durable_last_index == 4
    wal.close()
    reopened, entries = reopen(tmp_path)
    assert [x.index for x in entries] == [1, 2, 3, 4]
    reopened.close()
