"""Multipart uploads in an index shard: the state, the S3 rules, the queries. Pure.

Theory of operation. A multipart upload is state of the key it will become, so it lives
in the index shard that owns that key (routed by (bucket, key) like every object
command, and subject to the same `KeyOutOfRange` rule): `IndexShard` owns an
`UploadTable` and hands it the upload commands after it has checked the key. The table
never sees the bucket table or a clock: times and the bucket's versioning state are
command fields stamped by the proposer, and upload ids come from the Raft index of the
`CreateUpload` entry (`{shard:08x}{index:016x}`, like version ids), so every replica picks
the same id and ids sort in creation order within a shard.

Parts. `PutPart` stores one part's manifest: its size, the hex MD5 of its bytes (the
part's ETag), any verified x-amz-checksum values, and its chunks as (id, length) pairs in
order. Parts are always chunked, never inline, so that completing an upload is only a
concatenation of chunk lists: the object's `ChunkRef` offsets are recomputed from the
lengths. Putting a part number again replaces the part (S3's rule); the old part's chunks
become unreferenced and GC reclaims them. Every chunk of every part of an in-progress
upload is in `chunk_ids()`, which the shard adds to `live_chunk_ids`: GC never reclaims
a part that an upload may still complete.

Completing. `CompleteUpload` names the parts to keep, as (number, ETag) in the order of
the request. It is checked in S3's order -- part numbers strictly ascending
(`InvalidPartOrder`), every named part uploaded with that ETag (`InvalidPart`), every part
but the last at least `PART_SIZE_BYTES_MIN` (`EntityTooSmall`) -- and only then does the
shard build the object manifest: size = sum of the parts, ETag = MD5 of the concatenated
binary part MD5s + "-N" (`manifest.etag_multipart`), attributes as given at creation.
The shard commits it as the key's new version (the versioning rules of `index`) and drops
the upload, in the same command, so the object appears and the upload disappears
atomically. Parts not named are dropped with the upload. The result is remembered for the
last `COMPLETED_REMEMBERED_MAX` uploads, so a Complete retried after a lost reply
answers as the first did instead of `NoSuchUpload`.

Listing. ListParts pages by part number; ListMultipartUploads walks the uploads in
(key, upload id) order from the markers, with prefix and delimiter rolled into common
prefixes as ListObjects does (`index.successor_of_prefix` skips past a rolled-up prefix).

Abandoned uploads. `expired(now_s, expiry_s)` names uploads created more than
`expiry_s` ago; the shard group's leader aborts them (`node.upload_service`).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

import msgspec

from cairn.meta.buckets import VersioningState
from cairn.meta.machine import MetaError
from cairn.meta.manifest import (
    CHUNK_ID_BYTES,
    CONTENT_HEADERS_BYTES_MAX,
    CONTENT_TYPE_BYTES_MAX,
    MULTIPART_PARTS_MAX,
    USER_METADATA_BYTES_MAX,
    Manifest,
    build_chunk_refs,
    etag_multipart,
)
from cairn.meta.write_condition import Fence, WriteCondition

PART_NUMBER_MAX = MULTIPART_PARTS_MAX
"""Part numbers are 1..10,000 (S3)."""
PART_SIZE_BYTES_MAX = 5 * 1024**3
PART_SIZE_BYTES_MIN = 5 * 1024**2
"""Every part of a completed upload but the last is at least this large (S3)."""
PART_CHUNKS_MAX = 20_480
"""A 5 GiB part cut with FastCDC's 256 KiB minimum has at most this many chunks; as
(id, length) pairs the `PutPart` command stays under Raft's 1 MiB proposal limit."""
UPLOADS_MAX = 100_000
"""In-progress uploads per shard."""
LIST_UPLOADS_MAX = 1000
LIST_PARTS_MAX = 1000
COMPLETED_REMEMBERED_MAX = 1000
EXPIRED_BATCH_MAX = 1000
CHECKSUMS_MAX = 4
CHECKSUM_TEXT_CHARS_MAX = 128
CHECKSUM_ALGORITHM_CHARS_MAX = 16


