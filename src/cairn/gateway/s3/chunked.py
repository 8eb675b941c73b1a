"""Decoding `aws-chunked` request bodies, signed or not, with trailers. Pure (sans-IO).

Theory of operation. A client that streams a body of unknown content hash sends it as
`aws-chunked` (S3 API reference, "Transferring payload in multiple chunks"):

    <hex size>[;chunk-signature=<sig>]\\r\\n<size bytes>\\r\\n   ... repeated ...
    0[;chunk-signature=<sig>]\\r\\n
    [<trailer name>:<value>\\r\\n ...]            (the *-TRAILER modes)
    [x-amz-trailer-signature:<sig>\\r\\n]          (signed trailer mode only)
    \\r\\n

`ChunkedDecoder` is fed the raw bytes as they arrive (`feed`) and returns the decoded
payload as memoryview slices of what it was fed (no copy); it keeps at most one framing
line in memory, never a chunk, so memory is bounded whatever the chunk sizes. The
states are a small table:

| state | reads | next |
|---|---|---|
| SIZE | a line `hex[;chunk-signature=..]` | DATA (size > 0) or TRAILER (size 0) |
| DATA | `size` payload bytes, hashed if signed | DATA_END |
| DATA_END | `\\r\\n`; checks the chunk signature | SIZE |
| TRAILER | lines `name:value` until an empty line | DONE (checks the trailer signature) |
| DONE | nothing: more bytes are an error | |

Signed modes chain the signatures: chunk *i*'s string to sign names chunk *i-1*'s
signature (the seed is the request's own signature), so chunks cannot be reordered,
dropped or spliced from another request. A chunk's bytes are handed on *before* its
signature is checked (the check needs the whole chunk, and holding a chunk would cost its
size in memory), so a consumer must not make anything visible until `finish` returns:
the object service commits only after the body iterator ends, and `finish` runs before
it ends. Errors: framing -> `IncompleteBody` (truncated) or `InvalidRequest`, a bad
signature -> `SignatureDoesNotMatch`, a length that differs from
`x-amz-decoded-content-length` -> `IncompleteBody`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from enum import Enum

from cairn.gateway.s3.errors import S3Error
from cairn.gateway.s3.sigv4 import (
    EMPTY_SHA256,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    SigningContext,
    sign,
)

SIZE_LINE_BYTES_MAX = 256
TRAILER_LINE_BYTES_MAX = 1024
TRAILER_LINES_MAX = 16
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_SIZE_LINE = re.compile(rb"([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?")


class _State(Enum):
    SIZE = "size"
    DATA = "data"
    DATA_END = "data_end"
    TRAILER = "trailer"
    DONE = "done"


class ChunkedDecoder:
    def __init__(
        self,
        mode: str,
        signing: SigningContext | None,
        decoded_length: int | None,
        trailer_names: Iterable[str] = (),
    ) -> None:
        """`mode` is the x-amz-content-sha256 streaming value; `signing` is required for
        the signed modes; `decoded_length` is x-amz-decoded-content-length if sent;
        `trailer_names` the names x-amz-trailer announced (lower case)."""
        if mode not in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER):
            raise S3Error("NotImplemented", f"{mode[:60]} is not supported")
        self.signed = mode != STREAMING_UNSIGNED_TRAILER
        self.trailing = mode != STREAMING_SIGNED
        if self.signed and signing is None:
            raise S3Error("AccessDenied", "a signed streaming body needs a signed request")
        self._signing = signing
        self._previous = signing.seed_signature if signing is not None else ""
        self._decoded_length = decoded_length
        self._expected_trailers = frozenset(trailer_names)
        self._state = _State.SIZE
        self._line = bytearray()
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._trailer_lines: list[tuple[str, str]] = []
        self.decoded_bytes = 0
        self.trailers: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    # -- feeding --------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Decode what `data` completes; returns the payload pieces it held."""
        view = memoryview(data).cast("B")
        out: list[memoryview] = []
        at = 0
        while at < len(view):
            state = self._state
            if state is _State.DATA:
                take = min(self._remaining, len(view) - at)
                piece = view[at : at + take]
                if self.signed:
                    self._chunk_hash.update(piece)
                out.append(piece)
                self._remaining -= take
                self.decoded_bytes += take
                at += take
                if self._decoded_length is not None and self.decoded_bytes > self._decoded_length:
                    raise S3Error("IncompleteBody", "the body is longer than its decoded length")
                if self._remaining == 0:
                    self._state = _State.DATA_END
            elif state is _State.DONE:
                raise S3Error("InvalidRequest", "data after the end of the aws-chunked body")
            else:
                at = self._take_line(view, at)
        return out

    def _take_line(self, view: memoryview, at: int) -> int:
        """Gather one CRLF-terminated framing line; act on it when complete."""
        limit = TRAILER_LINE_BYTES_MAX if self._state is _State.TRAILER else SIZE_LINE_BYTES_MAX
        window = view[at : at + limit + 2 - len(self._line)]
        end = bytes(window).find(b"\n")
        if end < 0:
            self._line += window
            if len(self._line) >= limit + 2:
                raise S3Error("InvalidRequest", "an aws-chunked framing line is too long")
            return at + len(window)
        self._line += view[at : at + end + 1]
        line = bytes(self._line)
        self._line.clear()
        if not line.endswith(b"\r\n"):
            raise S3Error("InvalidRequest", "aws-chunked lines end with CRLF")
        self._on_line(line[:-2])
        return at + end + 1

    def _on_line(self, line: bytes) -> None:
        if self._state is _State.DATA_END:
            if line:
                raise S3Error("InvalidRequest", "a chunk is longer than its size line says")
            self._check_chunk()
            self._state = _State.SIZE
        elif self._state is _State.SIZE:
            self._on_size(line)
        else:
            self._on_trailer(line)

    def _on_size(self, line: bytes) -> None:
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise S3Error("InvalidRequest", f"malformed aws-chunked size line {line[:80]!r}")
        size = int(match.group(1), 16)
        signature = match.group(2)
        if self.signed != (signature is not None):
            raise S3Error(
                "InvalidRequest" if not self.signed else "SignatureDoesNotMatch",
                "chunk signatures must be present exactly in the signed modes",
            )
        self._chunk_signature = signature.decode() if signature else ""
        self._chunk_hash = hashlib.sha256()
        if size:
            self._remaining = size
            self._state = _State.DATA
            return
        self._check_chunk()  # the final, empty chunk is signed too
        self._state = _State.TRAILER

    def _check_chunk(self) -> None:
        if not self.signed:
            return
        signing = self._signing
        assert signing is not None
        text = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                signing.amz_date,
                signing.scope,
                self._previous,
                EMPTY_SHA256,
                self._chunk_hash.hexdigest(),
            )
        )
        expected = sign(signing.key, text)
        if not hmac.compare_digest(expected, self._chunk_signature):
            raise S3Error("SignatureDoesNotMatch", "a chunk signature does not match")
        self._previous = expected

    def _on_trailer(self, line: bytes) -> None:
        if line:
            if not self.trailing:
                raise S3Error("InvalidRequest", "this streaming mode has no trailers")
            if len(self._trailer_lines) >= TRAILER_LINES_MAX:
                raise S3Error("InvalidRequest", "too many trailer lines")
            name, sep, value = line.partition(b":")
            if not sep:
                raise S3Error("InvalidRequest", f"malformed trailer line {line[:80]!r}")
            try:
                self._trailer_lines.append(
                    (name.decode("ascii").strip().lower(), value.decode("ascii").strip())
                )
            except UnicodeDecodeError:
                raise S3Error("InvalidRequest", "trailer lines are ASCII") from None
            return
        self._finish_trailers()
        self._state = _State.DONE

    def _finish_trailers(self) -> None:
        signature = ""
        for name, value in self._trailer_lines:
            if name == TRAILER_SIGNATURE:
                signature = value
            elif name in self.trailers:
                raise S3Error("InvalidRequest", f"trailer {name} sent twice")
            else:
                self.trailers[name] = value
        unexpected = set(self.trailers) - self._expected_trailers
        if unexpected:
            raise S3Error(
                "InvalidRequest", f"trailers not announced in x-amz-trailer: {sorted(unexpected)}"
            )
        missing = self._expected_trailers - set(self.trailers)
        if missing:
            raise S3Error("IncompleteBody", f"announced trailers missing: {sorted(missing)}")
        if self.signed and self.trailing:
            self._check_trailer_signature(signature)
        elif signature:
            raise S3Error("InvalidRequest", "a trailer signature in an unsigned mode")

    def _check_trailer_signature(self, signature: str) -> None:
        signing = self._signing
        assert signing is not None
        canonical = "".join(
            f"{name}:{value}\n" for name, value in self._trailer_lines if name != TRAILER_SIGNATURE
        )
        text = "\n".join(
            (
                "AWS4-HMAC-SHA256-TRAILER",
                signing.amz_date,
                signing.scope,
                self._previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            )
        )
        if not hmac.compare_digest(sign(signing.key, text), signature):
            raise S3Error("SignatureDoesNotMatch", "the trailer signature does not match")

    # -- the end ----------------------------------------------------------------------------
    def finish(self) -> dict[str, str]:
        """Call when the transport body ended: the trailers, or the error if incomplete."""
        if self._state is not _State.DONE:
            raise S3Error("IncompleteBody", "the aws-chunked body ended early")
        if self._decoded_length is not None and self.decoded_bytes != self._decoded_length:
            raise S3Error(
                "IncompleteBody",
                f"decoded {self.decoded_bytes} bytes, x-amz-decoded-content-length said "
                f"{self._decoded_length}",
            )
        return self.trailers
