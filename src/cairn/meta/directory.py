"""The shard directory of the root group: which index shard owns each (bucket, key) range.

Theory of operation. The directory is a `cairn.placement.RangeMap` (sorted split points
over encoded object keys, one shard group id per range) plus, for every shard group, the
node ids of its Raft replicas. It starts empty; `Bootstrap` creates the first shard,
covering the whole key space. `SplitShard` cuts the range holding a key at that key: the
upper half goes to a new group whose id comes from a counter in the state
(`next_group_id`), so every replica picks the same id, and which has the replicas of the
old group. `MergeShards` joins a range with its right
neighbour (the left group survives). `SetReplicas` records a membership change of a group.

The directory `epoch` is the range map's epoch and bumps on every change, so a client that
cached the directory and is told by a shard that its key is out of range, or by a node
that it no longer hosts a group, refreshes when the epoch it holds is older.

The directory only records decisions: moving the data is the service's job
(`node.shard_splitter`, docs/design/meta.md "Splitting a shard"). `SplitShard` records
the new group's *parent* along with the range; until `SplitDone` the split is pending:
the parent still has to cut the range off (`ShrinkRange` with a seed), and every replica
of the new group still has to start from that seed. Only one split is pending at a time,
and a pending group is neither split nor merged.

Group id 0 is the root group itself; index shard groups start at 1.
"""

from __future__ import annotations

import msgspec

from cairn.meta.machine import (
    COMMAND_FORMAT_V1,
    SNAPSHOT_FORMAT_V1,
    MetaError,
    ReplicatedMachine,
    SnapshotFormatError,
    VersionedCodec,
)
from cairn.placement import RangeMap, encode_object_key
from cairn.placement.nodes import NODE_ID_BYTES_MAX
from cairn.placement.rangemap import RANGE_KEY_BYTES_MAX, SHARD_COUNT_MAX
from cairn.placement.table import REPLICA_COUNT_MAX

ROOT_GROUP_ID = 0
FIRST_SHARD_GROUP_ID = 1


class DirectoryError(MetaError):
    """A directory command was rejected."""

    code = "InvalidRequest"


class NotBootstrapped(DirectoryError):
    code = "DirectoryEmpty"


class UnknownShard(DirectoryError):
    code = "NoSuchShard"


class InvalidSplit(DirectoryError):
    code = "InvalidSplit"


class ShardInfo(msgspec.Struct, frozen=True):
    """One range of the directory, as clients route by it."""

    group_id: int
    start: bytes
    end: bytes | None
    replicas: tuple[str, ...]
    epoch: int
    parent: int = 0
    """While a split is pending: the group this one was split from (0 otherwise)."""


# Commands ---------------------------------------------------------------------------------


class Bootstrap(msgspec.Struct, tag="bootstrap", frozen=True):
    replicas: tuple[str, ...]


class SplitShard(msgspec.Struct, tag="split", frozen=True):
    """Split the range holding `at` so that `[at, end)` goes to a new group. The new group
    has the old one's replicas: each starts from the seed its replica of the old group
    keeps (`replicas`, if given, must name the same ones)."""

    at: bytes
    replicas: tuple[str, ...] | None = None


class MergeShards(msgspec.Struct, tag="merge", frozen=True):
    """Join the range of `group_id` with the next one; `group_id` keeps the union."""

    group_id: int


class SetReplicas(msgspec.Struct, tag="replicas", frozen=True):
    group_id: int
    replicas: tuple[str, ...]


class SplitDone(msgspec.Struct, tag="splitdone", frozen=True):
    """The split that made `group_id` is carried out: every replica started from its seed."""

    group_id: int


DirectoryCommand = Bootstrap | SplitShard | MergeShards | SetReplicas | SplitDone


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    epoch: int
    splits: list[bytes]
    shards: list[int]
    replicas: list[tuple[int, tuple[str, ...]]]
    next_group_id: int
    parents: list[tuple[int, int]] = []
    """Pending splits, (new group, parent group) (absent in snapshots before stop 15)."""


_commands: VersionedCodec[DirectoryCommand] = VersionedCodec(DirectoryCommand, COMMAND_FORMAT_V1)
_snapshots: VersionedCodec[_SnapshotV1] = VersionedCodec(
    _SnapshotV1, SNAPSHOT_FORMAT_V1, SnapshotFormatError
)


def encode_command(command: DirectoryCommand) -> bytes:
    return _commands.encode(command)


def decode_command(data: bytes) -> DirectoryCommand:
    return _commands.decode(data)


def _validate_replicas(replicas: tuple[str, ...]) -> None:
    if not 1 <= len(replicas) <= REPLICA_COUNT_MAX:
        raise DirectoryError(f"a group has 1..{REPLICA_COUNT_MAX} replicas")
    if len(set(replicas)) != len(replicas):
        raise DirectoryError(f"duplicate replica in {replicas}")
    for node_id in replicas:
        if not node_id or len(node_id.encode()) > NODE_ID_BYTES_MAX:
            raise DirectoryError(f"node id must be 1..{NODE_ID_BYTES_MAX} bytes")


