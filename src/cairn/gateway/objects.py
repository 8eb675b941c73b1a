"""`ObjectService`: buckets and objects as the gateway's front ends see them.

Theory of operation. The service is the one place that knows how an object API call maps
onto the metadata service (`MetaPort`) and the replicated chunk layer (`ChunkPort`); the
native HTTP API, the native RPC API and (issue 7) the S3 API are thin parsers in front of
it, and all of them report failures through `errors.ApiError`.

- Buckets live in the root group. Creating one checks the name locally first (the S3
  rules, so a bad name is a 400 without a Raft round) and stamps the default storage
  policy; removing one is the two-phase delete of `meta.buckets`, waiting
  `bucket_delete_settle_s` for PUTs already past their last bucket check.
- PUT is `write_path`: objects of at most `INLINE_BYTES_MAX` bytes are stored in the
  manifest; larger ones are chunked, deduplicated, encoded per the bucket's policy and
  replicated at the requested level, then the manifest commits. The codec's key is derived
  from the cluster secret (`keys.cluster_key`), the same in every gateway.
- GET and HEAD read the manifest (at the metadata client's read consistency), resolve the
  range, and stream the covering chunks through `read_path`. A missing key in a missing
  bucket is reported as `NoSuchBucket` (checked only on that error path, so a GET costs
  one metadata read).
- DELETE commits a delete (or a delete marker, under versioning) to the index shard;
  chunks are reclaimed later by GC.

Nothing here reads the wall clock except through the `Clock` port.
"""

import concurrent.futures
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import get_args

from cairn.base.checksum import Buffer
from cairn.base.errors import RemoteError
from cairn.codec import ChunkCodec, Chunker, CodecPolicy
from cairn.gateway.errors import ApiError
from cairn.gateway.ports import ChunkPort, MetaPort
from cairn.gateway.ranges import select_range
from cairn.gateway.read_path import ChunkReader
from cairn.gateway.write_path import (
    BodyPieces,
    ChunkCutter,
    ChunkWriter,
    StoredBody,
    WriteLimits,
    read_head,
)
from cairn.meta.buckets import (
    Bucket,
    BucketError,
    StoragePolicy,
    validate_bucket_name,
)
from cairn.meta.index import (
    OBJECT_KEY_BYTES_MAX,
    DeleteResult,
    ListPage,
    ObjectVersion,
)
from cairn.meta.manifest import (
    CONTENT_TYPE_BYTES_MAX,
    INLINE_BYTES_MAX,
    USER_METADATA_BYTES_MAX,
    ByteRange,
    Manifest,
    build_chunk_refs,
    etag_of_bytes,
    etag_single,
)
from cairn.meta.write_condition import WriteCondition
from cairn.node.chunk_client import Level
from cairn.runtime.clock import Clock, SystemClock

NATIVE_OWNER = "cairn"
"""Owner of buckets made through the native API (whoever holds the cluster secret)."""
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
BUCKET_DELETE_SETTLE_S = 1.0
"""How long a bucket delete waits for PUTs past their last bucket check to commit."""
CODEC_WORKERS = 4
UPLOADS_CUTTING_MAX = 64
"""Uploads whose chunking runs at once (one worker thread each); more wait their turn."""
BYTES_PIECE_BYTES = 1 << 20
LIST_KEYS_MAX = 1000
LEVELS: tuple[str, ...] = get_args(Level)


@dataclass(frozen=True, slots=True)
class PutOutcome:
    etag: str
    size: int
    version_id: str
    chunks: int
    """Chunk refs in the manifest (0 for an inline object)."""
    new_chunks: int
    """Chunks this upload stored; the others were already in the cluster (dedup)."""
    new_bytes: int
    """Plaintext bytes of the new chunks."""
    stored_bytes: int
    """Encoded bytes of the new chunks (per replica)."""


@dataclass(frozen=True, slots=True)
class ObjectRead:
    """An object version opened for reading: its manifest, the range, the bytes."""

    version: ObjectVersion
    manifest: Manifest
    byte_range: ByteRange | None
    body: AsyncGenerator[bytes, None]

    @property
    def content_length(self) -> int:
        return self.byte_range.length if self.byte_range else self.manifest.size


