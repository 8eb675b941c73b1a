"""AWS Signature Version 2 for S3 (query string and `Authorization: AWS`): verification. Pure.

Why this exists. boto3 presigns S3 URLs with signature version 2 unless the client is
built with `Config(signature_version="s3v4")` (botocore's `_default_s3_presign_to_sigv2`),
so "a presigned URL from boto3 with just the endpoint and path-style addressing" is a V2
URL: `?AWSAccessKeyId=...&Expires=<epoch seconds>&Signature=<base64>`. Cairn verifies it
rather than asking every user for a special flag. The `Authorization: AWS key:signature`
header form signs the same string, so it is verified too (boto3 with
`signature_version="s3"`, older tools).

Theory of operation. The signature is base64(HMAC-SHA1(secret, StringToSign)) with

    StringToSign = VERB \n Content-MD5 \n Content-Type \n Date-or-Expires \n
                   CanonicalizedAmzHeaders CanonicalizedResource

Content-MD5 and Content-Type are the request's header values ("" when absent). The third
line is `Expires` for a presigned URL, else the `Date` header (empty when `x-amz-date` is
sent, per the AWS rule; botocore signs the Date header regardless, so both are tried).
CanonicalizedAmzHeaders is every `x-amz-*` header *sent*, lower-cased, sorted, values
trimmed (not collapsed: V2 signs inner spaces) and joined with `,`, one `name:value\n`
line each, so an unsigned `x-amz-copy-source` cannot be slipped in. CanonicalizedResource
is the path (as sent, and re-encoded the AWS way as `sigv4` does, so both common client
encodings verify; a bare `/bucket` also as `/bucket/`, as botocore signs it) plus, sorted
by name, the sub-resources S3 signs (`SUBRESOURCES`: acl, uploads, uploadId, partNumber,
versionId, response-* overrides, ...) decoded, as `?name` or `?name=value` joined with
`&`; other query parameters (prefix, max-keys, x-id, ...) are not signed, as S3 specifies.

What this module decides, and the S3 error each failure gets:

| check | error |
|---|---|
| query auth lacks AWSAccessKeyId, Signature or Expires; Expires not a number | `AccessDenied` |
| presigned URL past `Expires` | `AccessDenied` "Request has expired" |
| `Expires` over `PRESIGN_EXPIRES_S_MAX` (7 days, as SigV4) ahead | `AuthorizationQuery-
  ParametersError` |
| `x-amz-*` query parameters (botocore moves signed headers there) | `NotImplemented` |
| header auth: malformed `AWS key:sig` / no valid Date or x-amz-date | `InvalidArgument` /
  `AccessDenied` |
| header auth over `CLOCK_SKEW_S_MAX` from server time | `RequestTimeTooSkewed` |
| a streaming SigV4 body mode in x-amz-content-sha256 | `InvalidRequest` |
| signature differs (or is not base64) | `SignatureDoesNotMatch` |

`x-amz-*` query parameters are refused, not verified: the handlers read metadata, copy
sources and checksums from headers only, so accepting them would sign something Cairn then
ignores. An unknown access key is `auth`'s business (it owns the key lookup). The time
comes in as an argument: nothing here reads a clock.

Reference: AWS, "Signing and Authenticating REST Requests" (Amazon S3, signature
version 2), including "Query String Request Authentication Alternative".
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import re
from dataclasses import dataclass

from cairn.gateway.s3 import sigv4
from cairn.gateway.s3.errors import S3Error

PRESIGN_EXPIRES_S_MAX = sigv4.PRESIGN_EXPIRES_S_MAX
CLOCK_SKEW_S_MAX = sigv4.CLOCK_SKEW_S_MAX

SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete",
        "encryption", "intelligent-tiering", "inventory", "legal-hold", "lifecycle",
        "location", "logging", "metrics", "notification", "object-lock", "partNumber",
        "policy", "replication", "requestPayment", "response-cache-control",
        "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires",
        "restore", "retention", "select", "select-type", "storageClass", "tagging",
        "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website",
    }
)  # fmt: skip
"""Query parameters S3 puts in the canonical resource: AWS's list, botocore's
`HmacV1Auth.QSAOfInterest` and minio's, which all agree on the ones Cairn serves."""

