"""HintStore: durable one-file hints, reopened, checked, limited."""

import os
from pathlib import Path

import pytest

from cairn.node.hints import (
    HINT_HEADER_BYTES,
    HintCorrupt,
    HintNotFound,
    HintStore,
    HintStoreFull,
    decode_hint,
    encode_hint,
)

A = bytes(range(32))
B = bytes(range(1, 33))


def hint_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.hint"))


async def test_put_get_delete_and_reopen(tmp_path: Path) -> None:
    store = HintStore.open(tmp_path)
    assert await store.put("m1", A, b"record-a")
    assert not await store.put("m1", A, b"record-a")  # already held
    assert await store.put("m2", A, b"record-a")  # same chunk, another target
    assert await store.put("m2", B, b"record-bb")
    assert (store.count, store.record_bytes) == (3, 8 + 8 + 9)
    assert sorted(store.targets()) == ["m1", "m2"]
    assert store.chunk_ids("m2") == sorted([A, B])

    reopened = HintStore.open(tmp_path)
    assert (reopened.count, reopened.record_bytes) == (3, 25)
    assert await reopened.get("m2", B) == b"record-bb"

    assert await reopened.delete("m1", A)
    assert not await reopened.delete("m1", A)
    assert reopened.targets() == ["m2"]
    with pytest.raises(HintNotFound):
        await reopened.get("m1", A)
    assert HintStore.open(tmp_path).count == 2


def test_open_removes_temporaries_and_damaged_files(tmp_path: Path) -> None:
    target_dir = tmp_path / ("0" * 32)
    target_dir.mkdir()
    (target_dir / f"{A.hex()}.hint.7.tmp").write_bytes(b"half written")
    (target_dir / f"{A.hex()}.hint").write_bytes(b"garbage header")
    store = HintStore.open(tmp_path)
    assert store.count == 0
    assert not target_dir.exists()  # emptied, so removed


async def test_open_drops_truncated_hint(tmp_path: Path) -> None:
    store = HintStore.open(tmp_path)
    await store.put("m1", A, b"x" * 100)
    (path,) = hint_files(tmp_path)
    os.truncate(path, path.stat().st_size - 1)
    assert HintStore.open(tmp_path).count == 0
    assert not path.exists()


async def test_get_verifies_checksum_and_drops_corrupt_hint(tmp_path: Path) -> None:
    store = HintStore.open(tmp_path)
    await store.put("m1", A, b"y" * 100)
    (path,) = hint_files(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(HintCorrupt):
        await store.get("m1", A)
    assert store.count == 0
    assert not path.exists()


async def test_limits(tmp_path: Path) -> None:
    store = HintStore.open(tmp_path, hint_count_max=1, hint_bytes_max=10)
    with pytest.raises(HintStoreFull):
        await store.put("m1", A, b"z" * 11)
    await store.put("m1", A, b"z" * 10)
    with pytest.raises(HintStoreFull):
        await store.put("m1", B, b"")
    assert store.count == 1


def test_format_round_trip_and_checks() -> None:
    data = b"".join(encode_hint("member-é", A, b"payload"))
    assert len(data) == HINT_HEADER_BYTES + len("member-é".encode()) + 7
    assert decode_hint(data) == ("member-é", A, b"payload")
    with pytest.raises(HintCorrupt):
        decode_hint(data[:-1])
    with pytest.raises(HintCorrupt):
        decode_hint(b"XXXX" + data[4:])
    flipped = bytearray(data)
    flipped[10] ^= 1  # a byte of the record length
    with pytest.raises(HintCorrupt):
        decode_hint(bytes(flipped))
