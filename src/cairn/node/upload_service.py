"""Multipart upload reads on a metadata node, and the cleanup of abandoned uploads.

Reads. `UploadPartsQuery` and `UploadListQuery` are served like the other metadata reads
(`meta_service`): pass the shard group's read barrier for the requested consistency,
then read the local `IndexShard` directly; a machine error comes back as a
`RemoteError` with its S3 code (`NoSuchUpload`, `WrongShard`, ...).

Abandoned uploads. An upload that is never completed or aborted would keep its parts'
chunks alive for ever (they count as live for GC). Every `scan_interval_s`, on each index
shard group this node *leads*, the uploads created more than `expiry_s` ago (the leader's
wall clock against the creation time the gateway stamped) are aborted through the
group's log, at most `EXPIRED_BATCH_MAX` per scan; their chunks are then unreferenced and
the next GC round reclaims them. Only the leader proposes, so each upload is aborted
once; a leader change in between at worst makes an abort fail with `NoSuchUpload`,
which is ignored.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from cairn.base.errors import CairnError, RemoteError
from cairn.meta.index import IndexShard, encode_command
from cairn.meta.machine import MetaError
from cairn.meta.uploads import AbortUpload, UploadInfo
from cairn.monitor.logs import log_event
from cairn.node.meta_messages import Consistency, checked
from cairn.node.upload_messages import (
    UploadListQuery,
    UploadListReply,
    UploadPartsQuery,
    UploadPartsReply,
)
from cairn.raft.driver import RaftGroup
from cairn.raft.host import RaftHost
from cairn.raft.types import NotLeader, ProposalDropped, Role
from cairn.wire import CallContext, Reply, Router

log = logging.getLogger("cairn.node")
T = TypeVar("T")

MULTIPART_EXPIRY_S_DEFAULT = 7 * 24 * 3600.0
SCAN_INTERVAL_S_MAX = 3600.0
SCAN_INTERVAL_S_MIN = 1.0


class UploadService:
    def __init__(
        self,
        host: RaftHost,
        expiry_s: float = MULTIPART_EXPIRY_S_DEFAULT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`expiry_s` 0 turns the cleanup off."""
        self._host = host
        self.expiry_s = expiry_s
        self.scan_interval_s = min(SCAN_INTERVAL_S_MAX, max(SCAN_INTERVAL_S_MIN, expiry_s / 4))
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.aborted = 0
        """Uploads this node aborted as abandoned (a counter for tests and status)."""

    def register(self, router: Router) -> None:
        router.register(UploadPartsQuery, self._parts)
        router.register(UploadListQuery, self._uploads)

    def start(self) -> None:
        if self.expiry_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- reads -------------------------------------------------------------------------
    def _shard(self, group_id: int) -> tuple[RaftGroup, IndexShard]:
        group = self._host.groups.get(group_id)
        if group is None or not isinstance(group.machine, IndexShard):
            raise RemoteError("no_such_group", f"group {group_id} is not an index shard here")
        return group, group.machine

    async def _read(self, group_id: int, consistency: Consistency, read: Callable[[], T]) -> T:
        group, _ = self._shard(group_id)
        try:
            await group.read_barrier(consistency)
        except NotLeader:
            raise RemoteError("not_leader", self._host.leader_address(group_id)) from None
        except ProposalDropped as exc:
            raise RemoteError("dropped", str(exc)) from None
        try:
            return read()
        except MetaError as exc:
            raise RemoteError(exc.code, str(exc)) from None

    async def _parts(self, request: UploadPartsQuery, _p: memoryview, _c: CallContext) -> Reply:
        _, shard = self._shard(request.group)
        page = await self._read(
            request.group,
            request.consistency,
            lambda: shard.list_parts(
                request.bucket,
                request.key,
                request.upload_id,
                request.part_number_marker,
                request.max_parts,
            ),
        )
        return UploadPartsReply(page)

    async def _uploads(self, request: UploadListQuery, _p: memoryview, _c: CallContext) -> Reply:
        _, shard = self._shard(request.group)
        page = await self._read(
            request.group,
            request.consistency,
            lambda: checked(shard, request.expect).list_uploads(
                request.bucket,
                request.prefix,
                request.delimiter,
                request.key_marker,
                request.upload_id_marker,
                request.max_uploads,
            ),
        )
        return UploadListReply(page)

    # -- abandoned uploads ---------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval_s)
            try:
                await self.expire_once()
            except CairnError as exc:
                log_event(log, "uploads.expiry_failed", logging.DEBUG, error=repr(exc))

    async def expire_once(self) -> int:
        """Abort the expired uploads of every shard group this node leads; how many."""
        aborted = 0
        now = self._clock()
        for group in list(self._host.groups.values()):
            machine = group.machine
            if not isinstance(machine, IndexShard) or group.node.role != Role.LEADER:
                continue
            for info in machine.uploads.expired(now, self.expiry_s):
                if await self._abort(group, info):
                    aborted += 1
        self.aborted += aborted
        return aborted

    async def _abort(self, group: RaftGroup, info: UploadInfo) -> bool:
        command = AbortUpload(info.bucket, info.key, info.upload_id)
        result = await group.propose_command(encode_command(command))
        if isinstance(result, MetaError):
            return False  # gone already, or the key moved to another shard
        log_event(
            log,
            "uploads.expired",
            bucket=info.bucket,
            key=info.key[:256],
            upload_id=info.upload_id,
            age_s=round(self._clock() - info.created_s),
        )
        return True
