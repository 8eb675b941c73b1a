"""AWS Signature Version 4 for S3: parsing, canonicalisation and verification. Pure.

Theory of operation. A signed request carries a claim: an access key, a credential scope
(`date/region/s3/aws4_request`), the names of the headers it signed, a time and a
signature. It carries the claim in the `Authorization` header (`parse_header_auth`) or in
the query string of a presigned URL (`parse_presigned`); both parse into one `SignedClaim`.
The server rebuilds the *canonical request* from what it received (method, URI, sorted
query, the signed headers with trimmed values, the payload hash), hashes it into the
*string to sign* with the time and scope, derives the *signing key* from the secret by an
HMAC chain over the scope, and compares HMACs in constant time (`verify`). Anything that
differs by a byte gives `SignatureDoesNotMatch`.

What this module decides, and the S3 error each failure gets:

| check | error |
|---|---|
| malformed; scope not `.../s3/aws4_request`; scope date != request date | `Authorization-
  HeaderMalformed` (header), `AuthorizationQueryParametersError` (presigned) |
| header-signed request over `CLOCK_SKEW_S_MAX` from server time | `RequestTimeTooSkewed` |
| presigned URL past `X-Amz-Expires` (at most 7 days), or not yet valid | `AccessDenied` |
| `host` not among the signed headers; an `x-amz-*` header sent but not signed | `AccessDenied` |
| signature differs | `SignatureDoesNotMatch` |

The canonical URI is the path re-encoded from its decoded form the way AWS specifies
(every byte but unreserved characters and `/` percent-encoded, once: S3 does not double-
encode); if that does not match, the path exactly as sent is tried too, so a client that
encodes a few characters differently from AWS's rule (but signed what it sent) still
verifies. The time comes in as an argument: nothing here reads a clock. The payload hash
named in `x-amz-content-sha256` is only *claimed* here; the body is checked against it as
it streams (`body.py`, `chunked.py`).

Reference: AWS, "Signature Version 4 signing process" and "Authenticating Requests:
Using Query Parameters" / "Signature Calculations for the Authorization Header:
Transferring Payload in Multiple Chunks" (S3 API reference).
"""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote_from_bytes, unquote_to_bytes

from cairn.gateway.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = frozenset(
    {STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER}
)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CLOCK_SKEW_S_MAX = 15 * 60
PRESIGN_EXPIRES_S_MAX = 7 * 24 * 3600
SIGNED_HEADERS_MAX = 64
AUTH_HEADER_CHARS_MAX = 8192

_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_UNRESERVED = b"-_.~"

Pairs = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    date: str
    """YYYYMMDD"""
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