class UploadError(MetaError):
    code = "InvalidRequest"


class NoSuchUpload(UploadError):
    code = "NoSuchUpload"


class InvalidPart(UploadError):
    code = "InvalidPart"


class InvalidPartOrder(UploadError):
    code = "InvalidPartOrder"


class EntityTooSmall(UploadError):
    code = "EntityTooSmall"


class TooManyUploads(UploadError):
    code = "SlowDown"


class InvalidUploadArgument(UploadError):
    code = "InvalidArgument"


class PartChunk(msgspec.Struct, frozen=True, array_like=True):
    chunk_id: bytes
    length: int


class Part(msgspec.Struct, frozen=True):
    part_number: int
    size: int
    etag: str
    """Hex MD5 of the part's bytes, without quotes."""
    created_s: float
    chunks: tuple[PartChunk, ...] = ()
    checksums: dict[str, str] = {}

    def summary(self) -> Part:
        """The part without its chunk list (what listings return)."""
        return msgspec.structs.replace(self, chunks=())


class UploadInfo(msgspec.Struct, frozen=True):
    bucket: str
    key: str
    upload_id: str
    created_s: float
    initiator: str = ""
    content_type: str = "binary/octet-stream"
    user_metadata: dict[str, str] = {}
    content_headers: dict[str, str] = {}
    checksum_algorithm: str = ""


class PartsPage(msgspec.Struct, frozen=True):
    upload: UploadInfo
    parts: list[Part]
    """Summaries (no chunk lists), ascending part numbers."""
    is_truncated: bool
    next_part_number_marker: int


class UploadsPage(msgspec.Struct, frozen=True):
    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str
    next_upload_id_marker: str


# Commands (tags distinct from the index's own commands) -----------------------------------


class CreateUpload(msgspec.Struct, tag="upload_create", frozen=True):
    bucket: str
    key: str
    created_s: float
    initiator: str = ""
    content_type: str = "binary/octet-stream"
    user_metadata: dict[str, str] = {}
    content_headers: dict[str, str] = {}
    checksum_algorithm: str = ""


class PutPart(msgspec.Struct, tag="upload_part", frozen=True):
    bucket: str
    key: str
    upload_id: str
    part: Part


class CompleteUpload(msgspec.Struct, tag="upload_complete", frozen=True):
    bucket: str
    key: str
    upload_id: str
    parts: list[tuple[int, str]]
    """(part number, ETag without quotes) in request order."""
    created_s: float
    versioning: VersioningState
    """The bucket's versioning state at completion."""
    condition: WriteCondition | None = None
    """Checked against the key's current object as the object commits."""
    fence: Fence | None = None
    """Checked against the highest token the shard accepted for its lock (`meta.index`)."""


class AbortUpload(msgspec.Struct, tag="upload_abort", frozen=True):
    bucket: str
    key: str
    upload_id: str


class AbortBucketUploads(msgspec.Struct, tag="upload_abort_bucket", frozen=True):
    """Forget every upload into `bucket` this shard holds: its delete is going through.
    S3 deletes a bucket whatever uploads are in progress, and they go with it; left here,
    a bucket created later under the same name (by anyone) would list them and could
    complete them into itself."""

    bucket: str


class AbortBucketUploadsResult(msgspec.Struct, frozen=True):
    aborted: int


UploadCommand = CreateUpload | PutPart | CompleteUpload | AbortUpload


class CreateUploadResult(msgspec.Struct, frozen=True):
    upload_id: str


class PutPartResult(msgspec.Struct, frozen=True):
    etag: str


class CompleteResult(msgspec.Struct, frozen=True):
    version_id: str
    etag: str
    size: int


class AbortResult(msgspec.Struct, frozen=True):
    parts: int


class UploadEntry(msgspec.Struct, frozen=True, array_like=True):
    """One upload in a snapshot."""

    encoded_key: bytes
    info: UploadInfo
    parts: list[Part]


class CompletedEntry(msgspec.Struct, frozen=True, array_like=True):
    upload_id: str
    encoded_key: bytes
    result: CompleteResult