QUERY_AUTH_PARAMS = (b"AWSAccessKeyId", b"Signature", b"Expires")
_EXPIRES_DIGITS_MAX = 12
_ALLOWED_PAYLOAD_MODES = frozenset({sigv4.UNSIGNED_PAYLOAD, sigv4.STREAMING_UNSIGNED_TRAILER})
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class V2Claim:
    """What a V2-signed request says about its own signature, parsed and checked for form."""

    access_key: str
    signature: str
    """base64, as sent."""
    presigned: bool
    expires_s: int = 0
    """Presigned: the epoch second after which the URL is refused."""
    expires_text: str = ""
    """Presigned: `Expires` exactly as sent (it is what was signed)."""
    request_time_s: float = 0.0
    """Header auth: the time of the Date / x-amz-date header."""
    payload_hash: str = sigv4.UNSIGNED_PAYLOAD
    """The x-amz-content-sha256 value if sent (signed, as an x-amz-* header), else
    UNSIGNED-PAYLOAD: V2 itself does not cover the body."""


# -- parsing --------------------------------------------------------------------------------


def is_presigned(query: sigv4.Pairs) -> bool:
    return any(name == b"AWSAccessKeyId" for name, _ in query)


def is_header_auth(authorization: str) -> bool:
    return authorization.startswith("AWS ")


def _payload_hash(view: sigv4.RequestView) -> str:
    sent = view.header_values("x-amz-content-sha256")
    if not sent:
        return sigv4.UNSIGNED_PAYLOAD
    value = sent[0].strip()
    if value in _ALLOWED_PAYLOAD_MODES or _HEX64.fullmatch(value):
        return value
    if value in sigv4.STREAMING_MODES:
        raise S3Error("InvalidRequest", f"{value} bodies need a SigV4 signature")
    raise S3Error("InvalidArgument", "x-amz-content-sha256 must be a SHA-256 or a mode")


def parse_presigned(view: sigv4.RequestView) -> V2Claim:
    """The claim of a V2 presigned URL (`AWSAccessKeyId`, `Signature`, `Expires`)."""
    fields: dict[bytes, bytes] = {}
    for name, value in view.query:
        if name in QUERY_AUTH_PARAMS:
            fields.setdefault(name, value)
        elif name.lower().startswith(b"x-amz-"):
            raise S3Error(
                "NotImplemented",
                f"x-amz-* query parameters ({name[:64].decode('utf-8', 'replace')}) in a "
                "signature version 2 URL are not supported; send them as headers",
            )
    if len(fields) != len(QUERY_AUTH_PARAMS):
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
            "parameters",
        )
    expires = fields[b"Expires"]
    if not expires.isdigit() or len(expires) > _EXPIRES_DIGITS_MAX:
        raise S3Error("AccessDenied", "Expires must be a number of seconds since the epoch")
    return V2Claim(
        access_key=fields[b"AWSAccessKeyId"].decode("utf-8", "replace"),
        signature=fields[b"Signature"].decode("utf-8", "replace"),
        presigned=True,
        expires_s=int(expires),
        expires_text=expires.decode(),
        payload_hash=_payload_hash(view),
    )


def _header_time(view: sigv4.RequestView) -> float:
    for name in ("x-amz-date", "date"):
        values = view.header_values(name)
        if not values:
            continue
        try:
            parsed = email.utils.parsedate_to_datetime(values[0].strip())
        except (TypeError, ValueError):
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise S3Error("AccessDenied", f"malformed {name} header {values[0][:40]!r}")
        return float(int(parsed.timestamp()))
    raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def parse_header_auth(authorization: str, view: sigv4.RequestView) -> V2Claim:
    """The claim of an `Authorization: AWS <access key>:<signature>` header."""
    if len(authorization) > sigv4.AUTH_HEADER_CHARS_MAX:
        raise S3Error("InvalidArgument", "the Authorization header is too long")
    _, _, credentials = authorization.strip().partition(" ")
    access_key, sep, signature = credentials.strip().rpartition(":")
    if not sep or not access_key or not signature:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid. Expected AwsAccessKeyId:signature",
        )
    return V2Claim(
        access_key=access_key,
        signature=signature,
        presigned=False,
        request_time_s=_header_time(view),
        payload_hash=_payload_hash(view),
    )


