"""Buckets, as the root group replicates them: name, owner, creation time, versioning, policy.

Theory of operation. The bucket table is a dict from name to a frozen `Bucket` record,
changed only by the commands below, each validated in full before anything is changed (so
a rejected command is a no-op on every replica and its typed error is the result).
Creation time is a command field stamped by the proposer; nothing here reads a clock.

Names follow the S3 rules (`validate_bucket_name`). Creating a name that exists fails with
`BucketAlreadyOwnedByYou` for its owner and `BucketAlreadyExists` for anyone else, as in
S3; commands that change a bucket check the owner (`AccessDenied`).

Deleting a bucket spans two Raft groups: the bucket lives here, its objects in index
shards. A single "delete if empty" command cannot see the shards, and a count taken before
proposing it races with a PUT that checked the bucket earlier. So deletion is two-phase:

1. `BeginDelete` moves the bucket to `deleting`. From then on the service refuses new
   writes to it (`Bucket.writable` is False) -- a PUT re-checks the bucket after its chunks
   are stored and before it commits the manifest.
2. The service waits out writes already past that check (at most one PUT deadline), then
   asks every index shard of the bucket's key range for its version count (linearizable
   reads), and proposes `DeleteBucket(object_count=...)` with the total. A non-zero count
   fails with `BucketNotEmpty` and the service proposes `CancelDelete` (back to `active`).

`DeleteBucket` on a bucket that is not `deleting` fails with `InvalidBucketState`, so the
racy one-phase path cannot be taken by mistake.

Versioning follows S3: a bucket starts `unversioned`; once `enabled` it can only move
between `enabled` and `suspended`. The index shards do not see this table: the service
passes the bucket's state with every object write (see `cairn.meta.index`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from enum import StrEnum

import msgspec

from cairn.meta.machine import (
    COMMAND_FORMAT_V1,
    SNAPSHOT_FORMAT_V1,
    MetaError,
    ReplicatedMachine,
    SnapshotFormatError,
    VersionedCodec,
)
from cairn.placement.table import REPLICA_COUNT_MAX

BUCKET_NAME_CHARS_MIN = 3
BUCKET_NAME_CHARS_MAX = 63
OWNER_BYTES_MAX = 255
"""An owner is an account/user id string of at most this many UTF-8 bytes."""
BUCKET_COUNT_MAX = 100_000
"""At most this many buckets in a cluster (the whole table is in every root snapshot)."""

_NAME_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


class BucketError(MetaError):
    """A bucket command was rejected."""

    code = "InvalidRequest"


class InvalidBucketName(BucketError):
    code = "InvalidBucketName"


class BucketAlreadyExists(BucketError):
    """The name is taken by another owner (bucket names are global)."""

    code = "BucketAlreadyExists"


class BucketAlreadyOwnedByYou(BucketError):
    code = "BucketAlreadyOwnedByYou"


class NoSuchBucket(BucketError):
    code = "NoSuchBucket"


class BucketNotEmpty(BucketError):
    code = "BucketNotEmpty"


class AccessDenied(BucketError):
    code = "AccessDenied"


class InvalidBucketState(BucketError):
    """The bucket is in the wrong state for the command (S3 `InvalidBucketState`)."""

    code = "InvalidBucketState"


class TooManyBuckets(BucketError):
    code = "TooManyBuckets"


class InvalidStoragePolicy(BucketError):
    code = "InvalidArgument"


class VersioningState(StrEnum):
    UNVERSIONED = "unversioned"
    ENABLED = "enabled"
    SUSPENDED = "suspended"


class BucketState(StrEnum):
    ACTIVE = "active"
    DELETING = "deleting"


class StoragePolicy(msgspec.Struct, frozen=True):
    """How new objects of a bucket are stored."""

    replicas: int = 3
    compression: bool = True
    encryption: bool = True


class Bucket(msgspec.Struct, frozen=True):
    name: str
    owner: str
    created_s: float
    versioning: VersioningState = VersioningState.UNVERSIONED
    policy: StoragePolicy = StoragePolicy()
    state: BucketState = BucketState.ACTIVE

    @property
    def writable(self) -> bool:
        """Whether object writes may commit (False once a delete has begun)."""
        return self.state == BucketState.ACTIVE


# Commands ---------------------------------------------------------------------------------


class CreateBucket(msgspec.Struct, tag="create", frozen=True):
    name: str
    owner: str
    created_s: float
    policy: StoragePolicy = StoragePolicy()


class BeginDelete(msgspec.Struct, tag="begin_delete", frozen=True):
    name: str
    owner: str


class CancelDelete(msgspec.Struct, tag="cancel_delete", frozen=True):
    name: str


class DeleteBucket(msgspec.Struct, tag="delete", frozen=True):
    """Remove a `deleting` bucket; `object_count` is the versions the shards hold for it."""

    name: str
    owner: str
    object_count: int


class SetVersioning(msgspec.Struct, tag="versioning", frozen=True):
    name: str
    owner: str
    versioning: VersioningState


class SetPolicy(msgspec.Struct, tag="policy", frozen=True):
    name: str
    owner: str
    policy: StoragePolicy


BucketCommand = CreateBucket | BeginDelete | CancelDelete | DeleteBucket | SetVersioning | SetPolicy


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    buckets: list[Bucket]


_commands: VersionedCodec[BucketCommand] = VersionedCodec(BucketCommand, COMMAND_FORMAT_V1)
_snapshots: VersionedCodec[_SnapshotV1] = VersionedCodec(
    _SnapshotV1, SNAPSHOT_FORMAT_V1, SnapshotFormatError
)


def encode_command(command: BucketCommand) -> bytes:
    return _commands.encode(command)


def decode_command(data: bytes) -> BucketCommand:
    return _commands.decode(data)


def validate_bucket_name(name: str) -> None:
    """Raise `InvalidBucketName` unless `name` follows the S3 general-purpose bucket rules."""
    if not BUCKET_NAME_CHARS_MIN <= len(name) <= BUCKET_NAME_CHARS_MAX:
        raise InvalidBucketName(f"bucket name must be 3..63 characters: {name!r}")
    if not _NAME_CHARS.fullmatch(name):
        raise InvalidBucketName(
            f"bucket name may hold only a-z, 0-9, '-' and '.', and must start and end "
            f"with a letter or digit: {name!r}"
        )
    if ".." in name:
        raise InvalidBucketName(f"bucket name has two adjacent periods: {name!r}")
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        raise InvalidBucketName(f"bucket name uses a reserved prefix or suffix: {name!r}")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return
    raise InvalidBucketName(f"bucket name is formatted as an IP address: {name!r}")


def validate_policy(policy: StoragePolicy) -> None:
    if not 1 <= policy.replicas <= REPLICA_COUNT_MAX:
        raise InvalidStoragePolicy(f"replicas must be 1..{REPLICA_COUNT_MAX}: {policy.replicas}")


def _validate_owner(owner: str) -> None:
    if not owner or len(owner.encode()) > OWNER_BYTES_MAX:
        raise BucketError(f"owner must be 1..{OWNER_BYTES_MAX} bytes")


class BucketTable(ReplicatedMachine[BucketCommand]):
    """The replicated bucket table (see the module docstring)."""

    commands = _commands

    def __init__(self) -> None:
        super().__init__()
        self._buckets: dict[str, Bucket] = {}

    # Queries ------------------------------------------------------------------------------

    def get(self, name: str) -> Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise NoSuchBucket(f"no bucket {name!r}")
        return bucket

    def __contains__(self, name: object) -> bool:
        return name in self._buckets

    def __len__(self) -> int:
        return len(self._buckets)

    def buckets(self, owner: str | None = None) -> list[Bucket]:
        """Buckets sorted by name, all or one owner's."""
        return [b for _, b in sorted(self._buckets.items()) if owner is None or b.owner == owner]

    # Commands -----------------------------------------------------------------------------

    def execute(self, command: BucketCommand) -> Bucket | None:
        """Run a command; returns the bucket as it now is (None after a delete)."""
        if isinstance(command, CreateBucket):
            return self._create(command)
        if isinstance(command, DeleteBucket):
            self._delete(command)
            return None
        bucket = self._owned(command.name, getattr(command, "owner", None))
        if isinstance(command, BeginDelete):
            new = msgspec.structs.replace(bucket, state=BucketState.DELETING)
        elif isinstance(command, CancelDelete):
            new = msgspec.structs.replace(bucket, state=BucketState.ACTIVE)
        elif isinstance(command, SetVersioning):
            new = self._set_versioning(bucket, command.versioning)
        else:
            validate_policy(command.policy)
            new = msgspec.structs.replace(bucket, policy=command.policy)
        self._buckets[new.name] = new
        return new

    def _owned(self, name: str, owner: str | None) -> Bucket:
        bucket = self.get(name)
        if owner is not None and bucket.owner != owner:
            raise AccessDenied(f"bucket {name!r} belongs to another owner")
        return bucket

    def _create(self, command: CreateBucket) -> Bucket:
        validate_bucket_name(command.name)
        _validate_owner(command.owner)
        validate_policy(command.policy)
        if not math.isfinite(command.created_s):
            raise BucketError("creation time must be finite")
        existing = self._buckets.get(command.name)
        if existing is not None:
            if existing.owner == command.owner:
                raise BucketAlreadyOwnedByYou(f"you already own {command.name!r}")
            raise BucketAlreadyExists(f"bucket {command.name!r} exists")
        if len(self._buckets) >= BUCKET_COUNT_MAX:
            raise TooManyBuckets(f"the cluster already has {BUCKET_COUNT_MAX} buckets")
        bucket = Bucket(command.name, command.owner, command.created_s, policy=command.policy)
        self._buckets[bucket.name] = bucket
        return bucket

    def _delete(self, command: DeleteBucket) -> None:
        bucket = self._owned(command.name, command.owner)
        if bucket.state != BucketState.DELETING:
            raise InvalidBucketState(f"bucket {command.name!r}: BeginDelete first")
        if command.object_count != 0:
            raise BucketNotEmpty(f"bucket {command.name!r} holds {command.object_count} objects")
        del self._buckets[command.name]

    @staticmethod
    def _set_versioning(bucket: Bucket, versioning: VersioningState) -> Bucket:
        if (
            versioning == VersioningState.UNVERSIONED
            and bucket.versioning != VersioningState.UNVERSIONED
        ):
            raise InvalidBucketState("versioning, once enabled, can only be suspended")
        return msgspec.structs.replace(bucket, versioning=versioning)

    # Snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return _snapshots.encode(_SnapshotV1(self.applied_index, self.buckets()))

    def restore(self, data: bytes) -> None:
        snap = _snapshots.decode(data)
        self._buckets = {b.name: b for b in snap.buckets}
        self.applied_index = snap.applied_index
