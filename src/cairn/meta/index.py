"""One object index shard: (bucket, key) -> versions -> manifest, for a range of keys.

Theory of operation. An index shard is the state machine of one Raft group and owns the
half-open range `[start, end)` of *encoded* object keys (`cairn.placement.encode_object_key`:
UTF-8 bucket, 0x00, UTF-8 key), so byte order of encoded keys is (bucket, key) order and
each bucket's keys are contiguous. The root group's shard directory says which shard owns
which range; a command for a key outside the range fails with `KeyOutOfRange` and the
caller refreshes its copy of the directory.

Each key holds its versions, newest last; a version is a manifest or a delete marker. The
shard does not read the bucket table (another Raft group): every write carries the bucket's
versioning state, and S3's rules follow from it:

| versioning  | PUT                                   | DELETE without a version id          |
|-------------|---------------------------------------|--------------------------------------|
| unversioned | replaces everything, version "null"   | removes the key                      |
| enabled     | appends a version with a fresh id     | appends a delete marker (fresh id)   |
| suspended   | replaces the "null" version           | replaces "null" with a null marker   |

DELETE with a version id removes exactly that version. Fresh version ids are derived from
the shard id and the Raft index of the command (`{shard:08x}{index:016x}`), so every
replica picks the same id and two shards never do.

Listing (S3 ListObjectsV2) walks a sorted list of the keys whose newest version is not a
delete marker, by bisection: start at max(prefix, resume point), stop when keys leave the
prefix; with a delimiter, a key whose rest (after the prefix) contains it is rolled up into
a common prefix and the walk jumps past every key under that prefix. Keys and common
prefixes both count toward `max_keys`. The continuation token is opaque to clients; it is
the URL-safe base64 of the first key (UTF-8 bytes) the next page may return, so the shard
keeps no cursor state. A page from one shard that is not truncated means "nothing more
here": the service continues at the next shard of the bucket's range with the same
parameters, dropping a common prefix equal to the last one it already returned (a prefix
can span a shard boundary).

Listing versions (S3 ListObjectVersions) walks a second sorted list, of every key that has
any version (delete markers included), the same way; per key it gives the versions newest
first, each counting toward `max_keys` on its own (a common prefix counts once). It
resumes from S3's markers, not from a token: after `key_marker` (all of its versions), or
with `version_id_marker` too, after that version of that key; a key marker inside a
common prefix of the request resumes after the whole prefix, so a page that ended on a
common prefix does not return it again. The next markers are the last item returned (a
common prefix has no version id).

Counters per bucket (live objects, versions including markers, bytes over all versions)
are kept up to date on every change; a bucket is empty for deletion when its version count
is 0 in every shard. `live_chunk_ids` gives every chunk referenced by any version, the mark
phase of garbage collection.

Splits (docs/design/meta.md, "Splitting a shard"). Once the root directory has given the
upper part `[at, end)` of this shard's range to a new group, `ShrinkRange(at, seed_group)`
cuts it off here in one command: it takes `split_snapshot` of that part as the *seed* of
the new group, keeps the seed in this machine's state (and so in its snapshots), and from
the next command on refuses those keys with `KeyOutOfRange`. Every replica cuts at the
same log index, so every replica holds the same seed, and the seed holds every write this
shard accepted for the part: nothing committed here is left behind, nothing committed
later can land here. Each node starts its replica of the new group from its own copy of
the seed; once all have, `DropSeed` frees it.

Fencing (issue 8). A write may carry the fencing token of a lock that guards it
(`Fence(name, token)`, from the native API's `X-Cairn-Fence`). The shard remembers the
highest token it has accepted for each lock name and refuses a write carrying a lower one
(`FenceStale`), in the same command as the write: once the lock's next holder has
written through this shard, no write of an earlier holder can land after it, however long
that holder was paused. (The gateway also asks the lock service, just before proposing,
whether the token is still held; that catches a stale holder whose successor has not
written yet. Together they order every fenced write of a name by token.) At most
`FENCE_NAMES_MAX` names are remembered; past it the one with the lowest token is
forgotten.

Multipart uploads in progress are state of the keys they will become, so they live here
too, routed and range-checked like objects; `meta.uploads` holds their rules and the
shard delegates to it. Completing an upload commits the object version and drops the
upload in one command. The chunks of their parts count as live for GC, and they travel
with the key range in snapshots and splits.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from cairn.meta.buckets import VersioningState, validate_bucket_name
from cairn.meta.locks import LOCK_NAME_BYTES_MAX, lock_name_problem
from cairn.meta.machine import (
    COMMAND_FORMAT_V1,
    SNAPSHOT_FORMAT_V1,
    MetaError,
    ReplicatedMachine,
    SnapshotFormatError,
    VersionedCodec,
)
from cairn.meta.manifest import Manifest, validate
from cairn.meta.uploads import (
    AbortBucketUploads,
    AbortBucketUploadsResult,
    AbortResult,
    AbortUpload,
    CompletedEntry,
    CompleteResult,
    CreateUpload,
    CreateUploadResult,
    PartsPage,
    PutPart,
    PutPartResult,
    UploadCommand,
    UploadEntry,
    UploadInfo,
    UploadsPage,
    UploadTable,
)
from cairn.meta.write_condition import Fence, WriteCondition

OBJECT_KEY_BYTES_MAX = 1024
LIST_KEYS_MAX = 1000
"""A page lists at most this many keys and common prefixes (S3 clamps max-keys to 1000)."""
VERSIONS_PER_KEY_MAX = 100_000
CONTINUATION_TOKEN_CHARS_MAX = 2048
NULL_VERSION = "null"
FENCE_NAMES_MAX = 10_000
"""Lock names whose highest fencing token a shard remembers."""


class ObjectIndexError(MetaError):
    """An index command or query was rejected."""

    code = "InvalidRequest"


class NoSuchKey(ObjectIndexError):
    code = "NoSuchKey"

    def __init__(self, message: str, delete_marker: bool = False) -> None:
        super().__init__(message)
        self.delete_marker = delete_marker


class NoSuchVersion(ObjectIndexError):
    code = "NoSuchVersion"


class InvalidObjectKey(ObjectIndexError):
    """Empty, longer than `OBJECT_KEY_BYTES_MAX`, or not valid UTF-8."""

    code = "KeyTooLongError"


class KeyOutOfRange(ObjectIndexError):
    """The key belongs to another shard: refresh the shard directory and retry."""

    code = "WrongShard"


class InvalidListArgument(ObjectIndexError):
    code = "InvalidArgument"


class TooManyVersions(ObjectIndexError):
    code = "TooManyVersions"


class InvalidFence(ObjectIndexError):
    code = "InvalidArgument"


class FenceStale(ObjectIndexError):
    """A fenced write whose token is below one this shard accepted for the same lock."""

    code = "FenceStale"


class PreconditionFailed(ObjectIndexError):
    """A conditional write whose condition did not hold when its command applied."""

    code = "PreconditionFailed"


class ObjectVersion(msgspec.Struct, frozen=True):
    """A version of a key; `manifest` None is a delete marker."""

    version_id: str
    created_s: float
    manifest: Manifest | None

    @property
    def is_delete_marker(self) -> bool:
        return self.manifest is None

    @property
    def size(self) -> int:
        return self.manifest.size if self.manifest is not None else 0


class BucketStats(msgspec.Struct, frozen=True):
    objects: int = 0
    """Keys whose newest version is an object (what a listing shows)."""
    versions: int = 0
    """Every version, delete markers included (0 means the bucket is empty here)."""
    bytes: int = 0
    """Sum of the sizes of every version."""


class ListEntry(msgspec.Struct, frozen=True):
    key: str
    version: ObjectVersion


class ListPage(msgspec.Struct, frozen=True):
    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_continuation_token: str | None

    @property
    def key_count(self) -> int:
        return len(self.entries) + len(self.common_prefixes)


class VersionEntry(msgspec.Struct, frozen=True, array_like=True):
    """One version in a ListObjectVersions page (what S3 shows of it, not the manifest)."""

    key: str
    version_id: str
    is_latest: bool
    created_s: float
    size: int
    etag: str
    """"" for a delete marker."""
    is_delete_marker: bool


class VersionsPage(msgspec.Struct, frozen=True):
    entries: list[VersionEntry]
    """In key order and, per key, newest first."""
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    """With `next_version_id_marker`, where the next page starts (when truncated)."""
    next_version_id_marker: str | None

    @property
    def key_count(self) -> int:
        return len(self.entries) + len(self.common_prefixes)


# Commands ---------------------------------------------------------------------------------


class PutObject(msgspec.Struct, tag="put", frozen=True):
    bucket: str
    key: str
    manifest: Manifest
    versioning: VersioningState
    condition: WriteCondition | None = None
    fence: Fence | None = None


class DeleteObject(msgspec.Struct, tag="delete", frozen=True):
    bucket: str
    key: str
    created_s: float
    versioning: VersioningState
    version_id: str | None = None
    fence: Fence | None = None


class ShrinkRange(msgspec.Struct, tag="shrink", frozen=True):
    """Give up `[end, old end)` after a split; with `seed_group`, keep what is given up as
    the seed of that group (see the module docstring). Applying it again is a no-op."""

    end: bytes
    seed_group: int = 0


class DropSeed(msgspec.Struct, tag="dropseed", frozen=True):
    """Forget the seed of `group` (every replica of that group has started from it)."""

    group: int


IndexCommand = (
    PutObject | DeleteObject | ShrinkRange | DropSeed | UploadCommand | AbortBucketUploads
)


class PutResult(msgspec.Struct, frozen=True):
    version_id: str


class DeleteResult(msgspec.Struct, frozen=True):
    deleted: bool
    """Whether something was removed or a marker was written."""
    version_id: str | None = None
    """The version removed, or the id of the new delete marker."""
    delete_marker: bool = False


class ShrinkResult(msgspec.Struct, frozen=True):
    dropped_keys: int


class _KeyEntry(msgspec.Struct, frozen=True, array_like=True):
    encoded_key: bytes
    versions: list[ObjectVersion]


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    shard_id: int
    start: bytes
    end: bytes | None
    keys: list[_KeyEntry]
    uploads: list[UploadEntry] = []
    """Multipart uploads in progress (absent in snapshots from before issue 7)."""
    completed_uploads: list[CompletedEntry] = []
    fences: list[Fence] = []
    """The highest token accepted per lock name (absent in snapshots before stop 12)."""
    seeds: list[tuple[int, bytes]] = []
    """Seeds of groups split off and not yet started everywhere (absent before stop 15)."""


_commands: VersionedCodec[IndexCommand] = VersionedCodec(IndexCommand, COMMAND_FORMAT_V1)
_snapshots: VersionedCodec[_SnapshotV1] = VersionedCodec(
    _SnapshotV1, SNAPSHOT_FORMAT_V1, SnapshotFormatError
)


def encode_command(command: IndexCommand) -> bytes:
    return _commands.encode(command)


def decode_command(data: bytes) -> IndexCommand:
    return _commands.decode(data)


def encode_key(bucket: str, key: str) -> bytes:
    """The encoded key of (bucket, key), after checking both (typed errors)."""
    validate_bucket_name(bucket)
    try:
        raw = key.encode()
    except UnicodeEncodeError as exc:
        raise InvalidObjectKey("key is not valid UTF-8") from exc
    if not 1 <= len(raw) <= OBJECT_KEY_BYTES_MAX:
        raise InvalidObjectKey(f"key must be 1..{OBJECT_KEY_BYTES_MAX} bytes, not {len(raw)}")
    return bucket.encode() + b"\x00" + raw


def successor_of_prefix(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def encode_token(resume: bytes) -> str:
    return base64.urlsafe_b64encode(resume).decode().rstrip("=")


def decode_token(token: str) -> bytes:
    if len(token) > CONTINUATION_TOKEN_CHARS_MAX:
        raise InvalidListArgument("continuation token too long")
    try:
        return base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidListArgument("the continuation token provided is incorrect") from exc


@dataclass
class _Counts:
    objects: int = 0
    versions: int = 0
    bytes: int = 0


class IndexShard(ReplicatedMachine[IndexCommand]):
    """The replicated index of one key range (see the module docstring)."""

    commands = _commands

    def __init__(self, shard_id: int = 1, start: bytes = b"", end: bytes | None = None) -> None:
        super().__init__()
        self._reset(shard_id, start, end)

    def _reset(self, shard_id: int, start: bytes, end: bytes | None) -> None:
        assert end is None or start < end
        self.shard_id = shard_id
        self.start = start
        self.end = end
        self._versions: dict[bytes, list[ObjectVersion]] = {}
        self._live: list[bytes] = []  # sorted encoded keys whose newest version is an object
        self._keys: list[bytes] = []  # sorted encoded keys with any version (markers too)
        self._counts: dict[str, _Counts] = {}
        self.uploads = UploadTable()
        self._fences: dict[str, int] = {}
        self._seeds: dict[int, _Seed] = {}

    # Queries ------------------------------------------------------------------------------

    def owns(self, encoded_key: bytes) -> bool:
        return self.start <= encoded_key and (self.end is None or encoded_key < self.end)

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion:
        """The newest version (never a marker), or the version `version_id` (maybe one)."""
        versions = self._versions.get(self._key(bucket, key), [])
        if version_id is None:
            if not versions:
                raise NoSuchKey(f"{bucket}/{key}")
            if versions[-1].is_delete_marker:
                raise NoSuchKey(f"{bucket}/{key} is deleted", delete_marker=True)
            return versions[-1]
        for version in versions:
            if version.version_id == version_id:
                return version
        raise NoSuchVersion(f"{bucket}/{key} has no version {version_id!r}")

    def versions(self, bucket: str, key: str) -> list[ObjectVersion]:
        """Every version of a key, newest first."""
        return self._versions.get(self._key(bucket, key), [])[::-1]

    def stats(self, bucket: str) -> BucketStats:
        counts = self._counts.get(bucket, _Counts())
        return BucketStats(counts.objects, counts.versions, counts.bytes)

    def total(self) -> BucketStats:
        return BucketStats(
            sum(c.objects for c in self._counts.values()),
            sum(c.versions for c in self._counts.values()),
            sum(c.bytes for c in self._counts.values()),
        )

    def check_bounds(self, start: bytes, end: bytes | None) -> None:
        """Raise `KeyOutOfRange` unless this shard covers exactly `[start, end)`: a reader
        that visits shards by a copy of the directory from before or after a split (or
        a replica that has not applied it yet) finds out here, and refreshes."""
        if (start, end) != (self.start, self.end):
            raise KeyOutOfRange(
                f"shard {self.shard_id} covers [{self.start!r}, {self.end!r}),"
                f" not [{start!r}, {end!r})"
            )

    @property
    def key_count(self) -> int:
        """Keys with at least one version (what a size-based split counts)."""
        return len(self._versions)

    def seed(self, group: int) -> bytes | None:
        """The seed of a group split off this shard, while it is kept (see `DropSeed`)."""
        seed = self._seeds.get(group)
        return seed.encoded() if seed is not None else None

    def seed_groups(self) -> list[int]:
        return sorted(self._seeds)

    def split_point(self) -> bytes | None:
        """The middle key, where a split leaves half the keys on each side; None with
        fewer than two keys (a key's versions never straddle shards)."""
        if len(self._keys) < 2:
            return None
        return self._keys[len(self._keys) // 2]

    def live_chunk_ids(self) -> frozenset[bytes]:
        """Every chunk id that some version (current or not) references."""
        return frozenset(self._iter_chunk_ids())

    def _iter_chunk_ids(self) -> Iterator[bytes]:
        for versions in self._versions.values():
            for version in versions:
                if version.manifest is not None:
                    yield from version.manifest.chunk_ids()
        yield from self.uploads.chunk_ids()  # parts of uploads in progress

    def upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        """An upload in progress (`NoSuchUpload` if there is none of that id for the key)."""
        return self.uploads.info(self._key(bucket, key), upload_id)

    def list_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number_marker: int = 0,
        max_parts: int = 1000,
    ) -> PartsPage:
        return self.uploads.list_parts(
            self._key(bucket, key), upload_id, part_number_marker, max_parts
        )

    def list_uploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        """One page of ListMultipartUploads over this shard."""
        _check_list_arguments(
            bucket, {"prefix": prefix, "delimiter": delimiter, "key-marker": key_marker}
        )
        return self.uploads.list_uploads(
            bucket.encode() + b"\x00",
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )

    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = LIST_KEYS_MAX,
    ) -> ListPage:
        """One page of ListObjectsV2 over this shard (see the module docstring)."""
        max_keys = _check_list_arguments(
            bucket,
            {"prefix": prefix, "delimiter": delimiter, "start-after": start_after},
            max_keys,
        )
        if continuation_token is not None:
            resume = decode_token(continuation_token)
        else:
            resume = start_after.encode() + b"\x00" if start_after else b""
        base = bucket.encode() + b"\x00"
        prefixed = base + prefix.encode()
        sep = delimiter.encode()
        live = self._live
        i = bisect_left(live, max(prefixed, base + resume))
        entries: list[ListEntry] = []
        prefixes: list[str] = []
        last: bytes | None = None  # resume point after the last item returned
        truncated = False
        while i < len(live) and live[i].startswith(prefixed):
            if len(entries) + len(prefixes) == max_keys:
                truncated = True
                break
            encoded = live[i]
            cut = encoded.find(sep, len(prefixed)) if sep else -1
            if cut >= 0:
                common = encoded[len(base) : cut + len(sep)]
                prefixes.append(common.decode())
                after = successor_of_prefix(base + common)
                assert after is not None, "UTF-8 never holds 0xff"
                last = after[len(base) :]
                i = bisect_left(live, after, i)
            else:
                key = encoded[len(base) :]
                entries.append(ListEntry(key.decode(), self._versions[encoded][-1]))
                last = key + b"\x00"
                i += 1
        token = None
        if truncated:
            token = encode_token(last if last is not None else max(resume, prefix.encode()))
        return ListPage(entries, prefixes, truncated, token)

    def list_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = LIST_KEYS_MAX,
    ) -> VersionsPage:
        """One page of ListObjectVersions over this shard (see the module docstring).

        A `version_id_marker` needs a `key_marker`; one that names no version of a key
        this shard holds is `InvalidArgument` (resuming elsewhere would repeat or skip
        versions), while a marker key with no versions here just resumes after it."""
        texts = {
            "prefix": prefix,
            "delimiter": delimiter,
            "key-marker": key_marker,
            "version-id-marker": version_id_marker,
        }
        max_keys = _check_list_arguments(bucket, texts, max_keys)
        if version_id_marker and not key_marker:
            raise InvalidListArgument("a version-id-marker cannot be given without a key-marker")
        base = bucket.encode() + b"\x00"
        prefixed = base + prefix.encode()
        sep = delimiter.encode()
        start, resume_after = self._versions_start(base, prefix, sep, key_marker, version_id_marker)
        keys = self._keys
        i = bisect_left(keys, max(prefixed, start))
        entries: list[VersionEntry] = []
        prefixes: list[str] = []
        last: tuple[str, str | None] = (key_marker, version_id_marker or None)
        truncated = False
        while not truncated and i < len(keys) and keys[i].startswith(prefixed):
            encoded = keys[i]
            cut = encoded.find(sep, len(prefixed)) if sep else -1
            if cut >= 0:
                if len(entries) + len(prefixes) == max_keys:
                    truncated = True
                    break
                common = encoded[len(base) : cut + len(sep)]
                prefixes.append(common.decode())
                last = (prefixes[-1], None)
                after = successor_of_prefix(base + common)
                assert after is not None, "UTF-8 never holds 0xff"
                i = bisect_left(keys, after, i)
                continue
            key = encoded[len(base) :].decode()
            versions = self._versions[encoded]
            newest = len(versions) - 1
            n = newest
            if resume_after is not None and encoded == start:
                n = _position(versions, resume_after, key) - 1
            while n >= 0:
                if len(entries) + len(prefixes) == max_keys:
                    truncated = True
                    break
                entries.append(_version_entry(key, versions[n], n == newest))
                last = (key, versions[n].version_id)
                n -= 1
            i += 1
        if not truncated:
            return VersionsPage(entries, prefixes, False, None, None)
        return VersionsPage(entries, prefixes, True, *last)

    @staticmethod
    def _versions_start(
        base: bytes, prefix: str, sep: bytes, key_marker: str, version_id_marker: str
    ) -> tuple[bytes, str | None]:
        """Where a versions page starts: the first encoded key it may return, and (when
        that key is the marker key) the version to resume after."""
        if not key_marker:
            return base, None
        marker = key_marker.encode()
        if sep and marker.startswith(prefix.encode()):
            cut = marker.find(sep, len(prefix.encode()))
            if cut >= 0:  # inside a common prefix: resume after the whole prefix
                after = successor_of_prefix(base + marker[: cut + len(sep)])
                assert after is not None, "UTF-8 never holds 0xff"
                return after, None
        if version_id_marker:
            return base + marker, version_id_marker
        return base + marker + b"\x00", None

    def split_snapshot(self, at: bytes, new_shard_id: int) -> bytes:
        """A snapshot of `[at, end)` as shard `new_shard_id`, to seed the new group."""
        return _snapshots.encode(self._split_state(at, new_shard_id))

    def _split_state(self, at: bytes, new_shard_id: int) -> _SnapshotV1:
        if not (self.owns(at) and at > self.start):
            raise KeyOutOfRange(f"split point {at!r} is not inside this shard")
        keys = [_KeyEntry(k, self._versions[k]) for k in self._keys[bisect_left(self._keys, at) :]]
        uploads = self.uploads.entries(at)
        fences = self._fence_list()  # both halves keep every name: they may hold its keys
        return _SnapshotV1(0, new_shard_id, at, self.end, keys, uploads, [], fences)

    # Commands -----------------------------------------------------------------------------

    def execute(self, command: IndexCommand) -> object:
        if isinstance(command, PutObject):
            return self._put(command)
        if isinstance(command, DeleteObject):
            return self._delete(command)
        if isinstance(command, ShrinkRange):
            return self._shrink(command)
        if isinstance(command, DropSeed):
            return self._seeds.pop(command.group, None) is not None
        if isinstance(command, AbortBucketUploads):
            return AbortBucketUploadsResult(self.uploads.abort_bucket(command.bucket))
        return self._upload_command(command)

    def _upload_command(
        self, command: UploadCommand
    ) -> CreateUploadResult | PutPartResult | CompleteResult | AbortResult:
        encoded = self._key(command.bucket, command.key)
        if isinstance(command, CreateUpload):
            info = self.uploads.create(encoded, command, self._fresh_id())
            return CreateUploadResult(info.upload_id)
        if isinstance(command, PutPart):
            return self.uploads.put_part(encoded, command)
        if isinstance(command, AbortUpload):
            return self.uploads.abort(encoded, command)
        done = self.uploads.remembered(encoded, command.upload_id)
        if done is not None:
            return done  # a retried Complete
        manifest = self.uploads.manifest_for(encoded, command)
        put = self._put(
            PutObject(
                command.bucket,
                command.key,
                manifest,
                command.versioning,
                command.condition,
                command.fence,
            )
        )
        result = CompleteResult(put.version_id, manifest.etag, manifest.size)
        self.uploads.completed(encoded, command.upload_id, result)
        return result

    def _key(self, bucket: str, key: str) -> bytes:
        encoded = encode_key(bucket, key)
        if not self.owns(encoded):
            raise KeyOutOfRange(f"{bucket}/{key} is not in shard {self.shard_id}")
        return encoded

    def _fresh_id(self) -> str:
        return f"{self.shard_id:08x}{self.applied_index:016x}"

    def _put(self, command: PutObject) -> PutResult:
        encoded = self._key(command.bucket, command.key)
        validate(command.manifest)
        self._check_fence(command.fence)
        old = self._versions.get(encoded, [])
        if command.condition is not None:
            _check_condition(command, old)
        if command.versioning == VersioningState.ENABLED:
            if len(old) >= VERSIONS_PER_KEY_MAX:
                raise TooManyVersions(f"{command.bucket}/{command.key}")
            version_id = self._fresh_id()
            new = [*old, ObjectVersion(version_id, command.manifest.created_s, command.manifest)]
        else:
            version_id = NULL_VERSION
            version = ObjectVersion(version_id, command.manifest.created_s, command.manifest)
            keep = [] if command.versioning == VersioningState.UNVERSIONED else old
            new = [v for v in keep if v.version_id != NULL_VERSION] + [version]
        self._replace(command.bucket, encoded, new)
        self._record_fence(command.fence)
        return PutResult(version_id)

    def _check_fence(self, fence: Fence | None) -> None:
        """Refuse a write fenced with a token below the highest accepted for its lock."""
        if fence is None:
            return
        name, token = fence.name, fence.token  # types checked by the command decoder
        if lock_name_problem(name) is not None:
            raise InvalidFence(f"fence lock name must be 1 to {LOCK_NAME_BYTES_MAX} bytes")
        if token < 1:
            raise InvalidFence(f"fencing token {token} is not a positive integer")
        highest = self._fences.get(name, 0)
        if token < highest:
            raise FenceStale(
                f"fencing token {token} of lock {name!r} is below {highest}, already accepted"
            )

    def _record_fence(self, fence: Fence | None) -> None:
        if fence is None or self._fences.get(fence.name, 0) >= fence.token:
            return
        self._fences[fence.name] = fence.token
        if len(self._fences) > FENCE_NAMES_MAX:
            oldest = min(self._fences.items(), key=lambda item: (item[1], item[0]))
            del self._fences[oldest[0]]

    def _fence_list(self) -> list[Fence]:
        return [Fence(name, token) for name, token in sorted(self._fences.items())]

    def _delete(self, command: DeleteObject) -> DeleteResult:
        self._check_fence(command.fence)
        result = self._delete_unfenced(command)
        self._record_fence(command.fence)
        return result

    def _delete_unfenced(self, command: DeleteObject) -> DeleteResult:
        encoded = self._key(command.bucket, command.key)
        old = self._versions.get(encoded, [])
        if command.version_id is not None:
            new = [v for v in old if v.version_id != command.version_id]
            if len(new) == len(old):
                return DeleteResult(False, command.version_id)
            was_marker = any(v.is_delete_marker for v in old if v.version_id == command.version_id)
            self._replace(command.bucket, encoded, new)
            return DeleteResult(True, command.version_id, was_marker)
        if command.versioning == VersioningState.UNVERSIONED:
            self._replace(command.bucket, encoded, [])
            return DeleteResult(bool(old))
        if command.versioning == VersioningState.ENABLED:
            if len(old) >= VERSIONS_PER_KEY_MAX:
                raise TooManyVersions(f"{command.bucket}/{command.key}")
            version_id = self._fresh_id()
            keep = old
        else:
            version_id = NULL_VERSION
            keep = [v for v in old if v.version_id != NULL_VERSION]
        marker = ObjectVersion(version_id, command.created_s, None)
        self._replace(command.bucket, encoded, [*keep, marker])
        return DeleteResult(True, version_id, True)

    def _shrink(self, command: ShrinkRange) -> ShrinkResult:
        if command.end == self.end:
            return ShrinkResult(0)  # a retry of the shrink that got here first
        if not (self.owns(command.end) and command.end > self.start):
            raise KeyOutOfRange(f"new end {command.end!r} is not inside this shard")
        if command.seed_group:
            if command.seed_group == self.shard_id:
                raise ObjectIndexError("a shard cannot seed itself")
            # Kept as objects: encoding the half of a big shard takes a while (0.2 s for
            # 25,000 keys), and `seed` does it later, off the log's apply path. Nothing
            # changes them meanwhile: the keys leave this shard below, and versions are
            # replaced, never changed in place.
            self._seeds[command.seed_group] = _Seed(
                self._split_state(command.end, command.seed_group)
            )
        dropped = self._keys[bisect_left(self._keys, command.end) :]  # a copy
        for encoded in dropped:
            bucket = encoded[: encoded.index(b"\x00")].decode()
            self._replace(bucket, encoded, [])
        self.end = command.end
        self.uploads.drop_from(command.end)
        return ShrinkResult(len(dropped))

    def _replace(self, bucket: str, encoded: bytes, new: list[ObjectVersion]) -> None:
        """Set a key's versions and keep the live list and the counters in step."""
        old = self._versions.get(encoded, [])
        was_live = bool(old) and not old[-1].is_delete_marker
        is_live = bool(new) and not new[-1].is_delete_marker
        counts = self._counts.setdefault(bucket, _Counts())
        counts.versions += len(new) - len(old)
        counts.bytes += sum(v.size for v in new) - sum(v.size for v in old)
        counts.objects += int(is_live) - int(was_live)
        if new:
            self._versions[encoded] = new
        else:
            self._versions.pop(encoded, None)
        if is_live and not was_live:
            insort(self._live, encoded)
        elif was_live and not is_live:
            del self._live[bisect_left(self._live, encoded)]
        if new and not old:
            insort(self._keys, encoded)
        elif old and not new:
            del self._keys[bisect_left(self._keys, encoded)]
        if counts.versions == 0:
            del self._counts[bucket]

    # Snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        keys = [_KeyEntry(k, self._versions[k]) for k in self._keys]
        snap = _SnapshotV1(
            self.applied_index,
            self.shard_id,
            self.start,
            self.end,
            keys,
            self.uploads.entries(),
            self.uploads.completed_entries(),
            self._fence_list(),
            sorted((group, seed.encoded()) for group, seed in self._seeds.items()),
        )
        return _snapshots.encode(snap)

    def restore(self, data: bytes) -> None:
        snap = _snapshots.decode(data)
        self._reset(snap.shard_id, snap.start, snap.end)
        for entry in snap.keys:
            bucket = entry.encoded_key[: entry.encoded_key.index(b"\x00")].decode()
            self._replace(bucket, entry.encoded_key, entry.versions)
        self.uploads.restore(snap.uploads, snap.completed_uploads)
        self._fences = {fence.name: fence.token for fence in snap.fences}
        self._seeds = {group: _Seed(None, data) for group, data in snap.seeds}
        self.applied_index = snap.applied_index