# -- checks ---------------------------------------------------------------------------------


def check_time(claim: V2Claim, now_s: float) -> None:
    """Presigned: not past `Expires`, nor more than 7 days ahead. Header: within skew."""
    if claim.presigned:
        if now_s > claim.expires_s:
            raise S3Error("AccessDenied", "Request has expired")
        if claim.expires_s > now_s + PRESIGN_EXPIRES_S_MAX + CLOCK_SKEW_S_MAX:
            raise S3Error(
                "AuthorizationQueryParametersError",
                f"a presigned URL may be valid for at most {PRESIGN_EXPIRES_S_MAX} seconds",
            )
        return
    if abs(now_s - claim.request_time_s) > CLOCK_SKEW_S_MAX:
        raise S3Error(
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
        )


# -- string to sign -------------------------------------------------------------------------


def canonical_amz_headers(view: sigv4.RequestView) -> str:
    """Every `x-amz-*` header sent: `name:v1,v2\\n` lines, names lower-case and sorted."""
    values: dict[str, list[str]] = {}
    for name, value in view.headers:
        lower = name.lower()
        if lower.startswith("x-amz-"):
            values.setdefault(lower, []).append(value.strip())
    return "".join(f"{name}:{','.join(values[name])}\n" for name in sorted(values))


def canonical_subresources(query: sigv4.Pairs) -> str:
    """`?a&b=v` for the signed sub-resources in `query` (sorted by name, stable), or ""."""
    items = sorted(
        (name.decode(), value.decode("utf-8", "surrogateescape"))
        for name, value in query
        if name.decode("utf-8", "replace") in SUBRESOURCES
    )
    if not items:
        return ""
    return "?" + "&".join(f"{name}={value}" if value else name for name, value in items)


def canonical_resources(view: sigv4.RequestView) -> list[str]:
    """The canonical resource for each path form tried: AWS's encoding, the path as sent,
    and for a bucket (`/bucket`) also `/bucket/`, which is what botocore signs (its
    `auth_path`, the virtual-hosted form's resource)."""
    suffix = canonical_subresources(view.query)
    paths = sigv4.canonical_uri_candidates(view.raw_path)
    if paths[0].count("/") == 1 and paths[0] != "/":
        paths.append(paths[0] + "/")
    return [path + suffix for path in paths]


def _first(view: sigv4.RequestView, name: str) -> str:
    values = view.header_values(name)
    return values[0].strip() if values else ""


def _time_lines(view: sigv4.RequestView, claim: V2Claim) -> list[str]:
    if claim.presigned:
        return [claim.expires_text]
    date = _first(view, "date")
    if view.header_values("x-amz-date") and date:
        return ["", date]  # AWS: empty when x-amz-date is sent; botocore signs Date anyway
    return [date]


def strings_to_sign(view: sigv4.RequestView, claim: V2Claim) -> list[str]:
    """Every StringToSign `verify` tries, the AWS form first."""
    head = f"{view.method}\n{_first(view, 'content-md5')}\n{_first(view, 'content-type')}\n"
    amz = canonical_amz_headers(view)
    return [
        f"{head}{time_line}\n{amz}{resource}"
        for time_line in _time_lines(view, claim)
        for resource in canonical_resources(view)
    ]


def sign(secret: str, text: str) -> bytes:
    """The raw HMAC-SHA1 (the wire form is its base64)."""
    key = secret.encode("utf-8")
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha1).digest()


def verify(view: sigv4.RequestView, claim: V2Claim, secret: str) -> None:
    """Check the signature of `view` against `claim` with `secret` (the time rule is
    `check_time`). Raises `SignatureDoesNotMatch`."""
    try:
        given = base64.b64decode(claim.signature, validate=True)
    except (binascii.Error, ValueError):
        given = b""
    for text in strings_to_sign(view, claim):
        if hmac.compare_digest(sign(secret, text), given):
            return
    raise S3Error(
        "SignatureDoesNotMatch",
        "the request signature we calculated does not match the signature you provided",
    )
