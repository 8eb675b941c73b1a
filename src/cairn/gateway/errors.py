"""The errors the object API reports, and how every lower-layer failure maps onto them.

Theory of operation. The gateway calls three kinds of things that fail in their own
vocabulary: the metadata service (`RemoteError` with an S3-style code from a replicated
machine, or a transport error), the chunk layer (`InsufficientReplicas`,
`ChunkUnavailable`, `ChunkCorrupt`) and its own request parsing. `api_error` turns any of
them into one `ApiError` with a stable S3-style `code`, an HTTP `status` and a message,
so the HTTP front end, the native RPC front end (and later the S3 front end) answer the
same failure the same way. Anything not in the table is a 500 `InternalError` and is
logged by the caller: a bad request never reaches that branch, since every input is
parsed into a typed value (or rejected with a 400) before anything acts on it.
"""

from cairn.base.errors import CairnError, DeadlineExceeded, PeerUnavailable, RemoteError
from cairn.codec import ChunkCorrupt, CodecError
from cairn.meta.machine import MetaError
from cairn.node.chunk_client import ChunkUnavailable, InsufficientReplicas

STATUS_OF_CODE: dict[str, int] = {
    "AccessDenied": 403,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchVersion": 404,
    "NoSuchUpload": 404,  # multipart (issue 7)
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "EntityTooSmall": 400,
    "BucketNotEmpty": 409,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "InvalidBucketState": 409,
    "InvalidBucketName": 400,
    "InvalidArgument": 400,
    "InvalidRequest": 400,
    "InvalidManifest": 400,
    "KeyTooLongError": 400,
    "EntityTooLarge": 400,
    "IncompleteBody": 400,
    "MetadataTooLarge": 400,
    "TooManyBuckets": 400,
    "TooManyVersions": 400,
    "RequestTimeout": 400,
    "InvalidRange": 416,
    "InvalidPartNumber": 416,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "FenceStale": 409,
    "MethodNotAllowed": 405,
    "ServiceUnavailable": 503,
    "SlowDown": 503,
    "InsufficientReplicas": 503,
    "ChunkUnavailable": 503,
    "InternalError": 500,
}
"""HTTP status of each code the object API answers with."""

_UNAVAILABLE_REMOTE_CODES = frozenset(
    {"not_leader", "dropped", "no_such_group", "deadline_exceeded", "overloaded", "unavailable"}
)


class ApiError(CairnError):
    """A failed object API call: S3-style `code`, HTTP `status`, human `message`."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS_OF_CODE.get(code, 400)


def api_error(exc: BaseException) -> ApiError:
    """The `ApiError` for any exception a gateway operation can raise."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RemoteError):
        if exc.code in STATUS_OF_CODE:
            return ApiError(exc.code, exc.message)
        if exc.code in _UNAVAILABLE_REMOTE_CODES:
            return ApiError("ServiceUnavailable", f"metadata service: {exc}")
        return ApiError("InternalError", f"metadata service: {exc}")
    if isinstance(exc, MetaError):  # a machine rule checked locally (e.g. a range)
        return ApiError(exc.code, str(exc))
    if isinstance(exc, InsufficientReplicas):
        return ApiError("InsufficientReplicas", str(exc))
    if isinstance(exc, ChunkUnavailable | ChunkCorrupt):
        return ApiError("ChunkUnavailable", str(exc))
    if isinstance(exc, PeerUnavailable | DeadlineExceeded):
        return ApiError("ServiceUnavailable", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, CodecError):
        return ApiError("InternalError", f"{type(exc).__name__}: {exc}")
    return ApiError("InternalError", f"{type(exc).__name__}: {exc}")
