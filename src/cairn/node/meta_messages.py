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
from cairn.meta.index import BucketStats, ListPage, ObjectVersion
from cairn.meta.users import AccessKey, User

Consistency = Literal["linearizable", "lease", "stale"]


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


class ObjectListReply(msgspec.Struct, frozen=True, tag=True):
    page: ListPage


class ShardStatsQuery(msgspec.Struct, frozen=True, tag=True):
    group: int
    bucket: str | None = None
    consistency: Consistency = "lease"


class ShardStatsReply(msgspec.Struct, frozen=True, tag=True):
    stats: BucketStats


class ShardLiveChunks(msgspec.Struct, frozen=True, tag=True):
    """Every chunk id referenced by the shard, as the payload (32-byte ids back to back),
    read at `linearizable`: the mark phase of GC must not miss a committed manifest."""

    group: int


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
