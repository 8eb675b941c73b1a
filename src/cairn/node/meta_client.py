"""Client of the metadata service: leader tracking, redirects, shard routing, typed calls.

Theory of operation. Every metadata group (the root group, each index shard) has its own
leader. A call goes to the last leader seen for its group; a `not_leader` answer carries
the leader's address (or nothing during an election), unreachable nodes are skipped, and
retries are bounded by the call's deadline. A write whose outcome is unknown (the
connection died after the request left) is retried only when the command is idempotent:
putting the same manifest again, deleting again, heartbeats and joins are; creating a
bucket is, once "already owned by you" on a retry is read as success.

`stale` reads may go to any replica; `lease` and `linearizable` reads go to the leader.

Object commands are routed through the shard directory held by the root group, cached
here; a `WrongShard` answer (the directory moved on) refreshes the cache and retries.
Listings that span shards continue into the next shard when a page is not full. A read
that visits several shards (listings, bucket counts, GC's live set) names the range it
expects each shard to cover; a shard covering another one (a split happened, or has not
been applied there yet) answers `WrongShard`, and the whole read starts over on a fresh
directory, so no key is counted twice or missed.

Machine errors arrive as `RemoteError` with the S3-style code of the machine's error
(`NoSuchBucket`, `NoSuchKey`, `BucketNotEmpty`, ...); callers branch on `code`.
"""

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

import msgspec

from cairn.base.errors import DeadlineExceeded, PeerUnavailable, RemoteError
from cairn.meta.buckets import (
    BeginDelete,
    Bucket,
    CancelDelete,
    CreateBucket,
    DeleteBucket,
    SetVersioning,
    StoragePolicy,
    VersioningState,
)
from cairn.meta.clustermap import Change, ClusterCommand, Member
from cairn.meta.directory import ROOT_GROUP_ID, Bootstrap, ShardInfo
from cairn.meta.index import (
    BucketStats,
    DeleteObject,
    DeleteResult,
    IndexCommand,
    ListEntry,
    ListPage,
    ObjectVersion,
    PutObject,
    PutResult,
    VersionEntry,
    VersionsPage,
    encode_command,
    encode_key,
    encode_token,
    successor_of_prefix,
)
from cairn.meta.manifest import Manifest
from cairn.meta.root import RootCommand, encode_root_command
from cairn.meta.uploads import AbortBucketUploads, AbortBucketUploadsResult
from cairn.meta.write_condition import Fence, WriteCondition
from cairn.node.internal_lock import LockBusy, hold_exclusive
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
    ShardBounds,
    ShardLiveChunks,
    ShardLiveChunksReply,
    ShardStatsQuery,
    ShardStatsReply,
)
from cairn.wire import RpcPool

T = TypeVar("T")
RETRY_PAUSE_SECONDS = 0.02
CALL_TIMEOUT_SECONDS = 10.0
ATTEMPT_TIMEOUT_SECONDS = 3.0
"""One attempt's share of a call's deadline: a leader cut off from its group keeps
accepting requests it can never commit, and must not hold the whole deadline."""
CHUNK_ID_BYTES = 32


