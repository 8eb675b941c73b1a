"""The SDK's exception tree: one class per error code a gateway answers with.

    CairnClientError (code, status, message)
     +-- NotFound: NoSuchBucket, NoSuchKey
     +-- Conflict: BucketNotEmpty, BucketAlreadyExists, BucketAlreadyOwnedByYou,
                   FenceStale (a write whose fencing token lost its lock)
     +-- InvalidRequest: InvalidBucketName, InvalidArgument, InvalidRange, ...
     +-- AccessDenied
     +-- Unavailable: ServiceUnavailable, InsufficientReplicas, ChunkUnavailable,
                      NoGatewayAvailable (every gateway failed to answer)

Callers catch the family they care about (`NotFound`) or a precise class; `code` keeps
the gateway's exact code either way.
"""

from cairn.base.errors import CairnError


class CairnClientError(CairnError):
    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class NotFound(CairnClientError):
    pass


class NoSuchBucket(NotFound):
    pass


class NoSuchKey(NotFound):
    pass


class Conflict(CairnClientError):
    pass


class BucketNotEmpty(Conflict):
    pass


class BucketAlreadyExists(Conflict):
    pass


class FenceStale(Conflict):
    """A write carried a fencing token that no longer holds its lock."""


class InvalidRequest(CairnClientError):
    pass


class InvalidBucketName(InvalidRequest):
    pass


class InvalidRange(InvalidRequest):
    pass


class AccessDenied(CairnClientError):
    pass


class Unavailable(CairnClientError):
    pass


class NoGatewayAvailable(Unavailable):
    pass


_BY_CODE: dict[str, type[CairnClientError]] = {
    "NoSuchBucket": NoSuchBucket,
    "NoSuchKey": NoSuchKey,
    "NoSuchVersion": NotFound,
    "BucketNotEmpty": BucketNotEmpty,
    "BucketAlreadyExists": BucketAlreadyExists,
    "BucketAlreadyOwnedByYou": BucketAlreadyExists,
    "InvalidBucketState": Conflict,
    "FenceStale": FenceStale,
    "InvalidBucketName": InvalidBucketName,
    "InvalidRange": InvalidRange,
    "AccessDenied": AccessDenied,
    "ServiceUnavailable": Unavailable,
    "InsufficientReplicas": Unavailable,
    "ChunkUnavailable": Unavailable,
    "SlowDown": Unavailable,
}


def error_for(code: str, message: str, status: int = 0) -> CairnClientError:
    """The exception for a gateway's error code (and HTTP status, when there is one)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        if status == 404:
            cls = NotFound
        elif status == 409:
            cls = Conflict
        elif status == 403:
            cls = AccessDenied
        elif status >= 500:
            cls = Unavailable
        elif 400 <= status < 500:
            cls = InvalidRequest
        else:
            cls = CairnClientError
    return cls(code, message, status)
