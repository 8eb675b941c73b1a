"""The shared machine interface: every meta machine (and raft's KV) fits `StateMachine`;
framing rejects unknown versions with typed errors; the log index only moves forward."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cairn.meta
from cairn.meta import clustermap, index
from cairn.meta.buckets import BucketTable, VersioningState
from cairn.meta.clustermap import ClusterConfig, ClusterMap
from cairn.meta.directory import ShardDirectory
from cairn.meta.index import IndexShard
from cairn.meta.machine import (
    CommandFormatError,
    MetaError,
    SnapshotFormatError,
    VersionedCodec,
)
from cairn.meta.manifest import Manifest, etag_of_bytes
from cairn.meta.root import RootMachine
from cairn.raft.kv import KVStateMachine
from cairn.raft.statemachine import StateMachine

MACHINES = [
    BucketTable,
    lambda: ClusterMap(ClusterConfig(partition_count=16)),
    ShardDirectory,
    IndexShard,
    lambda: RootMachine(ClusterConfig(partition_count=16)),
]


class Thing(msgspec.Struct, frozen=True):
    n: int


@pytest.mark.parametrize("make", [*MACHINES, KVStateMachine])
def test_every_machine_fits_the_protocol(make: object) -> None:
    machine = make()  # type: ignore[operator]
    assert isinstance(machine, StateMachine)


@pytest.mark.parametrize("make", MACHINES)
def test_garbage_entries_are_typed_results_and_still_applied(make: object) -> None:
    machine = make()  # type: ignore[operator]
    empty = machine.snapshot()
    for log_index, data in enumerate([b"", b"\x00", b"\x02\x80", b"\x01", b"\x01\xff\xfe"], 1):
        result = machine.apply(log_index, data)
        assert isinstance(result, CommandFormatError) and result.code == "MalformedCommand"
        assert machine.applied_index == log_index
    machine.mark_applied(10)
    assert machine.applied_index == 10
    with pytest.raises(AssertionError):
        machine.apply(10, b"")
    with pytest.raises(AssertionError):
        machine.mark_applied(3)
    restored = make()  # type: ignore[operator]
    restored.restore(empty)
    assert restored.snapshot() == empty
    for bad in (b"", b"\x09" + empty[1:], empty[:3]):
        with pytest.raises(SnapshotFormatError):
            restored.restore(bad)


def test_versioned_codec() -> None:
    codec: VersionedCodec[Thing] = VersionedCodec(Thing, 3)
    data = codec.encode(Thing(7))
    assert data[0] == 3 and codec.decode(data) == Thing(7)
    for bad in (b"", b"\x01" + data[1:], data[:1], b"\x03\x81\xa1n\xa1x"):
        with pytest.raises(CommandFormatError):
            codec.decode(bad)
    assert issubclass(CommandFormatError, MetaError)


def test_public_names_are_pinned() -> None:
    # A subset, not equality: the lock machines of the same package add their own names.
    assert {
        "BucketTable",
        "ClusterMap",
        "IndexShard",
        "Manifest",
        "MetaError",
        "ShardDirectory",
        "StateMachine",
    } <= set(cairn.meta.__all__)
    for name in cairn.meta.__all__:
        assert hasattr(cairn.meta, name)


# Replicas that apply the same log agree, also when one of them starts from a snapshot ----

VERSIONING = st.sampled_from(list(VersioningState))
INDEX_KEYS = st.sampled_from(["a", "a/b", "b", "c/d/e"])
index_commands = st.one_of(
    st.builds(
        lambda k, v, n: index.PutObject("bkt", k, inline(bytes(n)), v),
        INDEX_KEYS,
        VERSIONING,
        st.integers(0, 4),
    ),
    st.builds(lambda k, v: index.DeleteObject("bkt", k, 1.0, v), INDEX_KEYS, VERSIONING),
    st.builds(
        lambda k, i: index.DeleteObject("bkt", k, 1.0, VersioningState.ENABLED, f"{1:08x}{i:016x}"),
        INDEX_KEYS,
        st.integers(1, 30),
    ),
).map(index.encode_command)

NODE_IDS = st.sampled_from(["n1", "n2", "n3", "n4"])
cluster_commands = st.one_of(
    st.builds(
        lambda n, z, t: clustermap.Join(f"name{n}", f"h:{n}", 1 << 40, t, zone=f"z{z}"),
        st.integers(1, 4),
        st.integers(1, 3),
        st.integers(0, 100),
    ),
    st.builds(lambda i, t: clustermap.Heartbeat(i, t, 1, 0, 0.0), NODE_IDS, st.integers(0, 100)),
    st.builds(clustermap.Tick, st.integers(0, 100)),
    st.builds(clustermap.Drain, NODE_IDS),
    st.builds(clustermap.Undrain, NODE_IDS),
    st.builds(clustermap.Decommission, NODE_IDS),
    st.builds(clustermap.SetWeight, NODE_IDS, st.sampled_from([0.0, 1.0, 2.5])),
    st.builds(clustermap.MovesDone, st.integers(0, 10)),
).map(clustermap.encode_command)


def inline(data: bytes) -> Manifest:
    return Manifest(len(data), etag_of_bytes(data), 1.0, inline=data)


def check_replicas_agree(make: Callable[[], StateMachine], log: list[bytes], cut: int) -> None:
    a, b = make(), make()
    results = [[repr(m.apply(i, entry)) for i, entry in enumerate(log, 1)] for m in (a, b)]
    assert results[0] == results[1]
    assert a.snapshot() == b.snapshot()
    # A third replica installs a snapshot taken at `cut`, then applies the rest of the log.
    c, d = make(), make()
    for i, entry in enumerate(log[:cut], 1):
        c.apply(i, entry)
    d.restore(c.snapshot())
    late = [repr(d.apply(i, entry)) for i, entry in enumerate(log[cut:], cut + 1)]
    assert late == results[0][cut:]
    assert d.snapshot() == a.snapshot()


@settings(max_examples=60)
@given(st.lists(index_commands, max_size=30), st.data())
def test_index_replicas_agree(log: list[bytes], data: st.DataObject) -> None:
    check_replicas_agree(IndexShard, log, data.draw(st.integers(0, len(log))))


@settings(max_examples=60)
@given(st.lists(cluster_commands, max_size=30), st.data())
def test_cluster_map_replicas_agree(log: list[bytes], data: st.DataObject) -> None:
    def make() -> StateMachine:
        return ClusterMap(ClusterConfig(partition_count=32, replica_count=2))

    check_replicas_agree(make, log, data.draw(st.integers(0, len(log))))