class ShardDirectory(ReplicatedMachine[DirectoryCommand]):
    """The replicated shard directory (see the module docstring)."""

    commands = _commands

    def __init__(self) -> None:
        super().__init__()
        self._map: RangeMap | None = None
        self._replicas: dict[int, tuple[str, ...]] = {}
        self._parents: dict[int, int] = {}
        self.next_group_id = FIRST_SHARD_GROUP_ID

    # Queries ------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._map.epoch if self._map is not None else 0

    @property
    def range_map(self) -> RangeMap:
        if self._map is None:
            raise NotBootstrapped("the directory has no shards yet")
        return self._map

    def lookup(self, encoded_key: bytes) -> ShardInfo:
        """The shard owning an encoded key (`cairn.placement.encode_object_key`)."""
        return self._info(self.range_map.index_of(encoded_key))

    def lookup_object(self, bucket: str, key: str) -> ShardInfo:
        """The shard owning (bucket, key)."""
        try:
            encoded = encode_object_key(bucket, key)
        except ValueError as exc:
            raise DirectoryError(str(exc)) from exc
        return self.lookup(encoded)

    def shard(self, group_id: int) -> ShardInfo:
        range_map = self.range_map
        if group_id not in self._replicas:
            raise UnknownShard(f"no shard group {group_id}")
        return self._info(range_map.shards.index(group_id))

    def shards(self) -> list[ShardInfo]:
        """Every range, in key order."""
        if self._map is None:
            return []
        return [self._info(i) for i in range(len(self._map))]

    @property
    def split_pending(self) -> bool:
        return bool(self._parents)

    def pending_splits(self) -> list[ShardInfo]:
        """The groups whose split is not carried out yet (`parent` set), by group id."""
        return [self.shard(group) for group in sorted(self._parents)]

    def groups_of_node(self, node_id: str) -> list[int]:
        """Shard groups with a replica on `node_id`, sorted."""
        return sorted(g for g, nodes in self._replicas.items() if node_id in nodes)

    def _info(self, index: int) -> ShardInfo:
        range_map = self.range_map
        start, end = range_map.bounds(index)
        group = range_map.shards[index]
        parent = self._parents.get(group, 0)
        return ShardInfo(group, start, end, self._replicas[group], range_map.epoch, parent)

    # Commands -----------------------------------------------------------------------------

    def execute(self, command: DirectoryCommand) -> ShardInfo:
        """Run a command; returns the shard it created or changed."""
        if isinstance(command, Bootstrap):
            return self._bootstrap(command)
        if isinstance(command, SplitShard):
            return self._split(command)
        if isinstance(command, MergeShards):
            return self._merge(command)
        if isinstance(command, SplitDone):
            info = self.shard(command.group_id)
            if command.group_id not in self._parents:
                return info  # a retry
            del self._parents[command.group_id]
            return self.shard(command.group_id)
        info = self.shard(command.group_id)
        _validate_replicas(command.replicas)
        range_map = self.range_map
        self._map = RangeMap(range_map.epoch + 1, range_map.splits, range_map.shards)
        self._replicas[info.group_id] = command.replicas
        return self.shard(info.group_id)

    def _bootstrap(self, command: Bootstrap) -> ShardInfo:
        if self._map is not None:
            raise DirectoryError("the directory is already bootstrapped")
        _validate_replicas(command.replicas)
        group = self.next_group_id
        self._map = RangeMap.single(group)
        self._replicas[group] = command.replicas
        self.next_group_id += 1
        return self.shard(group)

    def _split(self, command: SplitShard) -> ShardInfo:
        range_map = self.range_map
        if not command.at or len(command.at) > RANGE_KEY_BYTES_MAX:
            raise InvalidSplit(f"split point must be 1..{RANGE_KEY_BYTES_MAX} bytes")
        if len(range_map) >= SHARD_COUNT_MAX:
            raise InvalidSplit(f"already {SHARD_COUNT_MAX} shards")
        if self._parents:
            pending = min(self._parents)
            raise InvalidSplit(f"the split that made group {pending} is still being carried out")
        index = range_map.index_of(command.at)
        if range_map.bounds(index)[0] == command.at:
            raise InvalidSplit(f"{command.at!r} is already a range boundary")
        old_group = range_map.shards[index]
        replicas = self._replicas[old_group]
        if command.replicas is not None and command.replicas != replicas:
            raise InvalidSplit("a new group starts on the replicas of the group it splits")
        group = self.next_group_id
        self._map = range_map.split(command.at, group)
        self._replicas[group] = replicas
        self._parents[group] = old_group
        self.next_group_id += 1
        return self.shard(group)

    def _merge(self, command: MergeShards) -> ShardInfo:
        range_map = self.range_map
        info = self.shard(command.group_id)
        index = range_map.shards.index(info.group_id)
        if index + 1 >= len(range_map):
            raise InvalidSplit(f"shard {command.group_id} has no right neighbour")
        gone = range_map.shards[index + 1]
        if self._parents:
            raise InvalidSplit("a split is still being carried out")
        self._map = range_map.merge(index)
        del self._replicas[gone]
        return self.shard(command.group_id)

    # Snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        m = self._map
        snap = _SnapshotV1(
            self.applied_index,
            m.epoch if m is not None else 0,
            list(m.splits) if m is not None else [],
            list(m.shards) if m is not None else [],
            sorted(self._replicas.items()),
            self.next_group_id,
            sorted(self._parents.items()),
        )
        return _snapshots.encode(snap)

    def restore(self, data: bytes) -> None:
        snap = _snapshots.decode(data)
        self._map = (
            RangeMap(snap.epoch, tuple(snap.splits), tuple(snap.shards)) if snap.shards else None
        )
        self._replicas = dict(snap.replicas)
        self.next_group_id = snap.next_group_id
        self._parents = dict(snap.parents)
        self.applied_index = snap.applied_index