class _Upload:
    __slots__ = ("encoded_key", "info", "parts")

    def __init__(self, encoded_key: bytes, info: UploadInfo, parts: dict[int, Part]) -> None:
        self.encoded_key = encoded_key
        self.info = info
        self.parts = parts


def validate_part(part: Part) -> None:
    if not 1 <= part.part_number <= PART_NUMBER_MAX:
        raise InvalidUploadArgument(f"part numbers are 1..{PART_NUMBER_MAX}: {part.part_number}")
    if not 0 <= part.size <= PART_SIZE_BYTES_MAX:
        raise InvalidUploadArgument(f"a part is 0..{PART_SIZE_BYTES_MAX} bytes: {part.size}")
    if len(part.etag) != 32 or part.etag.strip("0123456789abcdef"):
        raise InvalidUploadArgument(f"malformed part ETag {part.etag!r}")
    if len(part.chunks) > PART_CHUNKS_MAX:
        raise InvalidUploadArgument(f"a part has at most {PART_CHUNKS_MAX} chunks")
    if any(len(c.chunk_id) != CHUNK_ID_BYTES or c.length <= 0 for c in part.chunks):
        raise InvalidUploadArgument("malformed part chunk")
    if sum(c.length for c in part.chunks) != part.size:
        raise InvalidUploadArgument("part chunks do not add up to its size")
    if len(part.checksums) > CHECKSUMS_MAX or any(
        len(k) > 16 or len(v) > CHECKSUM_TEXT_CHARS_MAX for k, v in part.checksums.items()
    ):
        raise InvalidUploadArgument("malformed part checksums")


_AFTER_EVERY_ID = "\U0010ffff"
"""Sorts after every upload id: `(key, _AFTER_EVERY_ID)` is just past a key's uploads."""


