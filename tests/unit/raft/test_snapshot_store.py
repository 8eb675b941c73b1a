"""Snapshot files: round trips, retention, and falling back past a damaged newest file."""

from pathlib import Path

import pytest

from cairn.raft.snapshot_store import (
    SNAPSHOT_HEADER_BYTES,
    SnapshotStore,
    StoredSnapshot,
)


def test_empty_store_has_no_snapshot(tmp_path: Path) -> None:
    assert SnapshotStore(tmp_path / "snaps").load_latest() is None


def test_save_and_load_bytes_and_chunks(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(10, 2, b"voters=1,2,3", b"state" * 1000)
    latest = store.load_latest()
    assert latest == StoredSnapshot(
        10, 2, b"voters=1,2,3", b"state" * 1000, str(store.paths()[0]), ()
    )
    store.save(20, 3, b"", iter([b"a" * 10, b"", b"b" * 70000]))
    latest = store.load_latest()
    assert latest is not None
    assert (latest.index, latest.term, latest.config) == (20, 3, b"")
    assert latest.data == b"a" * 10 + b"b" * 70000
    store.save(30, 3, b"c", memoryview(b"from a view"))
    latest = store.load_latest()
    assert latest is not None
    assert latest.data == b"from a view"


def test_only_the_newest_two_are_kept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for index in (5, 9, 12, 30):
        store.save(index, 1, b"c", b"d%d" % index)
    assert [p.name[:20] for p in store.paths()] == [f"{30:020d}", f"{12:020d}"]
    latest = store.load_latest()
    assert latest is not None
    assert latest.data == b"d30"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) - 1], id="truncated-body"),
        pytest.param(lambda b: b[:10], id="truncated-header"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="flipped-data-bit"),
        pytest.param(lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], id="flipped-header-bit"),
        pytest.param(lambda b: b + b"x", id="extra-byte"),
    ],
)
def test_a_damaged_newest_snapshot_falls_back_to_the_older(tmp_path: Path, damage: object) -> None:
    store = SnapshotStore(tmp_path)
    store.save(5, 1, b"old", b"older state")
    newest = store.save(9, 2, b"new", b"newer state")
    newest.write_bytes(damage(newest.read_bytes()))  # type: ignore[operator]
    latest = SnapshotStore(tmp_path).load_latest()
    assert latest is not None
    assert (latest.index, latest.data) == (5, b"older state")
    assert [s.path for s in latest.skipped] == [str(newest)]


def test_a_file_whose_name_and_header_disagree_is_skipped(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(5, 1, b"", b"five")
    eight = store.save(8, 1, b"", b"eight")
    renamed = eight.with_name(f"{9:020d}-{1:020d}.snap")
    eight.rename(renamed)
    latest = store.load_latest()
    assert latest is not None
    assert latest.index == 5
    assert "name says" in latest.skipped[0].reason


def test_no_valid_snapshot_gives_none(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = store.save(5, 1, b"", b"x")
    path.write_bytes(bytes(SNAPSHOT_HEADER_BYTES))
    assert store.load_latest() is None


def test_leftovers_of_a_crashed_save_are_removed(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for index in (1, 2):
        store.save(index, 1, b"", b"x")
    (tmp_path / f"{3:020d}-{1:020d}.snap.tmp").write_bytes(b"half")
    # A crash between the rename and the pruning leaves three files.
    (tmp_path / f"{0:020d}-{1:020d}.snap").write_bytes(b"old")
    store = SnapshotStore(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{1:020d}-{1:020d}.snap",
        f"{2:020d}-{1:020d}.snap",
    ]
    latest = store.load_latest()
    assert latest is not None
    assert latest.index == 2


def test_a_failing_chunk_iterator_leaves_no_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(1, 1, b"", b"one")

    def chunks() -> object:
        yield b"abc"
        raise OSError("peer went away")

    with pytest.raises(OSError, match="peer"):
        store.save(2, 1, b"", chunks())  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir()] == [f"{1:020d}-{1:020d}.snap"]
