"""WAL record formats and replay rules (pure code): round trips and every refusal."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.raft.wal_record import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    Compaction,
    HardState,
    LogRuleError,
    LogState,
    RecordError,
    WalEntry,
    decode_record,
    decode_segment_header,
    encode_compaction,
    encode_entry,
    encode_hard_state,
    encode_segment_header,
    encode_truncate,
    find_valid_record,
)

U64 = st.integers(min_value=0, max_value=2**64 - 1)

entries = st.builds(
    WalEntry, U64, U64, st.binary(max_size=300), st.integers(min_value=0, max_value=255)
)
hard_states = st.builds(HardState, U64, U64, U64)
compactions = st.builds(Compaction, U64, U64, st.booleans())


def encode(record: object) -> bytes:
    if isinstance(record, WalEntry):
        return encode_entry(record)
    if isinstance(record, HardState):
        return encode_hard_state(record)
    if isinstance(record, Compaction):
        return encode_compaction(record)
    assert isinstance(record, int)
    return encode_truncate(record)


@given(st.lists(st.one_of(entries, hard_states, compactions, U64), max_size=8))
def test_records_round_trip_back_to_back(records: list[object]) -> None:
    buf = encode_segment_header(7) + b"".join(encode(r) for r in records)
    assert decode_segment_header(buf) == 7
    offset = SEGMENT_HEADER_BYTES
    decoded = []
    while offset < len(buf):
        record, offset = decode_record(buf, offset)
        decoded.append(record)
    assert decoded == records


@given(entries, st.data())
def test_any_flipped_bit_is_caught(entry: WalEntry, data: st.DataObject) -> None:
    frame = bytearray(encode_entry(entry))
    bit = data.draw(st.integers(min_value=0, max_value=len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(RecordError):
        decode_record(frame, 0)


def test_every_truncation_of_a_record_is_caught() -> None:
    frame = encode_entry(WalEntry(1, 1, b"payload"))
    for cut in range(len(frame)):
        with pytest.raises(RecordError):
            decode_record(frame[:cut], 0)


def test_zeros_never_decode() -> None:
    with pytest.raises(RecordError, match="magic"):
        decode_record(bytes(64), 0)
    with pytest.raises(RecordError):
        decode_segment_header(bytes(SEGMENT_HEADER_BYTES))


def test_segment_header_refuses_other_versions_and_damage() -> None:
    header = bytearray(encode_segment_header(3))
    header[-1] ^= 1
    with pytest.raises(RecordError, match="checksum"):
        decode_segment_header(header)
    with pytest.raises(RecordError, match="truncated"):
        decode_segment_header(encode_segment_header(3)[:-1])


def test_find_valid_record_skips_garbage_and_lookalikes() -> None:
    good = encode_entry(WalEntry(2, 1, b"x"))
    lookalike = good[:RECORD_HEADER_BYTES] + b"y"  # same header, wrong payload
    buf = b"\x00" * 5 + lookalike + b"junk" + good
    assert find_valid_record(buf, 0) == 5 + len(lookalike) + 4
    assert find_valid_record(buf, len(buf) - len(good) + 1) is None


# -- replay rules ------------------------------------------------------------------------


def replay(*records: object) -> LogState:
    state = LogState()
    for record in records:
        state.apply(record)  # type: ignore[arg-type]
    return state


def e(index: int, term: int = 1) -> WalEntry:
    return WalEntry(index, term, f"e{index}".encode())


def test_entries_truncate_and_overwrite() -> None:
    state = replay(e(1), e(2), e(3), 1, e(2, 2))
    assert [(x.index, x.term) for x in state.entries()] == [(1, 1), (2, 2)]
    assert state.last_index == 2


def keep(index: int, term: int = 1) -> Compaction:
    return Compaction(index, term, keep_log=True)


def drop(index: int, term: int = 1) -> Compaction:
    return Compaction(index, term, keep_log=False)


@pytest.mark.parametrize(
    "records",
    [
        (e(1), e(3)),  # gap
        (e(1), e(1)),  # overwrite without a truncate record
        (e(1, 2), e(2, 1)),  # term goes back
        (drop(5), 4),  # truncate below the floor
        (drop(5), drop(4)),  # floor goes back
        (drop(5, 2), e(5, 2)),  # entry at the floor
        (e(1), e(2), keep(2, 7)),  # keeps a log whose entry has another term
        (e(1), e(2), keep(3)),  # keeps a log that does not reach the mark
        (HardState(2, 1, 0), HardState(1, 1, 0)),  # term goes back
        (HardState(2, 1, 0), HardState(2, 3, 0)),  # second vote in one term
    ],
)
def test_records_the_writer_cannot_produce_are_refused(records: tuple[object, ...]) -> None:
    with pytest.raises(LogRuleError):
        replay(*records)


def test_compaction_keeps_the_matching_suffix_or_drops_the_log() -> None:
    state = replay(e(1), e(2), e(3))
    assert state.compaction_for(2, 1) == keep(2)
    assert state.compaction_for(2, 9) == drop(2, 9)
    assert state.compaction_for(10, 3) == drop(10, 3)
    kept = replay(e(1), e(2), e(3), keep(2))
    assert [x.index for x in kept.entries()] == [3]
    dropped = replay(e(1), e(2), e(3), drop(2, 9))
    assert dropped.entries() == []
    assert dropped.last_index == 2
    beyond = replay(e(1), drop(10, 3), e(11, 3))
    assert [x.index for x in beyond.entries()] == [11]


def test_a_kept_log_whose_prefix_was_deleted_replays() -> None:
    # Segments holding 1..25 were deleted; the mark is seen after entries 26.. only.
    state = replay(e(26), e(27), keep(25))
    assert [x.index for x in state.entries()] == [26, 27]
    assert state.check_complete() is None


def test_a_hole_below_the_first_entry_is_reported() -> None:
    assert replay(e(5)).check_complete() is not None
    assert replay(e(5), e(6), keep(6)).check_complete() is None
    assert replay(drop(4), e(5, 1)).check_complete() is None


def test_repeating_the_current_mark_is_a_no_op() -> None:
    state = replay(drop(4), e(5), drop(4))
    assert [x.index for x in state.entries()] == [5]