@dataclass(frozen=True, slots=True)
class SignedClaim:
    """What a request says about its own signature, parsed and checked for form."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    """YYYYMMDDTHHMMSSZ: the time the string to sign names."""
    request_time_s: float
    payload_hash: str
    """The x-amz-content-sha256 value (UNSIGNED-PAYLOAD for a presigned URL)."""
    presigned: bool = False
    expires_s: int = 0


@dataclass(frozen=True, slots=True)
class RequestView:
    """The parts of an HTTP request a signature covers, as received."""

    method: str
    raw_path: str
    """The path exactly as sent (percent-encoded), without the query string."""
    query: Pairs
    """Query parameters percent-decoded to bytes, in the order sent."""
    headers: Sequence[tuple[str, str]]
    """Every header line (name, value) as received; names in any case."""

    def header_values(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for k, v in self.headers if k.lower() == lower]


@dataclass(frozen=True, slots=True)
class SigningContext:
    """What a verified request hands on to check the chunks of a streaming body."""

    key: bytes
    scope: str
    amz_date: str
    seed_signature: str


# -- parsing --------------------------------------------------------------------------------


def parse_query(raw_query: str) -> list[tuple[bytes, bytes]]:
    """`a=1&b&c=x%20y` -> [(b"a", b"1"), (b"b", b""), (b"c", b"x y")]. `+` stays `+`."""
    pairs: list[tuple[bytes, bytes]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def parse_amz_date(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 basic `YYYYMMDDTHHMMSSZ`."""
    match = _AMZ_DATE.fullmatch(text)
    if match is None:
        raise S3Error("AccessDenied", f"malformed X-Amz-Date {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise S3Error("AccessDenied", f"malformed X-Amz-Date {text!r}")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _request_date(view: RequestView) -> tuple[str, float]:
    """(amz-date text, seconds) from X-Amz-Date, else from Date (RFC 1123)."""
    amz = view.header_values("x-amz-date")
    if amz:
        return amz[0].strip(), parse_amz_date(amz[0].strip())
    date = view.header_values("date")
    if date:
        try:
            parsed = email.utils.parsedate_to_datetime(date[0])
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            seconds = parsed.timestamp()
            return parsed.strftime("%Y%m%dT%H%M%SZ"), float(int(seconds))
    raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def _parse_credential(text: str, code: str) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or not all(parts):
        raise S3Error(code, f"malformed credential {text[:200]!r}")
    access_key, date, region, service, terminator = parts
    if not re.fullmatch(r"\d{8}", date):
        raise S3Error(code, f"malformed credential date {date[:20]!r}")
    if service != SERVICE or terminator != TERMINATOR:
        raise S3Error(code, f"credential scope must be .../{SERVICE}/{TERMINATOR}")
    return Credential(access_key, date, region, service)


def _parse_signed_headers(text: str, code: str) -> tuple[str, ...]:
    names = tuple(text.split(";"))
    if not names or len(names) > SIGNED_HEADERS_MAX:
        raise S3Error(code, "SignedHeaders names 1..64 headers")
    for name in names:
        if not _HEADER_NAME.fullmatch(name):
            raise S3Error(code, f"malformed SignedHeaders entry {name[:64]!r}")
    return names


def parse_header_auth(authorization: str, view: RequestView) -> SignedClaim:
    """The claim of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
    Signature=...` header (raises `AuthorizationHeaderMalformed` etc.)."""
    code = "AuthorizationHeaderMalformed"
    if len(authorization) > AUTH_HEADER_CHARS_MAX:
        raise S3Error(code, "the Authorization header is too long")
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        if algorithm == "AWS":
            raise S3Error("InvalidRequest", "signature version 2 is not supported; use SigV4")
        raise S3Error(code, f"unsupported authorization algorithm {algorithm[:40]!r}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise S3Error(code, f"malformed Authorization component {item.strip()[:64]!r}")
        fields[name] = value
    try:
        credential_text = fields["Credential"]
        headers_text = fields["SignedHeaders"]
        signature = fields["Signature"]
    except KeyError as exc:
        raise S3Error(code, f"the Authorization header has no {exc.args[0]}") from None
    credential = _parse_credential(credential_text, code)
    signed_headers = _parse_signed_headers(headers_text, code)
    if not _HEX64.fullmatch(signature):
        raise S3Error(code, "the signature must be 64 lower-case hex digits")
    amz_date, seconds = _request_date(view)
    if amz_date[:8] != credential.date:
        raise S3Error(code, f"credential date {credential.date} is not the request's {amz_date}")
    payload = view.header_values("x-amz-content-sha256")
    if not payload:
        raise S3Error("InvalidRequest", "missing required header x-amz-content-sha256")
    payload_hash = payload[0].strip()
    if not (payload_hash in (UNSIGNED_PAYLOAD, *STREAMING_MODES) or _HEX64.fullmatch(payload_hash)):
        if payload_hash.startswith("STREAMING-"):
            raise S3Error("NotImplemented", f"{payload_hash[:60]} is not supported")
        raise S3Error("InvalidArgument", "x-amz-content-sha256 must be a SHA-256 or a mode")
    return SignedClaim(credential, signed_headers, signature, amz_date, seconds, payload_hash)


def is_presigned(query: Pairs) -> bool:
    return any(name == b"X-Amz-Algorithm" for name, _ in query)


def parse_presigned(query: Pairs) -> SignedClaim:
    """The claim of a presigned URL's `X-Amz-*` query parameters."""
    code = "AuthorizationQueryParametersError"
    fields: dict[str, str] = {}
    for name, value in query:
        if name.startswith(b"X-Amz-"):
            try:
                fields[name.decode()] = value.decode()
            except UnicodeDecodeError:
                raise S3Error(code, "X-Amz-* query parameters must be UTF-8") from None
    try:
        algorithm = fields["X-Amz-Algorithm"]
        credential_text = fields["X-Amz-Credential"]
        amz_date = fields["X-Amz-Date"]
        expires_text = fields["X-Amz-Expires"]
        headers_text = fields["X-Amz-SignedHeaders"]
        signature = fields["X-Amz-Signature"]
    except KeyError as exc:
        raise S3Error(code, f"the presigned URL has no {exc.args[0]}") from None
    if algorithm != ALGORITHM:
        raise S3Error(code, f"X-Amz-Algorithm must be {ALGORITHM}")
    credential = _parse_credential(credential_text, code)
    signed_headers = _parse_signed_headers(headers_text, code)
    if not _HEX64.fullmatch(signature):
        raise S3Error(code, "X-Amz-Signature must be 64 lower-case hex digits")
    if not expires_text.isdigit() or len(expires_text) > 7:
        raise S3Error(code, "X-Amz-Expires must be a number of seconds")
    expires = int(expires_text)
    if not 1 <= expires <= PRESIGN_EXPIRES_S_MAX:
        raise S3Error(code, f"X-Amz-Expires must be 1..{PRESIGN_EXPIRES_S_MAX} seconds")
    seconds = parse_amz_date(amz_date)
    if amz_date[:8] != credential.date:
        raise S3Error(code, f"credential date {credential.date} is not X-Amz-Date {amz_date}")
    payload_hash = fields.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    if not (payload_hash == UNSIGNED_PAYLOAD or _HEX64.fullmatch(payload_hash)):
        raise S3Error(code, "X-Amz-Content-Sha256 must be a SHA-256 or UNSIGNED-PAYLOAD")
    return SignedClaim(
        credential,
        signed_headers,
        signature,
        amz_date,
        seconds,
        payload_hash,
        presigned=True,
        expires_s=expires,
    )


# -- checks ---------------------------------------------------------------------------------


def check_time(claim: SignedClaim, now_s: float) -> None:
    """Header auth: within `CLOCK_SKEW_S_MAX` of now. Presigned: inside its validity."""
    if claim.presigned:
        if now_s + CLOCK_SKEW_S_MAX < claim.request_time_s:
            raise S3Error("AccessDenied", "the presigned URL is not valid yet")
        if now_s > claim.request_time_s + claim.expires_s:
            raise S3Error("AccessDenied", "Request has expired")
        return
    if abs(now_s - claim.request_time_s) > CLOCK_SKEW_S_MAX:
        raise S3Error(
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
        )


def check_signed_headers(claim: SignedClaim, view: RequestView) -> None:
    """`host` must be signed, and (header auth) every `x-amz-*` header sent; a presigned
    URL must at least sign any `x-amz-copy-source*` header, which would change its meaning."""
    signed = set(claim.signed_headers)
    if "host" not in signed:
        raise S3Error("AccessDenied", "the host header must be signed")
    for name, _ in view.headers:
        lower = name.lower()
        if lower in signed or not lower.startswith("x-amz-"):
            continue
        if not claim.presigned or lower.startswith("x-amz-copy-source"):
            raise S3Error("AccessDenied", f"header {lower} is present but not signed")


# -- canonical request ----------------------------------------------------------------------


def uri_encode(raw: bytes, keep_slash: bool) -> str:
    """AWS URI encoding: every byte but A-Z a-z 0-9 - _ . ~ (and `/` if kept) as %XY."""
    return quote_from_bytes(raw, safe=_UNRESERVED + (b"/" if keep_slash else b""))


def canonical_uri_candidates(raw_path: str) -> list[str]:
    """The canonical URI per AWS (decode, encode once), then the path as sent if different."""
    path = raw_path or "/"
    normal = uri_encode(unquote_to_bytes(path), keep_slash=True)
    return [normal] if normal == path else [normal, path]


def canonical_query(query: Pairs, presigned: bool) -> str:
    pairs = sorted(
        (uri_encode(name, False), uri_encode(value, False))
        for name, value in query
        if not (presigned and name == b"X-Amz-Signature")
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_headers(view: RequestView, names: Iterable[str]) -> str:
    lines = []
    for name in names:
        values = view.header_values(name)
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "".join(lines)


def canonical_request(view: RequestView, claim: SignedClaim, uri: str) -> str:
    return "\n".join(
        (
            view.method,
            uri,
            canonical_query(view.query, claim.presigned),
            canonical_headers(view, claim.signed_headers),
            ";".join(claim.signed_headers),
            claim.payload_hash,
        )
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret: str, credential: Credential) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (credential.date, credential.region, credential.service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def verify(view: RequestView, claim: SignedClaim, secret: str) -> SigningContext:
    """Check the signature of `view` against `claim` with `secret` (time and header rules
    are `check_time` / `check_signed_headers`). Returns what streaming bodies need."""
    key = signing_key(secret, claim.credential)
    scope = claim.credential.scope
    for uri in canonical_uri_candidates(view.raw_path):
        expected = sign(
            key, string_to_sign(claim.amz_date, scope, canonical_request(view, claim, uri))
        )
        if hmac.compare_digest(expected, claim.signature):
            return SigningContext(key, scope, claim.amz_date, claim.signature)
    raise S3Error(
        "SignatureDoesNotMatch",
        "the request signature we calculated does not match the signature you provided",
    )
