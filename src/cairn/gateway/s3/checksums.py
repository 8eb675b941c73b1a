"""Integrity checks of an upload: Content-MD5, x-amz-content-sha256 and x-amz-checksum-*.

Theory of operation. A client may state, in headers or in aws-chunked trailers, digests of
the body it sends: `Content-MD5` (base64 MD5), `x-amz-content-sha256` (hex SHA-256, when
it is not a mode such as UNSIGNED-PAYLOAD) and one `x-amz-checksum-<algorithm>` (base64,
big-endian) for CRC32, CRC32C, CRC64/NVME, SHA-1 or SHA-256 -- current boto3 sends a
CRC32 trailer with every upload by default. `parse_expected` reads the headers into an
`ExpectedDigests` (malformed values are rejected before the body is read);
`BodyVerifier` computes exactly the digests needed while the body streams through it and
`finish` compares them once the body (and its trailers) ended, raising the S3 error:

| stated | mismatch | malformed |
|---|---|---|
| Content-MD5 | `BadDigest` | `InvalidDigest` |
| x-amz-content-sha256 | `XAmzContentSHA256Mismatch` | `InvalidArgument` (sigv4) |
| x-amz-checksum-* | `BadDigest` | `InvalidRequest` |

`finish` runs before the object service commits the manifest, so a body that fails a
check is never visible. The verified checksum is returned so it can be stored with the
object and echoed back (`x-amz-checksum-*` on GET/HEAD with checksum mode on).

Pure: hashlib, zlib, crc32c and crcmod are computation only (and release the GIL on large
buffers, except crcmod; the caller decides where `update` runs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import crc32c
import crcmod

from cairn.gateway.s3.errors import S3Error

CHECKSUM_HEADER_PREFIX = "x-amz-checksum-"
DIGEST_BYTES: dict[str, int] = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
"""Supported x-amz-checksum algorithms and the length of each digest."""
NON_ALGORITHM_HEADERS = frozenset({"mode", "algorithm", "type"})
"""x-amz-checksum-mode/-algorithm/-type are not checksums."""
_CRC64_NVME_POLY = 0x1AD93D23594C93659


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview) -> None:
        self.value = crc32c.crc32c(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _Crc64Nvme:
    """CRC-64/NVME (reflected, poly 0xAD93D23594C93659, init and xorout all ones)."""

    def __init__(self) -> None:
        # crcmod's initCrc is the initial register XORed with xorOut: all ones ^ all ones.
        self._crc = crcmod.Crc(_CRC64_NVME_POLY, initCrc=0, rev=True, xorOut=(1 << 64) - 1)

    def update(self, data: bytes | memoryview) -> None:
        self._crc.update(bytes(data) if isinstance(data, memoryview) else data)

    def digest(self) -> bytes:
        return int(self._crc.crcValue).to_bytes(8, "big")


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "crc32":
        return _Crc32()
    if algorithm == "crc32c":
        return _Crc32c()
    if algorithm == "crc64nvme":
        return _Crc64Nvme()
    if algorithm in ("sha1", "sha256"):
        return hashlib.new(algorithm)
    raise S3Error("InvalidRequest", f"unsupported checksum algorithm {algorithm[:32]!r}")


def checksum_of(algorithm: str, data: bytes) -> str:
    """The base64 x-amz-checksum value of `data` (tests and small bodies)."""
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return base64.b64encode(hasher.digest()).decode()


def _b64(value: str, length: int, code: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error(code, f"{what} is not valid base64") from None
    if len(raw) != length:
        raise S3Error(code, f"{what} must be {length} bytes, base64-encoded")
    return raw


@dataclass(frozen=True, slots=True)
class ExpectedDigests:
    content_md5: bytes | None = None
    payload_sha256: str | None = None
    """Hex SHA-256 the signature covers, or None when the payload is not hashed."""
    checksum_algorithm: str | None = None
    checksum: bytes | None = None
    """None with an algorithm: the value comes in the trailer."""
    trailer: bool = False


def parse_checksum_algorithm(text: str) -> str:
    algorithm = text.strip().lower().replace("-", "").replace("_", "")
    if algorithm not in DIGEST_BYTES:
        raise S3Error("InvalidRequest", f"unsupported checksum algorithm {text[:32]!r}")
    return algorithm


def parse_expected(headers: Mapping[str, str], payload_sha256: str | None) -> ExpectedDigests:
    """The digests a request states in its headers (names in lower case)."""
    md5 = headers.get("content-md5")
    content_md5 = _b64(md5, 16, "InvalidDigest", "Content-MD5") if md5 is not None else None
    algorithm: str | None = None
    value: bytes | None = None
    for name, text in headers.items():
        if not name.startswith(CHECKSUM_HEADER_PREFIX):
            continue
        suffix = name[len(CHECKSUM_HEADER_PREFIX) :]
        if suffix in NON_ALGORITHM_HEADERS:
            continue
        found = parse_checksum_algorithm(suffix)
        if algorithm is not None:
            raise S3Error("InvalidRequest", "expecting a single x-amz-checksum- header")
        algorithm = found
        value = _b64(text, DIGEST_BYTES[found], "InvalidRequest", f"x-amz-checksum-{found}")
    trailer_text = headers.get("x-amz-trailer")
    trailer = False
    if trailer_text is not None:
        names = [n.strip().lower() for n in trailer_text.split(",") if n.strip()]
        if len(names) != 1 or not names[0].startswith(CHECKSUM_HEADER_PREFIX):
            raise S3Error("InvalidRequest", "x-amz-trailer must name one x-amz-checksum-*")
        if algorithm is not None:
            raise S3Error("InvalidRequest", "a checksum in both a header and the trailer")
        algorithm = parse_checksum_algorithm(names[0][len(CHECKSUM_HEADER_PREFIX) :])
        trailer = True
    return ExpectedDigests(content_md5, payload_sha256, algorithm, value, trailer)


@dataclass
class BodyVerifier:
    """Computes the digests `expected` needs over the body, then checks them (`finish`)."""

    expected: ExpectedDigests
    _md5: Hasher | None = field(default=None, init=False)
    _sha256: Hasher | None = field(default=None, init=False)
    _checksum: Hasher | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.expected.content_md5 is not None:
            self._md5 = hashlib.md5(usedforsecurity=False)
        if self.expected.payload_sha256 is not None:
            self._sha256 = hashlib.sha256()
        if self.expected.checksum_algorithm is not None:
            self._checksum = new_hasher(self.expected.checksum_algorithm)

    @property
    def active(self) -> bool:
        return any(h is not None for h in (self._md5, self._sha256, self._checksum))

    def update(self, piece: bytes | memoryview) -> None:
        for hasher in (self._md5, self._sha256, self._checksum):
            if hasher is not None:
                hasher.update(piece)

    def finish(self, trailers: Mapping[str, str] | None = None) -> dict[str, str]:
        """Compare every digest; the verified `{algorithm: base64}` checksum (or {})."""
        expected = self.expected
        if self._sha256 is not None and self._sha256.digest().hex() != expected.payload_sha256:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "the provided x-amz-content-sha256 does not match what was computed",
            )
        if self._md5 is not None and self._md5.digest() != expected.content_md5:
            raise S3Error(
                "BadDigest", "the Content-MD5 you specified did not match what we received"
            )
        algorithm = expected.checksum_algorithm
        if algorithm is None or self._checksum is None:
            return {}
        stated = expected.checksum
        if expected.trailer:
            name = CHECKSUM_HEADER_PREFIX + algorithm
            text = (trailers or {}).get(name)
            if text is None:
                raise S3Error("IncompleteBody", f"the trailer {name} is missing")
            stated = _b64(text, DIGEST_BYTES[algorithm], "InvalidRequest", name)
        digest = self._checksum.digest()
        if digest != stated:
            raise S3Error(
                "BadDigest",
                f"the {algorithm.upper()} you specified did not match the calculated checksum",
            )
        return {algorithm: base64.b64encode(digest).decode()}
