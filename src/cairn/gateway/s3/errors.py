"""S3 error codes and the HTTP status S3 answers each with.

Theory of operation. The S3 front end raises `S3Error(code, message)` for what it rejects
itself (a bad signature, a malformed body, a precondition); everything below it (the
object service, the metadata and chunk layers) fails with `gateway.errors.ApiError` or a
lower-layer exception, which `app` turns into an `ApiError` with `gateway.errors.api_error`
and then into an `S3Error` with `from_api_error`. The status always comes from
`STATUS_OF_CODE` here, so one code has one status whichever layer raised it. This module
is pure (the request parsers import it), and imports nothing but `base`.

A code missing from the table is a 400 unless it is `InternalError`: a bad input never
turns into a 500 by accident of a missing entry, and every 500 is a real server fault,
which `app` logs.
"""

from collections.abc import Mapping

from cairn.base.errors import CairnError

STATUS_OF_CODE: dict[str, int] = {
    # authentication and authorisation
    "AccessDenied": 403,
    "SignatureDoesNotMatch": 403,
    "InvalidAccessKeyId": 403,
    "RequestTimeTooSkewed": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "MissingSecurityHeader": 400,
    "InvalidToken": 400,
    "ExpiredToken": 400,
    # buckets
    "NoSuchBucket": 404,
    "BucketNotEmpty": 409,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "InvalidBucketState": 409,
    "InvalidBucketName": 400,
    "IllegalVersioningConfigurationException": 400,
    "TooManyBuckets": 400,
    "IllegalLocationConstraintException": 400,
    # objects
    "NoSuchKey": 404,
    "NoSuchVersion": 404,
    "NoSuchUpload": 404,
    "KeyTooLongError": 400,
    "MetadataTooLarge": 400,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InvalidDigest": 400,
    "BadDigest": 400,
    "XAmzContentSHA256Mismatch": 400,
    "InvalidRange": 416,
    "InvalidPartNumber": 416,
    "PreconditionFailed": 412,
    "NotModified": 304,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "TooManyVersions": 400,
    "InvalidManifest": 400,
    "InvalidObjectState": 403,
    # requests
    "InvalidArgument": 400,
    "InvalidRequest": 400,
    "InvalidURI": 400,
    "MalformedXML": 400,
    "InvalidEncodingType": 400,
    "MissingContentLength": 411,
    "MissingRequestBodyError": 400,
    "RequestTimeout": 400,
    "UnexpectedContent": 400,
    "InvalidChunkSizeError": 400,
    "MethodNotAllowed": 405,
    "NotImplemented": 501,
    # service
    "ServiceUnavailable": 503,
    "SlowDown": 503,
    "InsufficientReplicas": 503,
    "ChunkUnavailable": 503,
    "InternalError": 500,
}

_RENAMED: dict[str, str] = {
    # gateway-internal codes that have an S3 name
    "InsufficientReplicas": "ServiceUnavailable",
    "ChunkUnavailable": "ServiceUnavailable",
    "InvalidManifest": "InvalidRequest",
    "MalformedCommand": "InvalidRequest",
    "WrongShard": "ServiceUnavailable",
}


def status_of(code: str) -> int:
    return STATUS_OF_CODE.get(code, 500 if code == "InternalError" else 400)


class S3Error(CairnError):
    """A failed S3 request: the S3 `code`, its HTTP `status`, a human `message`, and
    `headers` the error response carries (e.g. `x-amz-delete-marker`)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else status_of(code)
        self.headers: dict[str, str] = dict(headers or {})


def from_code(code: str, message: str, status: int | None = None) -> S3Error:
    """The S3 error for a code raised below the S3 layer (renamed where S3 has its own)."""
    s3_code = _RENAMED.get(code, code)
    if s3_code not in STATUS_OF_CODE and status is not None and status >= 500:
        s3_code = "InternalError"
    return S3Error(s3_code, message, STATUS_OF_CODE.get(s3_code, status))
