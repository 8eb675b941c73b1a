"""The root group's state machine: the cluster map, the buckets, the shard directory, the
locks and the S3 users in one Raft log.

Theory of operation. The machines stay separate classes (each tested alone); the
root machine multiplexes them. A root command is one byte naming the machine followed by
that machine's own framed command (`Part.CLUSTER + clustermap.encode_command(...)`).
`apply` hands the entry to the named machine and marks the index applied on the others,
so every machine's `applied_index` equals the log's. The snapshot is the machines'
snapshots side by side behind the usual format-version byte; a part added later (locks,
users) has a default, so an older snapshot still decodes. Keeping one log for all of them
is what makes a bucket's existence, its owner's keys, the node list and the directory one
consistent view: a reader at some index sees all of them as of that index.

An entry with an unknown part byte is applied as a malformed command (the index advances
on every machine and the result is the error), like a malformed command of one machine.
"""

from enum import IntEnum

import msgspec

from cairn.meta.buckets import BucketCommand, BucketTable
from cairn.meta.buckets import encode_command as encode_bucket_command
from cairn.meta.clustermap import ClusterCommand, ClusterConfig, ClusterMap
from cairn.meta.clustermap import encode_command as encode_cluster_command
from cairn.meta.directory import DirectoryCommand, ShardDirectory
from cairn.meta.directory import encode_command as encode_directory_command
from cairn.meta.locks import LockStateMachine
from cairn.meta.locks import Request as LockRequest
from cairn.meta.locks import encode_request as encode_locks_request
from cairn.meta.machine import (
    SNAPSHOT_FORMAT_V1,
    CommandFormatError,
    SnapshotFormatError,
    VersionedCodec,
)
from cairn.meta.users import UserCommand, UserTable
from cairn.meta.users import encode_command as encode_users_command
from cairn.raft.statemachine import StateMachine


class Part(IntEnum):
    CLUSTER = 1
    BUCKETS = 2
    DIRECTORY = 3
    LOCKS = 4
    USERS = 5


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    cluster: bytes
    buckets: bytes
    directory: bytes
    locks: bytes = b""
    users: bytes = b""


_snapshots: VersionedCodec[_SnapshotV1] = VersionedCodec(
    _SnapshotV1, SNAPSHOT_FORMAT_V1, SnapshotFormatError
)

RootCommand = ClusterCommand | BucketCommand | DirectoryCommand


def encode_lock_request(request: LockRequest) -> bytes:
    """The entry to propose to the root group for a lock request (`meta.locks`)."""
    return bytes([Part.LOCKS]) + encode_locks_request(request)


def encode_user_command(command: UserCommand) -> bytes:
    """The entry to propose to the root group for a users/keys command (`meta.users`)."""
    return bytes([Part.USERS]) + encode_users_command(command)


def encode_root_command(command: RootCommand) -> bytes:
    """The entry to propose to the root group for `command` of any of its machines."""
    # The tagged unions share no tag names across machines only by accident, so the part
    # is chosen by the command's type, never by decoding guesses.
    if isinstance(command, ClusterCommand):
        return bytes([Part.CLUSTER]) + encode_cluster_command(command)
    if isinstance(command, BucketCommand):
        return bytes([Part.BUCKETS]) + encode_bucket_command(command)
    return bytes([Part.DIRECTORY]) + encode_directory_command(command)


class RootMachine:
    """Cluster map + buckets + directory, applied from one log (see the module doc)."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.cluster = ClusterMap(config)
        self.buckets = BucketTable()
        self.directory = ShardDirectory()
        self.locks = LockStateMachine()
        self.users = UserTable()
        self.applied_index = 0

    def _parts(self) -> dict[int, StateMachine]:
        return {
            Part.CLUSTER: self.cluster,
            Part.BUCKETS: self.buckets,
            Part.DIRECTORY: self.directory,
            Part.LOCKS: self.locks,
            Part.USERS: self.users,
        }

    def apply(self, index: int, data: bytes) -> object:
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index
        parts = self._parts()
        target = parts.get(data[0]) if data else None
        for machine in parts.values():
            if machine is not target:
                machine.mark_applied(index)
        if target is None:
            return CommandFormatError(f"unknown root part {data[:1]!r}")
        return target.apply(index, data[1:])

    def mark_applied(self, index: int) -> None:
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index
        for machine in self._parts().values():
            machine.mark_applied(index)

    def snapshot(self) -> bytes:
        return _snapshots.encode(
            _SnapshotV1(
                self.applied_index,
                self.cluster.snapshot(),
                self.buckets.snapshot(),
                self.directory.snapshot(),
                self.locks.snapshot(),
                self.users.snapshot(),
            )
        )

    def restore(self, data: bytes) -> None:
        snap = _snapshots.decode(data)
        self.cluster.restore(snap.cluster)
        self.buckets.restore(snap.buckets)
        self.directory.restore(snap.directory)
        self.locks = LockStateMachine()
        if snap.locks:
            self.locks.restore(snap.locks)
        else:  # a snapshot from before the locks joined the root group
            self.locks.applied_index = snap.applied_index
        self.users = UserTable()
        if snap.users:
            self.users.restore(snap.users)
        else:  # a snapshot from before the users joined the root group
            self.users.applied_index = snap.applied_index
        self.applied_index = snap.applied_index
