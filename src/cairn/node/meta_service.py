"""RPC front of the metadata groups a node hosts: the root group and index shards.

Writes go through the log on the group's leader; a follower answers `not_leader` with the
leader's address (empty during an election) so clients go straight there. The leader
stamps node joins, heartbeats and ticks with its own wall clock, so that liveness only
ever compares times from one clock. A command the machine rejects (bucket exists, key out
of range) comes back as a `RemoteError` whose code is the machine error's S3-style code,
and the message says why.

Reads first pass the group's read barrier for the requested consistency, then read the
local machine directly: no log entry, no copy of the state.
"""

import time
from collections.abc import Callable
from typing import TypeVar

import msgspec

from cairn.base.errors import RemoteError
from cairn.meta.clustermap import Heartbeat, Join, Tick
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.meta.index import IndexShard
from cairn.meta.machine import MetaError
from cairn.meta.root import RootMachine, encode_root_command
from cairn.node.meta_messages import (
    BucketGet,
    BucketListQuery,
    BucketListReply,
    BucketReply,
    ClusterViewQuery,
    ClusterViewReply,
    Consistency,
    DirectoryGet,
    DirectoryReply,
    MetaPropose,
    MetaResult,
    NodeHeartbeat,
    NodeJoin,
    ObjectHead,
    ObjectHeadReply,
    ObjectList,
    ObjectListReply,
    ObjectVersionsList,
    ObjectVersionsListReply,
    ShardLeaderTransfer,
    ShardLeaderTransferReply,
    ShardLiveChunks,
    ShardLiveChunksReply,
    ShardSplitPoint,
    ShardSplitPointReply,
    ShardStatsQuery,
    ShardStatsReply,
    UserKeyGet,
    UserKeyReply,
    UserListQuery,
    UserListReply,
    checked,
)
from cairn.raft.driver import RaftGroup
from cairn.raft.host import RaftHost
from cairn.raft.types import NotLeader, ProposalDropped, ProposalTooLarge
from cairn.wire import CallContext, Reply, Router

T = TypeVar("T")
_encoder = msgspec.msgpack.Encoder()


