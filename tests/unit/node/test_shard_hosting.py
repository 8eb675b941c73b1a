"""Which state a node starts a shard replica from: the first shard empty over every key,
even when the node comes late, after a split; a split-off group from the seed its own
replica of the parent keeps, and only then; never a split-off group whose seed is gone.
Real Raft groups on disk, two voters that never meet (no quorum, so nothing commits:
the test drives the machines directly, as applying a shared log would)."""

from pathlib import Path

from cairn.meta.buckets import VersioningState
from cairn.meta.clustermap import Change, Join
from cairn.meta.directory import Bootstrap, DirectoryCommand, ShardInfo, SplitDone, SplitShard
from cairn.meta.index import IndexCommand, IndexShard, PutObject, ShrinkRange, encode_command
from cairn.meta.manifest import Manifest, etag_of_bytes
from cairn.meta.root import RootMachine, encode_root_command
from cairn.node.shard_hosting import ShardHosting
from cairn.placement import encode_object_key
from cairn.raft.host import RaftHost
from cairn.wire import RpcPool, derive_auth_key

MEMBERS = {1: "127.0.0.1:1", 2: "127.0.0.1:2"}


class Node:
    """A metadata voter: a Raft host with its own root machine (fed the same commands)."""

    def __init__(self, raft_id: int, directory: Path) -> None:
        pool = RpcPool(f"n{raft_id}", derive_auth_key("shard-hosting-test-secret"))
        self.host = RaftHost(raft_id, MEMBERS, directory, pool)
        self.root = self.host.add_group(0, set(MEMBERS), RootMachine()).machine
        assert isinstance(self.root, RootMachine)
        self.member = ""
        self.hosting = ShardHosting(self.host, lambda: self.member or None)

    def shard(self, group_id: int) -> IndexShard:
        machine = self.host.groups[group_id].machine
        assert isinstance(machine, IndexShard)
        return machine


def root_command(nodes: list[Node], command: DirectoryCommand | Join) -> object:
    results = [n.root.apply(n.root.applied_index + 1, encode_root_command(command)) for n in nodes]
    assert all(r == results[0] for r in results)
    return results[0]


def shard_command(shards: list[IndexShard], command: IndexCommand) -> object:
    results = [s.apply(s.applied_index + 1, encode_command(command)) for s in shards]
    return results[0]


def put(key: str) -> PutObject:
    manifest = Manifest(1, etag_of_bytes(b"x"), 1.0, inline=b"x")
    return PutObject("bkt", key, manifest, VersioningState.UNVERSIONED)


async def test_late_and_split_off_replicas_start_from_the_same_state(tmp_path: Path) -> None:
    early, late = Node(1, tmp_path / "early"), Node(2, tmp_path / "late")
    try:
        await hosting_scenario(early, late, tmp_path)
    finally:
        for node in (early, late):
            await node.host.stop()


async def hosting_scenario(early: Node, late: Node, tmp_path: Path) -> None:
    nodes = [early, late]
    ids = []
    for raft_id, address in MEMBERS.items():
        change = root_command(nodes, Join(f"node-{raft_id}", address, 1 << 30, 0.0))
        assert isinstance(change, Change)
        ids.append(change.members[0].id)
    early.member, late.member = ids
    root_command(nodes, Bootstrap(tuple(ids)))

    # The early node hosts the first shard and applies writes, then the directory splits
    # it at "m" and the shard cuts the upper part off as the new group's seed.
    assert await early.hosting.reconcile() == [1]
    log: list[IndexCommand] = [put("a"), put("n"), put("z")]
    for command in log:
        shard_command([early.shard(1)], command)
    at = encode_object_key("bkt", "m")
    child = root_command(nodes, SplitShard(at))
    assert isinstance(child, ShardInfo) and child.parent == 1
    assert await early.hosting.reconcile() == [], "no seed yet: the parent has not cut"
    cut = ShrinkRange(at, seed_group=child.group_id)
    log.append(cut)
    shard_command([early.shard(1)], cut)
    assert await early.hosting.reconcile() == [child.group_id]
    assert early.shard(child.group_id).key_count == 2
    assert (early.shard(child.group_id).start, early.shard(child.group_id).end) == (at, None)

    # The late node starts the first shard over every key although the directory now
    # gives it [start, "m"): replaying the same log must give the same state and seed.
    assert await late.hosting.reconcile() == [1]
    assert late.shard(1).end is None
    for command in log:
        shard_command([late.shard(1)], command)
    assert late.shard(1).snapshot() == early.shard(1).snapshot()
    assert await late.hosting.reconcile() == [child.group_id]
    assert late.shard(child.group_id).snapshot() == early.shard(child.group_id).snapshot()

    # Once the split is done, a node without the group never starts it empty.
    root_command(nodes, SplitDone(child.group_id))
    again = Node(2, tmp_path / "replaced-disk")
    again.root.restore(late.root.snapshot())  # as a snapshot of the root group brings it
    again.member = late.member
    try:
        assert await again.hosting.reconcile() == [1]
        assert child.group_id not in again.host.groups
    finally:
        await again.host.stop()

    # A restart reopens the new group from its bootstrap snapshot: the seed.
    seeded = late.shard(child.group_id).snapshot()
    await late.host.stop()
    reopened = Node(2, tmp_path / "late")
    try:
        assert reopened.hosting.reopen(reopened.host.directory) == [1, child.group_id]
        assert reopened.shard(child.group_id).snapshot() == seeded
    finally:
        await reopened.host.stop()
