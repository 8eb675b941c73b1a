"""Request and reply messages of the native RPC object API (see `native_rpc`).

The SDK (`cairn.client.rpc_messages`) declares the same Structs by hand, since the client
layer may not import the gateway; msgspec matches them by tag (the class name) and field
order, and a test encodes with one side and decodes with the other. Add fields only at the
end, with defaults, so that older peers still decode newer messages.
"""

import msgspec


class ObjectInfo(msgspec.Struct, frozen=True):
    size: int
    etag: str
    version_id: str
    created_s: float
    content_type: str
    metadata: dict[str, str] = {}


class NativePut(msgspec.Struct, frozen=True, tag=True):
    """Store the payload as `bucket/key`."""

    bucket: str
    key: str
    level: str = ""
    content_type: str = ""
    metadata: dict[str, str] = {}


class NativePutReply(msgspec.Struct, frozen=True, tag=True):
    etag: str
    size: int
    version_id: str
    chunks: int
    new_chunks: int
    new_bytes: int
    stored_bytes: int


class NativeGet(msgspec.Struct, frozen=True, tag=True):
    """The object's bytes as the reply payload; `first`/`last` as in an HTTP Range."""

    bucket: str
    key: str
    first: int | None = None
    last: int | None = None
    version_id: str | None = None


class NativeGetReply(msgspec.Struct, frozen=True, tag=True):
    info: ObjectInfo
    start: int
    end: int
    """The half-open range of the object the payload holds."""


class NativeHead(msgspec.Struct, frozen=True, tag=True):
    bucket: str
    key: str
    version_id: str | None = None


class NativeHeadReply(msgspec.Struct, frozen=True, tag=True):
    info: ObjectInfo


class NativeDelete(msgspec.Struct, frozen=True, tag=True):
    bucket: str
    key: str
    version_id: str | None = None


class NativeDeleteReply(msgspec.Struct, frozen=True, tag=True):
    deleted: bool
    version_id: str | None
    delete_marker: bool


class NativeList(msgspec.Struct, frozen=True, tag=True):
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    continuation_token: str | None = None
    max_keys: int = 1000


class ListedObject(msgspec.Struct, frozen=True):
    key: str
    size: int
    etag: str
    last_modified_s: float
    version_id: str


class NativeListReply(msgspec.Struct, frozen=True, tag=True):
    entries: list[ListedObject]
    common_prefixes: list[str]
    is_truncated: bool
    next_continuation_token: str | None


class NativeMakeBucket(msgspec.Struct, frozen=True, tag=True):
    bucket: str


class NativeRemoveBucket(msgspec.Struct, frozen=True, tag=True):
    bucket: str


class NativeListBuckets(msgspec.Struct, frozen=True, tag=True):
    pass


class BucketInfo(msgspec.Struct, frozen=True):
    name: str
    created_s: float
    versioning: str


class NativeBucketReply(msgspec.Struct, frozen=True, tag=True):
    buckets: list[BucketInfo]
