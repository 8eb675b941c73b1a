"""Which S3 operation a request is: method + path + query -> a typed `Endpoint`. Pure.

Theory of operation (the Garage habit: parse a request into a typed endpoint before
anything acts on it). Addressing is path-style: `/` is the service, `/bucket` (or
`/bucket/`) a bucket, `/bucket/key...` an object; the key is everything after the bucket's
slash, percent-decoded once, so keys may hold `/`, `//`, `..` and any UTF-8. The raw path
is used, never a normalised one.

The operation comes from one table, `ROUTES`: (method, level, routing sub-resource) -> Op.
The routing sub-resource is the first of `ROUTING_PARAMS` present in the query; other
query parameters (prefix, max-keys, response-*, x-id, ...) never change the operation.
A request with no route gets `NotImplemented` when it names a sub-resource S3 has but
Cairn does not serve (acl, tagging, policy, ..., or e.g. DELETE ?versioning), else
`MethodNotAllowed`.

Multipart upload has its operations in the table already; their handlers come from
`multipart.py` (issue 7, second half). Until it registers them, `app` answers them with
`NotImplemented`. Adding an operation means one row here and one handler there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_to_bytes

from cairn.gateway.s3.errors import S3Error

QUERY_VALUE_BYTES_MAX = 4096
QUERY_PARAMS_MAX = 64


class Level(StrEnum):
    SERVICE = "service"
    BUCKET = "bucket"
    OBJECT = "object"


class Op(StrEnum):
    LIST_BUCKETS = "ListBuckets"
    CREATE_BUCKET = "CreateBucket"
    DELETE_BUCKET = "DeleteBucket"
    HEAD_BUCKET = "HeadBucket"
    GET_BUCKET_LOCATION = "GetBucketLocation"
    GET_BUCKET_VERSIONING = "GetBucketVersioning"
    PUT_BUCKET_VERSIONING = "PutBucketVersioning"
    LIST_OBJECTS = "ListObjects"
    LIST_OBJECTS_V2 = "ListObjectsV2"
    LIST_OBJECT_VERSIONS = "ListObjectVersions"
    DELETE_OBJECTS = "DeleteObjects"
    PUT_OBJECT = "PutObject"
    COPY_OBJECT = "CopyObject"
    GET_OBJECT = "GetObject"
    HEAD_OBJECT = "HeadObject"
    DELETE_OBJECT = "DeleteObject"
    # multipart upload (handlers in multipart.py, second half of issue 7)
    CREATE_MULTIPART_UPLOAD = "CreateMultipartUpload"
    UPLOAD_PART = "UploadPart"
    UPLOAD_PART_COPY = "UploadPartCopy"
    COMPLETE_MULTIPART_UPLOAD = "CompleteMultipartUpload"
    ABORT_MULTIPART_UPLOAD = "AbortMultipartUpload"
    LIST_PARTS = "ListParts"
    LIST_MULTIPART_UPLOADS = "ListMultipartUploads"


ROUTING_PARAMS: tuple[str, ...] = (
    "uploads",
    "uploadId",
    "delete",
    "location",
    "versioning",
    "versions",
)
"""Query parameters that select an operation, in priority order."""

UNSUPPORTED_SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "attributes", "cors", "encryption",
        "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging", "metrics",
        "notification", "object-lock", "ownershipControls", "policy", "policyStatus",
        "publicAccessBlock", "replication", "requestPayment", "restore", "retention",
        "select", "tagging", "torrent", "website",
    }
)  # fmt: skip

ROUTES: dict[tuple[str, Level, str | None], Op] = {
    ("GET", Level.SERVICE, None): Op.LIST_BUCKETS,
    ("PUT", Level.BUCKET, None): Op.CREATE_BUCKET,
    ("DELETE", Level.BUCKET, None): Op.DELETE_BUCKET,
    ("HEAD", Level.BUCKET, None): Op.HEAD_BUCKET,
    ("GET", Level.BUCKET, "location"): Op.GET_BUCKET_LOCATION,
    ("GET", Level.BUCKET, "versioning"): Op.GET_BUCKET_VERSIONING,
    ("PUT", Level.BUCKET, "versioning"): Op.PUT_BUCKET_VERSIONING,
    ("GET", Level.BUCKET, None): Op.LIST_OBJECTS,  # list-type=2: V2
    ("GET", Level.BUCKET, "versions"): Op.LIST_OBJECT_VERSIONS,
    ("POST", Level.BUCKET, "delete"): Op.DELETE_OBJECTS,
    ("GET", Level.BUCKET, "uploads"): Op.LIST_MULTIPART_UPLOADS,
    ("PUT", Level.OBJECT, None): Op.PUT_OBJECT,  # x-amz-copy-source: CopyObject
    ("GET", Level.OBJECT, None): Op.GET_OBJECT,
    ("HEAD", Level.OBJECT, None): Op.HEAD_OBJECT,
    ("DELETE", Level.OBJECT, None): Op.DELETE_OBJECT,
    ("POST", Level.OBJECT, "uploads"): Op.CREATE_MULTIPART_UPLOAD,
    ("PUT", Level.OBJECT, "uploadId"): Op.UPLOAD_PART,  # x-amz-copy-source: UploadPartCopy
    ("POST", Level.OBJECT, "uploadId"): Op.COMPLETE_MULTIPART_UPLOAD,
    ("DELETE", Level.OBJECT, "uploadId"): Op.ABORT_MULTIPART_UPLOAD,
    ("GET", Level.OBJECT, "uploadId"): Op.LIST_PARTS,
}

_COPY_VARIANTS = {Op.PUT_OBJECT: Op.COPY_OBJECT, Op.UPLOAD_PART: Op.UPLOAD_PART_COPY}


@dataclass(frozen=True, slots=True)
class Endpoint:
    op: Op
    bucket: str
    """"" for the service level."""
    key: str
    """"" unless object level."""
    params: Mapping[str, str]
    """Query parameters decoded as UTF-8 (first value of each name)."""

    @property
    def resource(self) -> str:
        """The `/bucket/key` path S3 names in error bodies."""
        if not self.bucket:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", f"the {what} is not valid UTF-8") from None


def split_path(raw_path: str) -> tuple[str, str]:
    """(bucket, key) of a path-style request path (raw, percent-encoded)."""
    if not raw_path.startswith("/"):
        raise S3Error("InvalidURI", "the request path must start with /")
    bucket_raw, _, key_raw = raw_path[1:].partition("/")
    bucket = _decode(unquote_to_bytes(bucket_raw), "bucket name")
    key = _decode(unquote_to_bytes(key_raw), "object key")
    return bucket, key


def decode_params(query: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    if len(query) > QUERY_PARAMS_MAX:
        raise S3Error("InvalidArgument", f"at most {QUERY_PARAMS_MAX} query parameters")
    params: dict[str, str] = {}
    for name, value in query:
        if len(value) > QUERY_VALUE_BYTES_MAX:
            raise S3Error("InvalidArgument", f"query parameter {name[:64]!r} is too long")
        params.setdefault(_decode(name, "query"), _decode(value, "query"))
    return params


def parse_endpoint(
    method: str,
    raw_path: str,
    query: Sequence[tuple[bytes, bytes]],
    headers: Mapping[str, str],
) -> Endpoint:
    """The operation a request asks for (see the module doc); `headers` in lower case."""
    bucket, key = split_path(raw_path)
    params = decode_params(query)
    level = Level.OBJECT if key else Level.BUCKET if bucket else Level.SERVICE
    routing = next((p for p in ROUTING_PARAMS if p in params), None)
    op = ROUTES.get((method, level, routing))
    if op is None:
        unsupported = sorted(UNSUPPORTED_SUBRESOURCES & params.keys())
        if unsupported or routing is not None:
            name = unsupported[0] if unsupported else routing
            raise S3Error("NotImplemented", f"{method} of the {name} sub-resource is not supported")
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on this {level}")
    if routing is None and (UNSUPPORTED_SUBRESOURCES & params.keys()):
        unsupported = sorted(UNSUPPORTED_SUBRESOURCES & params.keys())
        raise S3Error("NotImplemented", f"the {unsupported[0]} sub-resource is not supported")
    if op == Op.LIST_OBJECTS and params.get("list-type") == "2":
        op = Op.LIST_OBJECTS_V2
    if op in _COPY_VARIANTS and "x-amz-copy-source" in headers:
        op = _COPY_VARIANTS[op]
    return Endpoint(op, bucket, key, params)
