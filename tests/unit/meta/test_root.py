"""The root machine multiplexes the cluster map, buckets and directory in one log, and the
cluster map's `lost` state takes a long-down node out of placement until it returns."""

import msgspec

from cairn.meta.buckets import Bucket, CreateBucket
from cairn.meta.clustermap import (
    Change,
    ClusterConfig,
    Configure,
    Heartbeat,
    Join,
    Liveness,
    Tick,
)
from cairn.meta.directory import Bootstrap, ShardInfo
from cairn.meta.machine import CommandFormatError, MetaError
from cairn.meta.root import RootMachine, encode_root_command

CONFIG = ClusterConfig(partition_count=16, replica_count=2, suspect_after_s=1,
                       down_after_s=2, lost_after_s=5)  # fmt: skip


def joined(root: RootMachine, names: list[str]) -> list[str]:
    ids = []
    for name in names:
        change = root.apply(root.applied_index + 1,
                            encode_root_command(Join(name, f"{name}:1", 1 << 40, 0.0)))  # fmt: skip
        assert isinstance(change, Change)
        ids.append(change.members[0].id)
    return ids


def test_commands_reach_their_machine_and_every_index_advances() -> None:
    root = RootMachine(CONFIG)
    ids = joined(root, ["a", "b"])
    bucket = root.apply(3, encode_root_command(CreateBucket("photos", "alice", 1.0)))
    assert isinstance(bucket, Bucket) and root.buckets.get("photos").owner == "alice"
    shard = root.apply(4, encode_root_command(Bootstrap(tuple(ids))))
    assert isinstance(shard, ShardInfo) and root.directory.epoch == 1
    for machine in (root.cluster, root.buckets, root.directory):
        assert machine.applied_index == 4
    bad = root.apply(5, b"\x09junk")
    assert isinstance(bad, CommandFormatError)
    assert root.cluster.applied_index == root.buckets.applied_index == 5


def test_snapshot_round_trips_all_three_machines() -> None:
    root = RootMachine(CONFIG)
    ids = joined(root, ["a", "b", "c"])
    root.apply(4, encode_root_command(CreateBucket("photos", "alice", 1.0)))
    root.apply(5, encode_root_command(Bootstrap(tuple(ids))))
    copy = RootMachine(CONFIG)
    copy.restore(root.snapshot())
    assert copy.snapshot() == root.snapshot()
    assert copy.applied_index == 5 and copy.buckets.get("photos").owner == "alice"
    assert copy.cluster.table.owners == root.cluster.table.owners


def test_a_node_down_past_lost_after_leaves_placement_and_comes_back_on_heartbeat() -> None:
    root = RootMachine(CONFIG)
    a, b, c = joined(root, ["a", "b", "c"])
    assert any(c in owners for owners in root.cluster.table.owners)
    for now, node_ids in ((1.5, (a, b)), (3.0, (a, b)), (6.0, (a, b))):
        for node_id in node_ids:
            root.apply(root.applied_index + 1,
                       encode_root_command(Heartbeat(node_id, now, 1 << 40, 0, 0.0)))  # fmt: skip
        root.apply(root.applied_index + 1, encode_root_command(Tick(now)))
    assert root.cluster.node(c).liveness == Liveness.LOST
    assert not any(c in owners for owners in root.cluster.table.owners)
    assert root.cluster.previous_table is not None  # moves to the survivors are pending
    root.apply(root.applied_index + 1,
               encode_root_command(Heartbeat(c, 7.0, 1 << 40, 0, 0.0, synced_epoch=3)))  # fmt: skip
    member = root.cluster.node(c)
    assert member.liveness == Liveness.ALIVE and member.synced_epoch == 3
    assert any(c in owners for owners in root.cluster.table.owners)


def test_lost_after_must_not_precede_down_after() -> None:
    root = RootMachine(CONFIG)
    result = root.apply(1, encode_root_command(Configure(1.0, 10.0, lost_after_s=5.0)))
    assert isinstance(result, MetaError)
    result = root.apply(2, encode_root_command(Configure(1.0, 10.0, lost_after_s=0.0)))
    assert not isinstance(result, MetaError) and root.cluster.config.lost_after_s == 0.0
    assert msgspec.structs.asdict(root.cluster.config)["down_after_s"] == 10.0
