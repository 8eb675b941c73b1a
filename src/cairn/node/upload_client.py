"""Client calls for multipart uploads, over a `MetaClient` (index shards, `meta.uploads`).

Kept beside `meta_client` rather than in it, as `user_client` is: the calls need only the
client's routing (`routed` for commands, the shard directory for queries) and uploads
have their own small vocabulary. Commands go to the shard that owns (bucket, key) and
refresh the directory on `WrongShard`; `list_uploads` continues into the next shard of
the bucket's range when a shard's page is not full, as `list_objects` does.

Idempotency under retries (an attempt whose reply was lost is sent again): putting a
part again replaces it with the same part; a Complete that already happened answers with
the remembered result; an Abort that already happened answers `NoSuchUpload`; a Create
sent twice makes a second upload nobody knows of, which expires.
"""

import time
from typing import TypeVar

from cairn.base.errors import RemoteError
from cairn.meta.buckets import VersioningState
from cairn.meta.index import encode_key
from cairn.meta.uploads import (
    LIST_PARTS_MAX,
    LIST_UPLOADS_MAX,
    AbortResult,
    AbortUpload,
    CompleteResult,
    CompleteUpload,
    CreateUpload,
    CreateUploadResult,
    Part,
    PartsPage,
    PutPart,
    PutPartResult,
    UploadInfo,
    UploadsPage,
)
from cairn.meta.write_condition import Fence, WriteCondition
from cairn.node.meta_client import MetaClient, add_prefixes, bucket_shards, resume_markers
from cairn.node.meta_messages import Consistency, DirectoryReply, ShardBounds
from cairn.node.upload_messages import (
    UploadListQuery,
    UploadListReply,
    UploadPartsQuery,
    UploadPartsReply,
)

T = TypeVar("T")
ROUTING_ATTEMPTS = 3


class UploadClient:
    def __init__(self, meta: MetaClient) -> None:
        self.meta = meta

    # -- commands ----------------------------------------------------------------------
    async def create(
        self,
        bucket: str,
        key: str,
        *,
        initiator: str = "",
        content_type: str = "binary/octet-stream",
        user_metadata: dict[str, str] | None = None,
        content_headers: dict[str, str] | None = None,
        checksum_algorithm: str = "",
        created_s: float | None = None,
    ) -> str:
        """A new upload's id."""
        command = CreateUpload(
            bucket,
            key,
            time.time() if created_s is None else created_s,
            initiator,
            content_type,
            user_metadata or {},
            content_headers or {},
            checksum_algorithm,
        )
        result = await self.meta.routed(bucket, key, command, CreateUploadResult)
        return result.upload_id

    async def put_part(self, bucket: str, key: str, upload_id: str, part: Part) -> PutPartResult:
        command = PutPart(bucket, key, upload_id, part)
        return await self.meta.routed(bucket, key, command, PutPartResult)

    async def complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        versioning: VersioningState,
        created_s: float | None = None,
        condition: WriteCondition | None = None,
        fence: Fence | None = None,
    ) -> CompleteResult:
        """Commit the object from `parts` ((number, ETag) in request order), if
        `condition` holds for the key's current object then and `fence` is not stale."""
        command = CompleteUpload(
            bucket,
            key,
            upload_id,
            parts,
            time.time() if created_s is None else created_s,
            versioning,
            condition,
            fence,
        )
        return await self.meta.routed(bucket, key, command, CompleteResult)

    async def abort(self, bucket: str, key: str, upload_id: str) -> AbortResult:
        command = AbortUpload(bucket, key, upload_id)
        return await self.meta.routed(bucket, key, command, AbortResult)

    # -- queries -----------------------------------------------------------------------
    async def list_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number_marker: int = 0,
        max_parts: int = LIST_PARTS_MAX,
        consistency: Consistency | None = None,
    ) -> PartsPage:
        level = consistency or self.meta.consistency
        for attempt in range(ROUTING_ATTEMPTS):
            shard = await self.meta.shard_for(bucket, key, refresh=attempt > 0)
            request = UploadPartsQuery(
                shard.group_id, bucket, key, upload_id, part_number_marker, max_parts, level
            )
            try:
                reply, _ = await self.meta.call(
                    shard.group_id, request, UploadPartsReply, leader=level != "stale"
                )
                return reply.page
            except RemoteError as exc:
                if exc.code != "WrongShard":
                    raise
        raise RemoteError("ServiceUnavailable", "the shard directory keeps moving; retry")

    async def upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        """The upload's attributes; `RemoteError("NoSuchUpload")` if it is not in progress."""
        return (await self.list_parts(bucket, key, upload_id, max_parts=0)).upload

    async def list_uploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = LIST_UPLOADS_MAX,
        consistency: Consistency | None = None,
    ) -> UploadsPage:
        """One ListMultipartUploads page, continuing across shard boundaries."""
        level = consistency or self.meta.consistency
        low = bucket.encode() + b"\x00" + prefix.encode()
        if key_marker:
            low = max(low, encode_key(bucket, key_marker))

        async def read(directory: DirectoryReply) -> UploadsPage:
            uploads: list[UploadInfo] = []
            prefixes: list[str] = []
            for shard in bucket_shards(directory.shards, bucket, low):
                request = UploadListQuery(
                    shard.group_id,
                    bucket,
                    prefix,
                    delimiter,
                    key_marker,
                    upload_id_marker,
                    max_uploads - len(uploads) - len(prefixes),
                    level,
                    ShardBounds.of(shard),
                )
                reply, _ = await self.meta.call(
                    shard.group_id, request, UploadListReply, leader=level != "stale"
                )
                page = reply.page
                full = bool(uploads or prefixes) and not (page.uploads or page.common_prefixes)
                if page.is_truncated and full:
                    # Full at the end of the previous shard, and this one holds more: resume
                    # after the last item returned (shards hold disjoint, ordered keys).
                    last = (uploads[-1].key, uploads[-1].upload_id) if uploads else None
                    key, upload_id = resume_markers(last, prefixes)
                    return UploadsPage(uploads, prefixes, True, key, upload_id)
                uploads += page.uploads
                add_prefixes(prefixes, page.common_prefixes)
                if page.is_truncated:
                    return UploadsPage(
                        uploads, prefixes, True, page.next_key_marker, page.next_upload_id_marker
                    )
            return UploadsPage(uploads, prefixes, False, "", "")

        return await self.meta.over_shards(read)