class MetaService:
    def __init__(self, host: RaftHost, clock: Callable[[], float] = time.time) -> None:
        self._host = host
        self._clock = clock

    def register(self, router: Router) -> None:
        router.register(MetaPropose, self._propose)
        router.register(NodeJoin, self._join)
        router.register(NodeHeartbeat, self._heartbeat)
        router.register(ClusterViewQuery, self._cluster_view)
        router.register(BucketGet, self._bucket)
        router.register(BucketListQuery, self._buckets)
        router.register(DirectoryGet, self._directory)
        router.register(ObjectHead, self._head)
        router.register(ObjectList, self._list)
        router.register(ObjectVersionsList, self._list_versions)
        router.register(ShardStatsQuery, self._stats)
        router.register(ShardLiveChunks, self._live_chunks)
        router.register(ShardSplitPoint, self._split_point)
        router.register(ShardLeaderTransfer, self._transfer_leader)
        router.register(UserKeyGet, self._user_key)
        router.register(UserListQuery, self._users)

    # -- plumbing ----------------------------------------------------------------------
    def _group(self, group_id: int) -> RaftGroup:
        group = self._host.groups.get(group_id)
        if group is None:
            raise RemoteError("no_such_group", f"group {group_id} is not hosted here")
        return group

    def _root(self) -> RootMachine:
        machine = self._group(ROOT_GROUP_ID).machine
        assert isinstance(machine, RootMachine)
        return machine

    def _shard(self, group_id: int) -> IndexShard:
        machine = self._group(group_id).machine
        if not isinstance(machine, IndexShard):
            raise RemoteError("no_such_group", f"group {group_id} is not an index shard")
        return machine

    async def _commit(self, group_id: int, data: bytes) -> object:
        """Propose `data`; the machine's result, or the RemoteError clients understand."""
        group = self._group(group_id)
        try:
            result = await group.propose_command(data)
        except NotLeader:
            raise RemoteError("not_leader", self._host.leader_address(group_id)) from None
        except ProposalTooLarge as exc:
            raise RemoteError("too_large", str(exc)) from None
        except ProposalDropped as exc:
            raise RemoteError("dropped", str(exc)) from None
        if isinstance(result, MetaError):
            raise RemoteError(result.code, str(result))
        return result

    async def _barrier(self, group_id: int, consistency: Consistency) -> None:
        try:
            await self._group(group_id).read_barrier(consistency)
        except NotLeader:
            raise RemoteError("not_leader", self._host.leader_address(group_id)) from None
        except ProposalDropped as exc:
            raise RemoteError("dropped", str(exc)) from None

    async def _read(self, group_id: int, consistency: Consistency, read: Callable[[], T]) -> T:
        await self._barrier(group_id, consistency)
        try:
            return read()
        except MetaError as exc:
            raise RemoteError(exc.code, str(exc)) from None

    # -- writes ------------------------------------------------------------------------
    async def _propose(self, request: MetaPropose, _p: memoryview, _c: CallContext) -> Reply:
        result = await self._commit(request.group, request.command)
        return MetaResult(b"" if result is None else _encoder.encode(result))

    async def _join(self, request: NodeJoin, _p: memoryview, _c: CallContext) -> Reply:
        command = Join(
            name=request.name,
            address=request.address,
            capacity_bytes=request.capacity_bytes,
            now_s=self._clock(),
            zone=request.zone,
            rack=request.rack,
            host=request.host,
        )
        result = await self._commit(ROOT_GROUP_ID, encode_root_command(command))
        return MetaResult(_encoder.encode(result))

    async def _heartbeat(self, request: NodeHeartbeat, _p: memoryview, _c: CallContext) -> Reply:
        command = Heartbeat(
            node_id=request.node_id,
            now_s=self._clock(),
            capacity_bytes=request.capacity_bytes,
            used_bytes=request.used_bytes,
            load=request.load,
            synced_epoch=request.synced_epoch,
        )
        result = await self._commit(ROOT_GROUP_ID, encode_root_command(command))
        return MetaResult(_encoder.encode(result))

    async def tick(self) -> object:
        """Propose a liveness tick at the leader's time (called on the root leader)."""
        return await self._commit(ROOT_GROUP_ID, encode_root_command(Tick(self._clock())))

    # -- reads -------------------------------------------------------------------------
    async def _cluster_view(
        self, request: ClusterViewQuery, _p: memoryview, _c: CallContext
    ) -> Reply:
        def read() -> ClusterViewReply:
            cluster = self._root().cluster
            table, previous = cluster.table, cluster.previous_table
            fresh = request.have_table_epoch != table.epoch
            return ClusterViewReply(
                epoch=cluster.epoch,
                config=cluster.config,
                members=cluster.members(),
                table_epoch=table.epoch,
                owners=list(table.owners) if fresh else None,
                previous_epoch=previous.epoch if previous is not None else 0,
                previous_owners=list(previous.owners) if previous is not None else None,
            )

        return await self._read(ROOT_GROUP_ID, request.consistency, read)

    async def _bucket(self, request: BucketGet, _p: memoryview, _c: CallContext) -> Reply:
        bucket = await self._read(
            ROOT_GROUP_ID, request.consistency, lambda: self._root().buckets.get(request.name)
        )
        return BucketReply(bucket)

    async def _buckets(self, request: BucketListQuery, _p: memoryview, _c: CallContext) -> Reply:
        buckets = await self._read(
            ROOT_GROUP_ID, request.consistency, lambda: self._root().buckets.buckets(request.owner)
        )
        return BucketListReply(buckets)

    async def _directory(self, request: DirectoryGet, _p: memoryview, _c: CallContext) -> Reply:
        def read() -> DirectoryReply:
            directory = self._root().directory
            return DirectoryReply(directory.epoch, directory.shards() if directory.epoch else [])

        return await self._read(ROOT_GROUP_ID, request.consistency, read)

    async def _head(self, request: ObjectHead, _p: memoryview, _c: CallContext) -> Reply:
        shard = self._shard(request.group)
        version = await self._read(
            request.group,
            request.consistency,
            lambda: shard.head(request.bucket, request.key, request.version_id),
        )
        return ObjectHeadReply(version)

    async def _list(self, request: ObjectList, _p: memoryview, _c: CallContext) -> Reply:
        shard = self._shard(request.group)
        page = await self._read(
            request.group,
            request.consistency,
            lambda: checked(shard, request.expect).list_objects(
                request.bucket,
                prefix=request.prefix,
                delimiter=request.delimiter,
                start_after=request.start_after,
                continuation_token=request.continuation_token,
                max_keys=request.max_keys,
            ),
        )
        return ObjectListReply(page)

    async def _list_versions(
        self, request: ObjectVersionsList, _p: memoryview, _c: CallContext
    ) -> Reply:
        shard = self._shard(request.group)
        page = await self._read(
            request.group,
            request.consistency,
            lambda: checked(shard, request.expect).list_versions(
                request.bucket,
                prefix=request.prefix,
                delimiter=request.delimiter,
                key_marker=request.key_marker,
                version_id_marker=request.version_id_marker,
                max_keys=request.max_keys,
            ),
        )
        return ObjectVersionsListReply(page)

    async def _stats(self, request: ShardStatsQuery, _p: memoryview, _c: CallContext) -> Reply:
        shard = self._shard(request.group)
        bucket = request.bucket

        def read() -> ShardStatsReply:
            checked(shard, request.expect)
            return ShardStatsReply(
                shard.stats(bucket) if bucket is not None else shard.total(),
                shard.key_count,
                shard.applied_index,
                shard.seed_groups(),
                self._host.leader_address(request.group),
            )

        return await self._read(request.group, request.consistency, read)

    async def _live_chunks(
        self, request: ShardLiveChunks, _p: memoryview, _c: CallContext
    ) -> Reply:
        shard = self._shard(request.group)
        ids = await self._read(
            request.group, "linearizable", lambda: checked(shard, request.expect).live_chunk_ids()
        )
        return ShardLiveChunksReply(len(ids), shard.applied_index), b"".join(sorted(ids))

    async def _split_point(
        self, request: ShardSplitPoint, _p: memoryview, _c: CallContext
    ) -> Reply:
        shard = self._shard(request.group)
        at = await self._read(request.group, "lease", shard.split_point)
        return ShardSplitPointReply(at)

    async def _transfer_leader(
        self, request: ShardLeaderTransfer, _p: memoryview, _c: CallContext
    ) -> Reply:
        group = self._group(request.group)
        target = next((i for i, a in self._host.members.items() if a == request.to_address), 0)
        if not target:
            raise RemoteError("InvalidArgument", f"{request.to_address} is not a metadata voter")
        if target == self._host.node_id and not group.leader_id:
            group.campaign()
            return ShardLeaderTransferReply()
        try:
            group.transfer_leadership(target)
        except NotLeader:
            raise RemoteError("not_leader", self._host.leader_address(request.group)) from None
        except ProposalDropped as exc:
            raise RemoteError("InvalidArgument", str(exc)) from None
        return ShardLeaderTransferReply()

    # -- users and access keys (meta.users) ---------------------------------------------
    async def _user_key(self, request: UserKeyGet, _p: memoryview, _c: CallContext) -> Reply:
        def read() -> UserKeyReply:
            users = self._root().users
            key = users.key(request.access_key)
            return UserKeyReply(key, users.user(key.user))

        return await self._read(ROOT_GROUP_ID, request.consistency, read)

    async def _users(self, request: UserListQuery, _p: memoryview, _c: CallContext) -> Reply:
        def read() -> UserListReply:
            users = self._root().users
            return UserListReply(users.users(), users.keys())

        return await self._read(ROOT_GROUP_ID, request.consistency, read)