@dataclass
class _Seed:
    """A seed kept by a shard: the state cut off, encoded on first use and then kept."""

    state: _SnapshotV1 | None
    data: bytes | None = None

    def encoded(self) -> bytes:
        """The seed's bytes (`ShardHosting` may ask from a thread while a snapshot asks on
        the event loop: both get the same bytes, so neither waits for the other)."""
        data = self.data
        if data is None:
            assert self.state is not None
            data = self.data = _snapshots.encode(self.state)
        return data


def _check_list_arguments(bucket: str, texts: dict[str, str], max_keys: int = 0) -> int:
    """Check a listing's bucket name and text arguments (by their S3 names); `max_keys`
    clamped to `LIST_KEYS_MAX`. Raises the typed errors."""
    validate_bucket_name(bucket)
    if max_keys < 0:
        raise InvalidListArgument(f"max-keys must be >= 0: {max_keys}")
    for what, value in texts.items():
        if len(value.encode()) > OBJECT_KEY_BYTES_MAX:
            raise InvalidListArgument(f"{what} longer than {OBJECT_KEY_BYTES_MAX} bytes")
    return min(max_keys, LIST_KEYS_MAX)


def _version_entry(key: str, version: ObjectVersion, is_latest: bool) -> VersionEntry:
    manifest = version.manifest
    etag = manifest.etag if manifest is not None else ""
    return VersionEntry(
        key,
        version.version_id,
        is_latest,
        version.created_s,
        version.size,
        etag,
        manifest is None,
    )


def _position(versions: list[ObjectVersion], version_id: str, key: str) -> int:
    """The index of `version_id` among a key's versions (oldest first)."""
    for n, version in enumerate(versions):
        if version.version_id == version_id:
            return n
    raise InvalidListArgument(f"version-id-marker {version_id!r} is not a version of {key!r}")


def _check_condition(command: PutObject, versions: list[ObjectVersion]) -> None:
    """Raise unless `command.condition` holds for the key's current object (its newest
    version, unless that is a delete marker)."""
    condition = command.condition
    assert condition is not None
    current = versions[-1] if versions and not versions[-1].is_delete_marker else None
    name = f"{command.bucket}/{command.key}"
    if condition.if_none_match and current is not None:
        raise PreconditionFailed(f"{name} exists (If-None-Match: *)")
    if condition.if_match is not None:
        if current is None:
            raise NoSuchKey(name)
        assert current.manifest is not None  # not a delete marker
        if condition.if_match not in ("*", current.manifest.etag):
            raise PreconditionFailed(f"{name} has another ETag than If-Match names")