def parse_level(value: str | None, default: Level) -> Level:
    """A write consistency level from a header or field ("" / None: the default)."""
    if not value:
        return default
    levels: dict[str, Level] = {"one": "one", "quorum": "quorum", "all": "all"}
    if value in levels:
        return levels[value]
    raise ApiError("InvalidArgument", f"write consistency must be one of {LEVELS}: {value!r}")


def validate_key(key: str) -> None:
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        raise ApiError("InvalidArgument", "object key is not valid UTF-8") from None
    if not 1 <= size <= OBJECT_KEY_BYTES_MAX:
        raise ApiError("KeyTooLongError", f"object keys are 1..{OBJECT_KEY_BYTES_MAX} bytes")


def _validate_attributes(content_type: str, metadata: dict[str, str]) -> None:
    if len(content_type.encode(errors="replace")) > CONTENT_TYPE_BYTES_MAX:
        raise ApiError("InvalidArgument", f"content type over {CONTENT_TYPE_BYTES_MAX} bytes")
    size = sum(
        len(k.encode(errors="replace")) + len(v.encode(errors="replace"))
        for k, v in metadata.items()
    )
    if size > USER_METADATA_BYTES_MAX:
        raise ApiError("MetadataTooLarge", f"user metadata over {USER_METADATA_BYTES_MAX} bytes")


async def _pieces_of(data: Buffer) -> BodyPieces:
    view = memoryview(data).cast("B")
    for start in range(0, len(view), BYTES_PIECE_BYTES):
        yield view[start : start + BYTES_PIECE_BYTES]


