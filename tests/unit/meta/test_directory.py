"""The shard directory: bootstrap, split, merge, replicas, lookups, epochs, snapshots, and a
rule-based run against a model of sorted split points."""

from __future__ import annotations

from bisect import bisect_right

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cairn.meta.directory import (
    FIRST_SHARD_GROUP_ID,
    Bootstrap,
    DirectoryCommand,
    DirectoryError,
    InvalidSplit,
    MergeShards,
    NotBootstrapped,
    SetReplicas,
    ShardDirectory,
    ShardInfo,
    SplitDone,
    SplitShard,
    UnknownShard,
    encode_command,
)
from cairn.meta.machine import CommandFormatError
from cairn.placement import encode_object_key


class Directory:
    def __init__(self) -> None:
        self.d = ShardDirectory()
        self.index = 0

    def run(self, command: DirectoryCommand) -> object:
        self.index += 1
        return self.d.apply(self.index, encode_command(command))


def test_bootstrap_split_lookup_merge() -> None:
    t = Directory()
    assert t.d.shards() == [] and t.d.epoch == 0
    with pytest.raises(NotBootstrapped):
        t.d.lookup(b"x")
    assert isinstance(t.run(SplitShard(b"m")), NotBootstrapped)
    first = t.run(Bootstrap(("n1", "n2", "n3")))
    assert first == ShardInfo(FIRST_SHARD_GROUP_ID, b"", None, ("n1", "n2", "n3"), 1)
    assert isinstance(t.run(Bootstrap(("n1",))), DirectoryError)
    at = encode_object_key("photos", "m")
    assert isinstance(t.run(SplitShard(at, ("n4", "n5", "n6"))), InvalidSplit), "own replicas"
    upper = t.run(SplitShard(at, ("n1", "n2", "n3")))
    assert upper == ShardInfo(2, at, None, ("n1", "n2", "n3"), 2, parent=1)
    assert t.d.pending_splits() == [upper]
    assert isinstance(t.run(SplitShard(b"zz")), InvalidSplit), "one split pending at a time"
    assert isinstance(t.run(MergeShards(1)), InvalidSplit), "no merge while one is pending"
    done = t.run(SplitDone(2))
    assert done == ShardInfo(2, at, None, ("n1", "n2", "n3"), 2)
    assert t.run(SplitDone(2)) == done and t.d.pending_splits() == [], "a retry is a no-op"
    moved = t.run(SetReplicas(2, ("n4", "n5", "n6")))
    assert moved == ShardInfo(2, at, None, ("n4", "n5", "n6"), 3)
    assert t.d.lookup_object("photos", "a").group_id == 1
    assert t.d.lookup_object("photos", "m").group_id == 2
    assert t.d.lookup_object("zebra", "a").group_id == 2
    assert t.d.lookup_object("abc", "zzz").group_id == 1
    third = t.run(SplitShard(encode_object_key("photos", "f")))
    assert isinstance(third, ShardInfo) and third.replicas == ("n1", "n2", "n3"), "inherited"
    assert third.parent == 1
    t.run(SplitDone(3))
    assert [s.group_id for s in t.d.shards()] == [1, 3, 2]
    assert t.d.groups_of_node("n1") == [1, 3] and t.d.groups_of_node("n5") == [2]
    assert isinstance(t.run(SplitShard(at)), InvalidSplit), "already a boundary"
    assert isinstance(t.run(SplitShard(b"")), InvalidSplit)
    merged = t.run(MergeShards(1))
    assert isinstance(merged, ShardInfo) and merged.end == at
    assert [s.group_id for s in t.d.shards()] == [1, 2]
    assert isinstance(t.run(MergeShards(2)), InvalidSplit), "no right neighbour"
    assert isinstance(t.run(MergeShards(3)), UnknownShard)
    moved = t.run(SetReplicas(2, ("n1", "n7")))
    assert isinstance(moved, ShardInfo) and moved.replicas == ("n1", "n7")
    assert t.d.epoch == moved.epoch == 6
    with pytest.raises(DirectoryError):
        t.d.lookup_object("a\x00b", "k")


@pytest.mark.parametrize(
    "replicas", [(), ("n1", "n1"), ("",), ("x" * 256,), tuple(f"n{i}" for i in range(17))]
)
def test_bad_replica_sets(replicas: tuple[str, ...]) -> None:
    t = Directory()
    assert isinstance(t.run(Bootstrap(replicas)), DirectoryError)
    t.run(Bootstrap(("n1",)))
    assert isinstance(t.run(SetReplicas(1, replicas)), DirectoryError)
    assert isinstance(t.run(SetReplicas(9, ("n1",))), UnknownShard)
    assert t.d.epoch == 1, "refused commands change nothing"


def test_unknown_format_and_snapshot_round_trip() -> None:
    t = Directory()
    assert isinstance(t.d.apply(1, b"\x02\x00"), CommandFormatError)
    t.index = 1
    empty = ShardDirectory()
    empty.restore(t.d.snapshot())
    assert empty.shards() == [] and empty.applied_index == 1
    t.run(Bootstrap(("n1", "n2")))
    t.run(SplitShard(b"k"))
    t.run(SplitDone(2))
    t.run(SplitShard(b"t"))
    copy = ShardDirectory()
    copy.restore(t.d.snapshot())
    assert copy.shards() == t.d.shards() and copy.next_group_id == t.d.next_group_id
    assert copy.pending_splits() == t.d.pending_splits() != []
    assert copy.snapshot() == t.d.snapshot()


split_points = st.binary(min_size=1, max_size=3)


class DirectoryModel(RuleBasedStateMachine):
    """Model: sorted split points and the group of each range, plus replicas per group."""

    def __init__(self) -> None:
        super().__init__()
        self.t = Directory()
        self.t.run(Bootstrap(("n1",)))
        self.splits: list[bytes] = []
        self.groups: list[int] = [1]
        self.next_group = 2

    @rule(at=split_points)
    def split(self, at: bytes) -> None:
        result = self.t.run(SplitShard(at))
        if at in self.splits:
            assert isinstance(result, InvalidSplit)
            return
        assert isinstance(result, ShardInfo) and result.group_id == self.next_group
        assert isinstance(self.t.run(SplitDone(result.group_id)), ShardInfo)
        i = bisect_right(self.splits, at)
        self.splits.insert(i, at)
        self.groups.insert(i + 1, self.next_group)
        self.next_group += 1

    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.groups) - 1))
        result = self.t.run(MergeShards(self.groups[i]))
        if i == len(self.groups) - 1:
            assert isinstance(result, InvalidSplit)
            return
        del self.splits[i]
        del self.groups[i + 1]

    @rule(key=st.binary(max_size=4))
    def lookup(self, key: bytes) -> None:
        info = self.t.d.lookup(key)
        assert info.group_id == self.groups[bisect_right(self.splits, key)]
        assert info.start <= key and (info.end is None or key < info.end)

    @invariant()
    def matches_model(self) -> None:
        assert [s.group_id for s in self.t.d.shards()] == self.groups
        assert list(self.t.d.range_map.splits) == self.splits
        copy = ShardDirectory()
        copy.restore(self.t.d.snapshot())
        assert copy.snapshot() == self.t.d.snapshot()


DirectoryModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25)
TestDirectoryModel = DirectoryModel.TestCase