class MetaClient:
    def __init__(
        self,
        pool: RpcPool,
        addresses: Sequence[str],
        *,
        consistency: Consistency = "lease",
        timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        """`addresses`: RPC addresses of the nodes hosting the metadata groups."""
        if not addresses:
            raise ValueError("MetaClient needs at least one metadata node address")
        self.pool = pool
        self.addresses = list(addresses)
        self.consistency = consistency
        self.timeout = timeout
        self._leaders: dict[int, str] = {}
        self._next = 0
        self._directory: DirectoryReply | None = None
        self.redirects = 0

    # -- transport ---------------------------------------------------------------------
    def _candidate(self, group: int, leader: bool) -> str:
        known = self._leaders.get(group)
        if known is not None and leader:
            return known
        address = self.addresses[self._next % len(self.addresses)]
        self._next += 1
        return address

    async def call(
        self,
        group: int,
        request: msgspec.Struct,
        reply_type: type[T],
        *,
        leader: bool = True,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> tuple[T, memoryview]:
        """One RPC to the group's leader (or any replica with `leader=False`), following
        redirects and retrying within the deadline (see the module doc)."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        last_error: Exception = DeadlineExceeded("no attempt made")
        while (remaining := deadline - time.monotonic()) > 0:
            address = self._candidate(group, leader)
            try:
                reply, payload = await self.pool.call(
                    address, request, reply_type, timeout=min(remaining, ATTEMPT_TIMEOUT_SECONDS)
                )
                if leader:
                    self._leaders[group] = address
                return reply, payload
            except RemoteError as exc:
                last_error = exc
                if exc.code == "ProposalOutcomeUnknown" and idempotent:
                    self._leaders.pop(group, None)
                    continue  # like a timeout: only an idempotent command is retried
                if exc.code == "not_leader":
                    self.redirects += 1
                    if exc.message:
                        self._leaders[group] = exc.message
                    else:
                        self._leaders.pop(group, None)
                        await asyncio.sleep(RETRY_PAUSE_SECONDS)  # election under way
                    continue
                if exc.code in ("dropped", "no_such_group"):
                    self._leaders.pop(group, None)
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    continue
                raise
            except (PeerUnavailable, DeadlineExceeded) as exc:
                last_error = exc
                self._leaders.pop(group, None)
                if not idempotent and isinstance(exc, DeadlineExceeded):
                    raise
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
        raise DeadlineExceeded(f"metadata call gave up after {budget} s: {last_error}")

    async def _propose(
        self, group: int, data: bytes, result_type: type[T], idempotent: bool = True
    ) -> T:
        reply, _ = await self.call(
            group, MetaPropose(group, data), MetaResult, idempotent=idempotent
        )
        if not reply.result:  # the machine returned None
            return msgspec.convert(None, result_type)
        return msgspec.msgpack.decode(reply.result, type=result_type)

    async def propose_shard(self, group: int, command: IndexCommand, result_type: type[T]) -> T:
        """An idempotent command for the index shard `group` itself (not routed by key)."""
        return await self._propose(group, encode_command(command), result_type)

    async def propose_root(self, command: RootCommand, result_type: type[T]) -> T:
        return await self._propose(ROOT_GROUP_ID, encode_root_command(command), result_type)

    # -- cluster map -------------------------------------------------------------------
    async def join(
        self,
        name: str,
        address: str,
        capacity_bytes: int,
        zone: str = "",
        rack: str = "",
        host: str = "",
    ) -> Member:
        request = NodeJoin(name, address, capacity_bytes, zone, rack, host)
        reply, _ = await self.call(ROOT_GROUP_ID, request, MetaResult)
        change = msgspec.msgpack.decode(reply.result, type=Change)
        return change.members[0]

    async def heartbeat(
        self, node_id: str, capacity_bytes: int, used_bytes: int, load: float, synced_epoch: int
    ) -> None:
        request = NodeHeartbeat(node_id, capacity_bytes, used_bytes, load, synced_epoch)
        await self.call(ROOT_GROUP_ID, request, MetaResult, timeout=2.0)

    async def operate(self, command: ClusterCommand) -> Change:
        """Drain, undrain, decommission, weights, domains, timeouts (`cairn node ...`)."""
        return await self.propose_root(command, Change)

    async def cluster_view(
        self, consistency: Consistency | None = None, have_table_epoch: int = -1
    ) -> ClusterViewReply:
        level = consistency or self.consistency
        reply, _ = await self.call(
            ROOT_GROUP_ID,
            ClusterViewQuery(level, have_table_epoch),
            ClusterViewReply,
            leader=level != "stale",
        )
        return reply

    # -- buckets -----------------------------------------------------------------------
    async def create_bucket(
        self, name: str, owner: str, policy: StoragePolicy | None = None
    ) -> Bucket:
        command = CreateBucket(name, owner, time.time(), policy or StoragePolicy())
        return await self.propose_root(command, Bucket)

    async def get_bucket(self, name: str, consistency: Consistency | None = None) -> Bucket:
        level = consistency or self.consistency
        reply, _ = await self.call(
            ROOT_GROUP_ID, BucketGet(name, level), BucketReply, leader=level != "stale"
        )
        return reply.bucket

    async def list_buckets(
        self, owner: str | None = None, consistency: Consistency | None = None
    ) -> list[Bucket]:
        level = consistency or self.consistency
        reply, _ = await self.call(
            ROOT_GROUP_ID, BucketListQuery(owner, level), BucketListReply, leader=level != "stale"
        )
        return reply.buckets

    async def set_versioning(self, name: str, owner: str, versioning: VersioningState) -> Bucket:
        """Enable or suspend versioning (`owner` must be the bucket's owner: the machine
        checks it); back to unversioned is refused with `InvalidBucketState`."""
        return await self.propose_root(SetVersioning(name, owner, versioning), Bucket)

    async def delete_bucket(self, name: str, owner: str, settle_seconds: float = 0.0) -> None:
        """The two-phase delete of `meta.buckets`: mark deleting (new writes are refused),
        wait `settle_seconds` for writes already past their bucket check, count objects in
        every shard, then delete or cancel. Raises `BucketNotEmpty` (as RemoteError).

        Deletes of one bucket take turns under the lock `cairn/bucket/<name>`: without it a
        second delete that fails (not empty, timeout) would `CancelDelete` the first one's
        mark while the first is still counting, and a PUT let through then would land in a
        bucket about to be deleted. The second waits (at most the time a delete takes) and
        then finds the bucket gone (`NoSuchBucket`) or active again. PUTs need no lock: the
        `deleting` state refuses them, and the settle wait covers those already past it."""
        wait_s = settle_seconds + self.timeout
        try:
            async with hold_exclusive(
                self, f"cairn/bucket/{name}", label=f"delete bucket {name}", wait_s=wait_s
            ):
                await self._delete_bucket(name, owner, settle_seconds)
        except LockBusy:
            raise RemoteError(
                "ServiceUnavailable", f"another delete of bucket {name!r} is still running"
            ) from None

    async def _delete_bucket(self, name: str, owner: str, settle_seconds: float) -> None:
        await self.propose_root(BeginDelete(name, owner), Bucket)
        try:
            if settle_seconds > 0:
                await asyncio.sleep(settle_seconds)  # the PUT deadline, see meta.buckets
            count = (await self.bucket_stats(name, "linearizable")).versions
            if count == 0:
                await self._abort_bucket_uploads(name)
            await self.propose_root(DeleteBucket(name, owner, count), Bucket | None)  # type: ignore[arg-type]
        except BaseException:
            await self.propose_root(CancelDelete(name), Bucket)
            raise

    async def _abort_bucket_uploads(self, name: str) -> None:
        """Abort the bucket's multipart uploads in every shard (the bucket is `deleting`
        and empty, so no new upload can start and the delete is about to commit)."""
        data = encode_command(AbortBucketUploads(name))
        for shard in (await self.directory(refresh=True)).shards:
            await self._propose(shard.group_id, data, AbortBucketUploadsResult)

    # -- directory and routing ---------------------------------------------------------
    async def directory(self, refresh: bool = False) -> DirectoryReply:
        if self._directory is None or refresh or not self._directory.shards:
            reply, _ = await self.call(
                ROOT_GROUP_ID, DirectoryGet(self.consistency), DirectoryReply
            )
            self._directory = reply
        return self._directory

    async def over_shards(
        self, read: Callable[[DirectoryReply], Awaitable[T]], *, fresh: bool = False
    ) -> T:
        """Run `read`, which visits shards by the directory it is given, until no shard
        answers `WrongShard`: then refresh the directory and run it again (see the module
        doc), within the call deadline. `fresh`: refresh before the first run too."""
        deadline = time.monotonic() + self.timeout
        directory = await self.directory(refresh=fresh)
        while True:
            try:
                return await read(directory)
            except RemoteError as exc:
                if exc.code != "WrongShard" or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(RETRY_PAUSE_SECONDS)  # a split is being carried out
            directory = await self.directory(refresh=True)

    async def bootstrap_directory(self, replicas: tuple[str, ...]) -> ShardInfo:
        return await self.propose_root(Bootstrap(replicas), ShardInfo)

    async def shard_for(self, bucket: str, key: str, refresh: bool = False) -> ShardInfo:
        directory = await self.directory(refresh)
        if not directory.shards:
            raise RemoteError("ServiceUnavailable", "the shard directory is not bootstrapped yet")
        return _shard_of(directory.shards, encode_key(bucket, key))

    async def routed(self, bucket: str, key: str, command: IndexCommand, result_type: type[T]) -> T:
        data = encode_command(command)
        for attempt in range(3):
            shard = await self.shard_for(bucket, key, refresh=attempt > 0)
            try:
                return await self._propose(shard.group_id, data, result_type)
            except RemoteError as exc:
                if exc.code != "WrongShard":
                    raise
        raise RemoteError("ServiceUnavailable", "the shard directory keeps moving; retry")

    # -- objects -----------------------------------------------------------------------
    async def put_object(
        self,
        bucket: str,
        key: str,
        manifest: Manifest,
        versioning: VersioningState,
        condition: WriteCondition | None = None,
        fence: Fence | None = None,
    ) -> PutResult:
        command = PutObject(bucket, key, manifest, versioning, condition, fence)
        return await self.routed(bucket, key, command, PutResult)

    async def delete_object(
        self,
        bucket: str,
        key: str,
        versioning: VersioningState,
        version_id: str | None = None,
        fence: Fence | None = None,
    ) -> DeleteResult:
        command = DeleteObject(bucket, key, time.time(), versioning, version_id, fence)
        return await self.routed(bucket, key, command, DeleteResult)

    async def head_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        consistency: Consistency | None = None,
    ) -> ObjectVersion:
        level = consistency or self.consistency
        for attempt in range(3):
            shard = await self.shard_for(bucket, key, refresh=attempt > 0)
            request = ObjectHead(shard.group_id, bucket, key, version_id, level)
            try:
                reply, _ = await self.call(
                    shard.group_id, request, ObjectHeadReply, leader=level != "stale"
                )
                return reply.version
            except RemoteError as exc:
                if exc.code != "WrongShard":
                    raise
        raise RemoteError("ServiceUnavailable", "the shard directory keeps moving; retry")

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = 1000,
        consistency: Consistency | None = None,
    ) -> ListPage:
        """One ListObjectsV2 page, continuing across shard boundaries when a shard's page
        is not full (a common prefix repeated at a boundary is reported once)."""
        level = consistency or self.consistency
        low = bucket.encode() + b"\x00" + prefix.encode()

        async def read(directory: DirectoryReply) -> ListPage:
            entries: list[ListEntry] = []
            prefixes: list[str] = []
            for shard in bucket_shards(directory.shards, bucket, low):
                request = ObjectList(
                    shard.group_id,
                    bucket,
                    prefix,
                    delimiter,
                    start_after,
                    continuation_token,
                    max_keys - len(entries) - len(prefixes),
                    level,
                    ShardBounds.of(shard),
                )
                reply, _ = await self.call(
                    shard.group_id, request, ObjectListReply, leader=level != "stale"
                )
                page = reply.page
                full = bool(entries or prefixes) and not (page.entries or page.common_prefixes)
                if page.is_truncated and full:
                    # The page filled up at the end of the previous shard and this one holds
                    # more: the next page starts here (past a common prefix that spans the
                    # boundary, which was returned already).
                    resume = shard.start[len(bucket) + 1 :]
                    if prefixes:
                        after = successor_of_prefix(prefixes[-1].encode())
                        resume = max(resume, after) if after is not None else resume
                    return ListPage(entries, prefixes, True, encode_token(resume))
                entries += page.entries
                add_prefixes(prefixes, page.common_prefixes)
                if page.is_truncated:
                    return ListPage(entries, prefixes, True, page.next_continuation_token)
            return ListPage(entries, prefixes, False, None)

        return await self.over_shards(read)

    async def list_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
        consistency: Consistency | None = None,
    ) -> VersionsPage:
        """One ListObjectVersions page, continuing across shard boundaries as
        `list_objects` does. Every shard is asked with the same markers: the one holding
        the marker key resumes after it, later ones start at their first key."""
        level = consistency or self.consistency
        base = bucket.encode() + b"\x00"
        low = base + max(prefix.encode(), key_marker.encode())

        async def read(directory: DirectoryReply) -> VersionsPage:
            entries: list[VersionEntry] = []
            prefixes: list[str] = []
            for shard in bucket_shards(directory.shards, bucket, low):
                request = ObjectVersionsList(
                    shard.group_id,
                    bucket,
                    prefix,
                    delimiter,
                    key_marker,
                    version_id_marker,
                    max_keys - len(entries) - len(prefixes),
                    level,
                    ShardBounds.of(shard),
                )
                reply, _ = await self.call(
                    shard.group_id, request, ObjectVersionsListReply, leader=level != "stale"
                )
                page = reply.page
                full = bool(entries or prefixes) and not (page.entries or page.common_prefixes)
                if page.is_truncated and full:
                    # The page filled up at the end of the previous shard and this one holds
                    # more: the next page resumes after the last item returned.
                    last = (entries[-1].key, entries[-1].version_id) if entries else None
                    key, version_id = resume_markers(last, prefixes)
                    return VersionsPage(entries, prefixes, True, key, version_id or None)
                entries += page.entries
                add_prefixes(prefixes, page.common_prefixes)
                if page.is_truncated:
                    return VersionsPage(
                        entries,
                        prefixes,
                        True,
                        page.next_key_marker,
                        page.next_version_id_marker,
                    )
            return VersionsPage(entries, prefixes, False, None, None)

        return await self.over_shards(read)

    async def bucket_stats(
        self, bucket: str | None, consistency: Consistency | None = None
    ) -> BucketStats:
        """Objects, versions and bytes of `bucket` (None: everything), over all shards."""
        level = consistency or self.consistency

        async def read(directory: DirectoryReply) -> BucketStats:
            objects = versions = size = 0
            for shard in directory.shards:
                query = ShardStatsQuery(shard.group_id, bucket, level, ShardBounds.of(shard))
                reply, _ = await self.call(shard.group_id, query, ShardStatsReply)
                objects += reply.stats.objects
                versions += reply.stats.versions
                size += reply.stats.bytes
            return BucketStats(objects, versions, size)

        return await self.over_shards(read)

    async def live_chunk_ids(self) -> set[bytes]:
        """Every chunk id any shard references (linearizable; GC's mark phase)."""

        async def read(directory: DirectoryReply) -> set[bytes]:
            live: set[bytes] = set()
            for shard in directory.shards:
                query = ShardLiveChunks(shard.group_id, ShardBounds.of(shard))
                reply, payload = await self.call(shard.group_id, query, ShardLiveChunksReply)
                data = bytes(payload)
                if len(data) != reply.count * CHUNK_ID_BYTES:
                    raise RemoteError("bad_reply", "live chunk list has the wrong length")
                live.update(
                    data[i : i + CHUNK_ID_BYTES] for i in range(0, len(data), CHUNK_ID_BYTES)
                )
            return live

        return await self.over_shards(read, fresh=True)


def resume_markers(last: tuple[str, str] | None, prefixes: list[str]) -> tuple[str, str]:
    """(key marker, id marker) that resume a marker-paged listing (versions, uploads)
    after the last item of a page: the later of its last entry, `last` as (key, id), and
    its last common prefix, as (prefix, ""). The page is in key order, and a key never
    equals a common prefix, which ends with the delimiter that would have rolled it up."""
    candidates = [c for c in (last, (prefixes[-1], "") if prefixes else None) if c is not None]
    return max(candidates, default=("", ""))


def _shard_of(shards: list[ShardInfo], encoded_key: bytes) -> ShardInfo:
    ordered = sorted(shards, key=lambda s: s.start)
    starts = [s.start for s in ordered]
    return ordered[max(0, bisect.bisect_right(starts, encoded_key) - 1)]


def bucket_shards(shards: list[ShardInfo], bucket: str, low: bytes) -> Iterator[ShardInfo]:
    """The shards a listing of `bucket` visits, in key order: from the one holding the
    encoded key `low` to the last one that can hold a key of the bucket."""
    for shard in shards_from(shards, low):
        if shard.start > bucket.encode() + b"\x01":
            return  # past every key of the bucket
        yield shard


def add_prefixes(prefixes: list[str], more: list[str]) -> None:
    """Append a shard's common prefixes to a page's; one that spans a shard boundary
    (so both shards return it) is reported once."""
    prefixes += [p for p in more if not prefixes or p != prefixes[-1]]


def shards_from(shards: list[ShardInfo], encoded_key: bytes) -> list[ShardInfo]:
    """The shards in key order, starting with the one that holds `encoded_key`."""
    ordered = sorted(shards, key=lambda s: s.start)
    first = _shard_of(ordered, encoded_key)
    return ordered[ordered.index(first) :]