def _successor_of_prefix(prefix: bytes) -> bytes | None:
    """`index.successor_of_prefix` (index imports this module, so not from there)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _text_bytes(values: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in values.items())


def _clean_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


class UploadTable:
    """The in-progress uploads of one shard (see the module docstring)."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._uploads: dict[str, _Upload] = {}
        self._order: list[tuple[bytes, str]] = []  # sorted (encoded key, upload id)
        self._completed: dict[str, CompletedEntry] = {}  # insertion order: oldest first

    def __len__(self) -> int:
        return len(self._uploads)

    # Queries ------------------------------------------------------------------------------

    def _get(self, encoded_key: bytes, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.encoded_key != encoded_key:
            raise NoSuchUpload(
                "the specified upload does not exist: it may have been aborted or completed"
            )
        return upload

    def info(self, encoded_key: bytes, upload_id: str) -> UploadInfo:
        return self._get(encoded_key, upload_id).info

    def list_parts(
        self,
        encoded_key: bytes,
        upload_id: str,
        part_number_marker: int = 0,
        max_parts: int = LIST_PARTS_MAX,
    ) -> PartsPage:
        if part_number_marker < 0 or max_parts < 0:
            raise InvalidUploadArgument("part-number-marker and max-parts must be >= 0")
        upload = self._get(encoded_key, upload_id)
        max_parts = min(max_parts, LIST_PARTS_MAX)
        numbers = sorted(n for n in upload.parts if n > part_number_marker)
        shown = numbers[:max_parts]
        truncated = len(numbers) > len(shown)
        parts = [upload.parts[n].summary() for n in shown]
        next_marker = shown[-1] if shown else part_number_marker
        return PartsPage(upload.info, parts, truncated, next_marker)

    def list_uploads(
        self,
        bucket_prefix: bytes,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = LIST_UPLOADS_MAX,
    ) -> UploadsPage:
        """ListMultipartUploads over this shard; `bucket_prefix` is `bucket + 0x00`."""
        if max_uploads < 0:
            raise InvalidUploadArgument("max-uploads must be >= 0")
        max_uploads = min(max_uploads, LIST_UPLOADS_MAX)
        base = bucket_prefix
        prefixed = base + prefix.encode()
        sep = delimiter.encode()
        start: tuple[bytes, str] = (prefixed, "")
        if key_marker:
            marker = base + key_marker.encode()
            rest = key_marker[len(prefix) :] if key_marker.startswith(prefix) else ""
            if sep and rest and rest.find(delimiter) == len(rest) - len(delimiter):
                after = _successor_of_prefix(marker)  # the marker is a rolled-up prefix
                assert after is not None
                start = max(start, (after, ""))
            elif upload_id_marker:
                start = max(start, (marker, upload_id_marker + "\x00"))
            else:
                start = max(start, (marker, _AFTER_EVERY_ID))
        order = self._order
        i = bisect_left(order, start)
        uploads: list[UploadInfo] = []
        prefixes: list[str] = []
        truncated = False
        next_key = next_id = ""
        while i < len(order) and order[i][0].startswith(prefixed):
            if len(uploads) + len(prefixes) == max_uploads:
                truncated = True
                break
            encoded, upload_id = order[i]
            cut = encoded.find(sep, len(prefixed)) if sep else -1
            if cut >= 0:
                common = encoded[len(base) : cut + len(sep)]
                prefixes.append(common.decode())
                next_key, next_id = common.decode(), ""
                after = _successor_of_prefix(base + common)
                assert after is not None, "UTF-8 never holds 0xff"
                i = bisect_left(order, (after, ""), i)
            else:
                info = self._uploads[upload_id].info
                uploads.append(info)
                next_key, next_id = info.key, info.upload_id
                i += 1
        if not truncated:
            next_key = next_id = ""
        return UploadsPage(uploads, prefixes, truncated, next_key, next_id)

    def expired(
        self, now_s: float, expiry_s: float, limit: int = EXPIRED_BATCH_MAX
    ) -> list[UploadInfo]:
        """Uploads created more than `expiry_s` before `now_s` (oldest ids first)."""
        out: list[UploadInfo] = []
        for upload in self._uploads.values():
            if now_s - upload.info.created_s > expiry_s:
                out.append(upload.info)
                if len(out) == limit:
                    break
        return out

    def chunk_ids(self) -> Iterator[bytes]:
        for upload in self._uploads.values():
            for part in upload.parts.values():
                for chunk in part.chunks:
                    yield chunk.chunk_id

    # Commands -----------------------------------------------------------------------------

    def create(self, encoded_key: bytes, command: CreateUpload, upload_id: str) -> UploadInfo:
        if len(self._uploads) >= UPLOADS_MAX:
            raise TooManyUploads(f"this shard already holds {UPLOADS_MAX} uploads")
        if len(command.content_type.encode()) > CONTENT_TYPE_BYTES_MAX:
            raise InvalidUploadArgument("content type too long")
        # The manifest limits, checked now rather than when the parts are all uploaded.
        if _text_bytes(command.user_metadata) > USER_METADATA_BYTES_MAX:
            raise InvalidUploadArgument(f"user metadata over {USER_METADATA_BYTES_MAX} bytes")
        if _text_bytes(command.content_headers) > CONTENT_HEADERS_BYTES_MAX:
            raise InvalidUploadArgument(f"content headers over {CONTENT_HEADERS_BYTES_MAX} bytes")
        if len(command.checksum_algorithm) > CHECKSUM_ALGORITHM_CHARS_MAX:
            raise InvalidUploadArgument("malformed checksum algorithm")
        info = UploadInfo(
            command.bucket,
            command.key,
            upload_id,
            command.created_s,
            command.initiator,
            command.content_type,
            command.user_metadata,
            command.content_headers,
            command.checksum_algorithm,
        )
        assert upload_id not in self._uploads
        self._uploads[upload_id] = _Upload(encoded_key, info, {})
        insort(self._order, (encoded_key, upload_id))
        return info

    def put_part(self, encoded_key: bytes, command: PutPart) -> PutPartResult:
        upload = self._get(encoded_key, command.upload_id)
        validate_part(command.part)
        upload.parts[command.part.part_number] = command.part
        return PutPartResult(command.part.etag)

    def abort(self, encoded_key: bytes, command: AbortUpload) -> AbortResult:
        upload = self._get(encoded_key, command.upload_id)
        self._drop(command.upload_id)
        return AbortResult(len(upload.parts))

    def remembered(self, encoded_key: bytes, upload_id: str) -> CompleteResult | None:
        """The result of a recent Complete of this upload (a retried Complete)."""
        done = self._completed.get(upload_id)
        return done.result if done is not None and done.encoded_key == encoded_key else None

    def manifest_for(self, encoded_key: bytes, command: CompleteUpload) -> Manifest:
        """Check a Complete against S3's rules and build the object's manifest (no
        change to the table: the shard commits the object, then calls `completed`)."""
        upload = self._get(encoded_key, command.upload_id)
        if not command.parts:
            raise InvalidUploadArgument("you must specify at least one part")
        if len(command.parts) > PART_NUMBER_MAX:
            raise InvalidUploadArgument(f"at most {PART_NUMBER_MAX} parts")
        previous = 0
        for number, _ in command.parts:
            if number <= previous:
                raise InvalidPartOrder(
                    "the list of parts was not in ascending order; parts must be ordered by "
                    "part number"
                )
            previous = number
        chosen: list[Part] = []
        for number, etag in command.parts:
            part = upload.parts.get(number)
            if part is None or part.etag != _clean_etag(etag):
                raise InvalidPart(
                    f"part {number} could not be found, or its ETag does not match: upload "
                    "the part again or name its current ETag"
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < PART_SIZE_BYTES_MIN:
                raise EntityTooSmall(
                    f"part {part.part_number} is {part.size} bytes; every part but the last "
                    f"must be at least {PART_SIZE_BYTES_MIN} bytes"
                )
        refs = build_chunk_refs((c.chunk_id, c.length) for p in chosen for c in p.chunks)
        info = upload.info
        return Manifest(
            sum(p.size for p in chosen),
            etag_multipart([bytes.fromhex(p.etag) for p in chosen]),
            command.created_s,
            info.content_type,
            info.user_metadata,
            chunks=refs,
            content_headers=info.content_headers,
            part_sizes=tuple(p.size for p in chosen),
        )

    def completed(self, encoded_key: bytes, upload_id: str, result: CompleteResult) -> None:
        self._drop(upload_id)
        self._completed[upload_id] = CompletedEntry(upload_id, encoded_key, result)
        while len(self._completed) > COMPLETED_REMEMBERED_MAX:
            del self._completed[next(iter(self._completed))]

    def _drop(self, upload_id: str) -> None:
        upload = self._uploads.pop(upload_id)
        del self._order[bisect_left(self._order, (upload.encoded_key, upload_id))]

    def abort_bucket(self, bucket: str) -> int:
        """Drop every upload into `bucket`; how many there were."""
        gone = [u for u, upload in self._uploads.items() if upload.info.bucket == bucket]
        for upload_id in gone:
            self._drop(upload_id)
        return len(gone)

    def drop_from(self, end: bytes) -> int:
        """Forget every upload of a key at or after `end` (the shard shrank)."""
        gone = [u for u, upload in self._uploads.items() if upload.encoded_key >= end]
        for upload_id in gone:
            self._drop(upload_id)
        return len(gone)

    # Snapshots ----------------------------------------------------------------------------

    def entries(self, at: bytes = b"") -> list[UploadEntry]:
        """The uploads of keys at or after `at`, in (key, id) order."""
        out = []
        for encoded, upload_id in self._order[bisect_left(self._order, (at, "")) :]:
            upload = self._uploads[upload_id]
            parts = [upload.parts[n] for n in sorted(upload.parts)]
            out.append(UploadEntry(encoded, upload.info, parts))
        return out

    def completed_entries(self) -> list[CompletedEntry]:
        return list(self._completed.values())

    def restore(self, entries: list[UploadEntry], completed: list[CompletedEntry]) -> None:
        self._clear()
        for entry in entries:
            parts = {p.part_number: p for p in entry.parts}
            self._uploads[entry.info.upload_id] = _Upload(entry.encoded_key, entry.info, parts)
            self._order.append((entry.encoded_key, entry.info.upload_id))
        self._order.sort()
        for done in completed:
            self._completed[done.upload_id] = done
