"""RPC messages of the metadata service (`meta_service`) and its client (`meta_client`).

Writes are either typed node operations that the root leader stamps with its own clock
(`NodeJoin`, `NodeHeartbeat`, `LeaderTick`: liveness compares heartbeat times with tick
times, so both must come from one clock, the leader's) or `MetaPropose`, an already
encoded command for a group. Reads name a consistency level: `linearizable` (ReadIndex on
the leader), `lease` (leader lease, the default) or `stale` (any replica).
"""

from typing import Literal

import msgspec

from cairn.meta.buckets import Bucket
from cairn.meta.clustermap import ClusterConfig, Member
from cairn.meta.directory import ShardInfo
from cairn.meta.index import BucketStats, IndexShard, ListPage, ObjectVersion, VersionsPage
from cairn.meta.users import AccessKey, User

Consistency = Literal["linearizable", "lease", "stale"]


class ShardBounds(msgspec.Struct, frozen=True, array_like=True):
    """The range a reader expects a shard to cover (from its copy of the directory); a
    shard covering another range answers `WrongShard` (`IndexShard.check_bounds`)."""

    start: bytes
    end: bytes | None

    @classmethod
    def of(cls, shard: ShardInfo) -> "ShardBounds":
        return cls(shard.start, shard.end)


def checked(shard: IndexShard, expect: ShardBounds | None) -> IndexShard:
    """`shard`, once it is known to cover `expect` (raises `KeyOutOfRange` otherwise)."""
    if expect is not None:
        shard.check_bounds(expect.start, expect.end)
    return shard


class MetaPropose(msgspec.Struct, frozen=True, tag=True):
    group: int
    command: bytes


class MetaResult(msgspec.Struct, frozen=True, tag=True):
    result: bytes
    """msgpack of what the machine returned (b"" for None)."""


class NodeJoin(msgspec.Struct, frozen=True, tag=True):
    name: str
    address: str
    capacity_bytes: int
    zone: str = ""
    rack: str = ""
    host: str = ""


class NodeHeartbeat(msgspec.Struct, frozen=True, tag=True):
    node_id: str
    capacity_bytes: int
    used_bytes: int
    load: float
    synced_epoch: int = 0
    """The table epoch for which this node holds all the data of its partitions."""


class ClusterViewQuery(msgspec.Struct, frozen=True, tag=True):
    consistency: Consistency = "lease"
    have_table_epoch: int = -1
    """The caller's table epoch: owners are left out when they have not changed."""


class ClusterViewReply(msgspec.Struct, frozen=True, tag=True):
    epoch: int
    config: ClusterConfig
    members: list[Member]
    table_epoch: int
    owners: list[tuple[str, ...]] | None
    """None when the caller already has `table_epoch`."""
    previous_epoch: int
    previous_owners: list[tuple[str, ...]] | None


class BucketGet(msgspec.Struct, frozen=True, tag=True):
    name: str
    consistency: Consistency = "lease"


class BucketReply(msgspec.Struct, frozen=True, tag=True):
    bucket: Bucket


class BucketListQuery(msgspec.Struct, frozen=True, tag=True):
    owner: str | None = None
    consistency: Consistency = "lease"


class BucketListReply(msgspec.Struct, frozen=True, tag=True):
    buckets: list[Bucket]


class DirectoryGet(msgspec.Struct, frozen=True, tag=True):
    consistency: Consistency = "lease"


class DirectoryReply(msgspec.Struct, frozen=True, tag=True):
    epoch: int
    shards: list[ShardInfo]


class ObjectHead(msgspec.Struct, frozen=True, tag=True):
    group: int
    bucket: str
    key: str
    version_id: str | None = None
    consistency: Consistency = "lease"


class ObjectHeadReply(msgspec.Struct, frozen=True, tag=True):
    version: ObjectVersion


class ObjectList(msgspec.Struct, frozen=True, tag=True):
    group: int
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    start_after: str = ""
    continuation_token: str | None = None
    max_keys: int = 1000
    consistency: Consistency = "lease"
    expect: ShardBounds | None = None


class ObjectListReply(msgspec.Struct, frozen=True, tag=True):
    page: ListPage


class ObjectVersionsList(msgspec.Struct, frozen=True, tag=True):
    """One ListObjectVersions page of a shard (`IndexShard.list_versions`)."""

    group: int
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    version_id_marker: str = ""
    max_keys: int = 1000
    consistency: Consistency = "lease"
    expect: ShardBounds | None = None


class ObjectVersionsListReply(msgspec.Struct, frozen=True, tag=True):
    page: VersionsPage


class ShardStatsQuery(msgspec.Struct, frozen=True, tag=True):
    group: int
    bucket: str | None = None
    consistency: Consistency = "lease"
    expect: ShardBounds | None = None


class ShardStatsReply(msgspec.Struct, frozen=True, tag=True):
    stats: BucketStats
    key_count: int = 0
    """Keys with any version (what a size-based split counts)."""
    applied_index: int = 0
    """The replica's applied log index (its rate of change is the shard's write load)."""
    seeds: list[int] = []
    """Groups split off this shard whose seed it still keeps."""
    leader_address: str = ""
    """The RPC address of the group's leader as this replica knows it."""


class ShardSplitPoint(msgspec.Struct, frozen=True, tag=True):
    """Where to split a shard: its middle key (read on the leader at `lease`)."""

    group: int


class ShardSplitPointReply(msgspec.Struct, frozen=True, tag=True):
    at: bytes | None
    """None when the shard has fewer than two keys."""


class ShardLeaderTransfer(msgspec.Struct, frozen=True, tag=True):
    """Ask the leader of `group` to hand leadership to the replica at `to_address`; sent
    to that replica while the group has no leader (a new group), it stands for election."""

    group: int
    to_address: str


class ShardLeaderTransferReply(msgspec.Struct, frozen=True, tag=True):
    pass


class ShardLiveChunks(msgspec.Struct, frozen=True, tag=True):
    """Every chunk id referenced by the shard, as the payload (32-byte ids back to back),
    read at `linearizable`: the mark phase of GC must not miss a committed manifest."""

    group: int
    expect: ShardBounds | None = None


class ShardLiveChunksReply(msgspec.Struct, frozen=True, tag=True):
    count: int
    applied_index: int


# -- users and access keys (issue 7; the root group's `meta.users` part) -------------------


class UserKeyGet(msgspec.Struct, frozen=True, tag=True):
    """An access key and its user (the S3 gateway's authentication lookup)."""

    access_key: str
    consistency: Consistency = "lease"


class UserKeyReply(msgspec.Struct, frozen=True, tag=True):
    key: AccessKey
    user: User


class UserListQuery(msgspec.Struct, frozen=True, tag=True):
    consistency: Consistency = "lease"


class UserListReply(msgspec.Struct, frozen=True, tag=True):
    users: list[User]
    keys: list[AccessKey]
    """Every key, sealed secrets included (only holders of the cluster secret can ask)."""