class ObjectService:
    def __init__(
        self,
        meta: MetaPort,
        chunks: ChunkPort,
        cluster_key: bytes,
        *,
        default_level: Level = "quorum",
        default_policy: StoragePolicy | None = None,
        gc_grace_s: float = 3600.0,
        chunker: Chunker | None = None,
        limits: WriteLimits | None = None,
        owner: str = NATIVE_OWNER,
        ready: Callable[[], Awaitable[object]] | None = None,
        bucket_delete_settle_s: float = BUCKET_DELETE_SETTLE_S,
        codec_workers: int = CODEC_WORKERS,
        clock: Clock | None = None,
    ) -> None:
        """`ready` is awaited before chunk IO (e.g. the first placement view)."""
        self.meta = meta
        self.chunks = chunks
        self.default_level = default_level
        self.default_policy = default_policy or StoragePolicy()
        self.gc_grace_s = gc_grace_s
        self.owner = owner
        self.bucket_delete_settle_s = bucket_delete_settle_s
        self._chunker = chunker or Chunker()
        self._limits = limits or WriteLimits()
        self._ready = ready
        self._clock = clock or SystemClock()
        self._codecs = {
            (compress, encrypt): ChunkCodec.from_cluster_key(
                cluster_key, CodecPolicy(compress=compress, encrypt=encrypt)
            )
            for compress in (False, True)
            for encrypt in (False, True)
        }
        self._codec_executor = concurrent.futures.ThreadPoolExecutor(
            codec_workers, thread_name_prefix="cairn-codec"
        )
        self._cut_executor = concurrent.futures.ThreadPoolExecutor(
            UPLOADS_CUTTING_MAX, thread_name_prefix="cairn-cutter"
        )
        self.reader = ChunkReader(chunks, self._codecs[True, True], self._codec_executor)

    def close(self) -> None:
        self._codec_executor.shutdown(wait=False, cancel_futures=True)
        self._cut_executor.shutdown(wait=False, cancel_futures=True)

    # -- buckets ---------------------------------------------------------------------------
    async def make_bucket(self, name: str) -> Bucket:
        try:
            validate_bucket_name(name)
        except BucketError as exc:
            raise ApiError(exc.code, str(exc)) from None
        return await self.meta.create_bucket(name, self.owner, self.default_policy)

    async def remove_bucket(self, name: str) -> None:
        await self.meta.delete_bucket(name, self.owner, self.bucket_delete_settle_s)

    async def list_buckets(self) -> list[Bucket]:
        return await self.meta.list_buckets()

    async def _bucket(self, name: str) -> Bucket:
        try:
            validate_bucket_name(name)
        except BucketError:
            raise ApiError("NoSuchBucket", f"no bucket {name!r}") from None
        return await self.meta.get_bucket(name)

    async def _writable_bucket(self, name: str) -> Bucket:
        bucket = await self._bucket(name)
        if not bucket.writable:
            raise ApiError("InvalidBucketState", f"bucket {name!r} is being deleted")
        return bucket

    # -- PUT -------------------------------------------------------------------------------
    async def put(
        self,
        bucket_name: str,
        key: str,
        body: BodyPieces | Buffer,
        *,
        level: Level | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        expected_size: int | None = None,
        content_headers: dict[str, str] | None = None,
        checksums: Callable[[], dict[str, str]] | None = None,
        condition: WriteCondition | None = None,
    ) -> PutOutcome:
        """Store an object (see `write_path`). `expected_size` (the Content-Length) is
        checked against the body's real length before anything commits. `content_headers`
        and `checksums` go into the manifest (`checksums` is called once the body ended:
        the S3 front end verifies them as the body streams). `condition` is checked when
        the manifest commits, atomically with it (a failed one leaves chunks for GC)."""
        level = level or self.default_level
        content_type = content_type or DEFAULT_CONTENT_TYPE
        metadata = metadata or {}
        validate_key(key)
        _validate_attributes(content_type, metadata)
        if (
            expected_size is not None
            and not 0 <= expected_size <= self._limits.object_size_bytes_max
        ):
            raise ApiError(
                "EntityTooLarge", f"objects are at most {self._limits.object_size_bytes_max} bytes"
            )
        started = self._clock.monotonic()
        bucket = await self._writable_bucket(bucket_name)
        pieces = _pieces_of(body) if isinstance(body, bytes | bytearray | memoryview) else body
        head, ended = await read_head(pieces, INLINE_BYTES_MAX + 1)
        if ended and len(head) <= INLINE_BYTES_MAX:
            _check_size(len(head), expected_size)
            manifest = Manifest(
                len(head),
                etag_of_bytes(head),
                self._clock.wall(),
                content_type,
                metadata,
                inline=head,
                content_headers=content_headers or {},
                checksums=checksums() if checksums else {},
            )
            stored: StoredBody | None = None
        else:
            stored = await self._store_chunks(bucket, head, pieces, level)
            _check_size(stored.size, expected_size)
            manifest = Manifest(
                stored.size,
                etag_single(stored.md5),
                self._clock.wall(),
                content_type,
                metadata,
                chunks=build_chunk_refs(stored.refs),
                content_headers=content_headers or {},
                checksums=checksums() if checksums else {},
            )
            await self._keep_chunks_alive(stored, started, level)
            bucket = await self._writable_bucket(bucket_name)  # a delete may have begun
        result = await self.meta.put_object(
            bucket_name, key, manifest, bucket.versioning, condition
        )
        return PutOutcome(
            etag=manifest.etag,
            size=manifest.size,
            version_id=result.version_id,
            chunks=len(manifest.chunks),
            new_chunks=stored.new_chunks if stored else 0,
            new_bytes=stored.new_bytes if stored else 0,
            stored_bytes=stored.stored_bytes if stored else 0,
        )

    async def _store_chunks(
        self, bucket: Bucket, head: bytes, pieces: BodyPieces, level: Level
    ) -> StoredBody:
        if self._ready is not None:
            await self._ready()
        codec = self._codecs[bucket.policy.compression, bucket.policy.encryption]
        cutter = ChunkCutter(
            self._chunker,
            codec.chunk_id,
            head,
            pieces,
            self._cut_executor,
            queue_chunks_max=self._limits.cut_queue_chunks_max,
            size_bytes_max=self._limits.object_size_bytes_max,
        )
        async with cutter:
            writer = ChunkWriter(self.chunks, codec, self._codec_executor, level, self._limits)
            return await writer.store(cutter)

    async def _keep_chunks_alive(self, stored: StoredBody, started: float, level: Level) -> None:
        """Re-touch every chunk if the upload took over half the GC grace period."""
        elapsed = self._clock.monotonic() - started
        if elapsed <= self.gc_grace_s / 2:
            return
        ids = list(dict.fromkeys(chunk_id for chunk_id, _ in stored.refs))
        present = await self.chunks.present(ids, level)
        missing = len(set(ids) - present)
        if missing:
            raise ApiError(
                "RequestTimeout",
                f"the upload took {elapsed:.0f} s (GC grace {self.gc_grace_s:.0f} s) and "
                f"{missing} of its chunks are gone; upload again",
            )

    # -- multipart parts (issue 7, `gateway.s3.multipart`) --------------------------------
    async def store_part(
        self,
        bucket_name: str,
        body: BodyPieces,
        *,
        level: Level | None = None,
        expected_size: int | None = None,
    ) -> StoredBody:
        """Chunk, deduplicate and replicate a body *without* committing a manifest: a
        multipart part. Always chunks, never inline, so parts concatenate into an object.
        The size is checked against `expected_size` and a slow upload's chunks are
        touched again, as in `put`; the caller commits the part's chunk list."""
        level = level or self.default_level
        started = self._clock.monotonic()
        bucket = await self._writable_bucket(bucket_name)
        stored = await self._store_chunks(bucket, b"", body, level)
        _check_size(stored.size, expected_size)
        await self._keep_chunks_alive(stored, started, level)
        return stored

    # -- GET / HEAD ------------------------------------------------------------------------
    async def head(
        self, bucket_name: str, key: str, version_id: str | None = None
    ) -> ObjectVersion:
        validate_key(key)
        await self._check_bucket_name(bucket_name)
        try:
            version = await self.meta.head_object(bucket_name, key, version_id)
        except RemoteError as exc:
            if exc.code == "NoSuchKey":
                await self._bucket(bucket_name)  # NoSuchBucket wins over NoSuchKey
            raise
        if version.manifest is None:
            raise ApiError("NoSuchKey", f"{bucket_name}/{key} is deleted")
        return version

    async def get(
        self,
        bucket_name: str,
        key: str,
        bounds: tuple[int | None, int | None] | None = None,
        version_id: str | None = None,
        part_number: int | None = None,
    ) -> ObjectRead:
        """Open an object for reading; `bounds` (first, last) as in an HTTP Range header,
        or one part of it (`part_number`, from the manifest that is read: never a part of
        another version).

        Raises `InvalidRange` for a range that selects nothing, `InvalidPartNumber` past
        the last part."""
        version = await self.head(bucket_name, key, version_id)
        manifest = version.manifest
        assert manifest is not None
        byte_range = select_range(manifest, bounds, part_number)
        if manifest.chunks and self._ready is not None:
            await self._ready()
        return ObjectRead(version, manifest, byte_range, self.reader.stream(manifest, byte_range))

    # -- DELETE / LIST ---------------------------------------------------------------------
    async def delete(
        self, bucket_name: str, key: str, version_id: str | None = None
    ) -> DeleteResult:
        validate_key(key)
        bucket = await self._bucket(bucket_name)
        return await self.meta.delete_object(bucket_name, key, bucket.versioning, version_id)

    async def list(
        self,
        bucket_name: str,
        prefix: str = "",
        delimiter: str = "",
        continuation_token: str | None = None,
        max_keys: int = LIST_KEYS_MAX,
        start_after: str = "",
    ) -> ListPage:
        if max_keys < 0:
            raise ApiError("InvalidArgument", "max-keys must not be negative")
        await self._bucket(bucket_name)
        return await self.meta.list_objects(
            bucket_name,
            prefix=prefix,
            delimiter=delimiter,
            start_after=start_after,
            continuation_token=continuation_token or None,
            max_keys=min(max_keys, LIST_KEYS_MAX),
        )

    async def _check_bucket_name(self, name: str) -> None:
        try:
            validate_bucket_name(name)
        except BucketError:
            raise ApiError("NoSuchBucket", f"no bucket {name!r}") from None


def _check_size(actual: int, expected: int | None) -> None:
    if expected is not None and actual != expected:
        raise ApiError(
            "IncompleteBody", f"the body has {actual} bytes, Content-Length said {expected}"
        )
