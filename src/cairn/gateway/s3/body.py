"""The body of an upload, as the object service consumes it: decoded, counted and verified.

Theory of operation. `RequestBody` is built from the request headers *before* any byte of
the body is read, so every header problem (no length, a malformed digest, an unsupported
streaming mode) is a 4xx while the client is still waiting for `100 Continue`. Then
`pieces()` streams the transport body in `BODY_PIECE_BYTES` reads through, in order:

1. the `aws-chunked` decoder (`chunked.ChunkedDecoder`) when x-amz-content-sha256 names a
   streaming mode: chunk signatures and trailers;
2. the digests the request stated (`checksums.BodyVerifier`): Content-MD5, a real
   x-amz-content-sha256, x-amz-checksum-* (header or trailer);

and hands the pieces on. Only when the transport body has ended does it check the
lengths, the trailers and the digests -- and only then does the iterator end, which is
when the object service commits the manifest. So a body that is cut short, too long,
mis-signed or mis-digested raises out of the iterator and nothing becomes visible.
Hashing a large piece runs on a worker thread (hashlib, zlib and crc32c release the GIL),
keeping the event loop free for other requests. Memory is one piece plus one framing
line, whatever the object's size.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Mapping

import aiohttp

from cairn.base.checksum import Buffer
from cairn.gateway.s3 import sigv4
from cairn.gateway.s3.auth import Authenticated
from cairn.gateway.s3.checksums import BodyVerifier, parse_expected
from cairn.gateway.s3.chunked import ChunkedDecoder
from cairn.gateway.s3.errors import S3Error

BODY_PIECE_BYTES = 256 * 1024
OFFLOAD_BYTES_MIN = 64 * 1024
"""Pieces at least this large are hashed on a worker thread."""


def _length(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit() or len(text) > 15:
        raise S3Error("InvalidArgument", f"{name} must be a non-negative integer")
    return int(text)


class RequestBody:
    def __init__(
        self,
        content: aiohttp.StreamReader,
        headers: Mapping[str, str],
        auth: Authenticated,
        executor: concurrent.futures.Executor,
    ) -> None:
        """`headers` are the request's, lower-case names (first value of each)."""
        self._content = content
        self._executor = executor
        self.content_length = _length(headers.get("content-length"), "Content-Length")
        mode = auth.claim.payload_hash
        self._decoder: ChunkedDecoder | None = None
        if mode in sigv4.STREAMING_MODES:
            decoded = _length(
                headers.get("x-amz-decoded-content-length"), "x-amz-decoded-content-length"
            )
            if decoded is None:
                raise S3Error("MissingContentLength", "x-amz-decoded-content-length is required")
            trailer = headers.get("x-amz-trailer", "")
            names = [n.strip().lower() for n in trailer.split(",") if n.strip()]
            self._decoder = ChunkedDecoder(mode, auth.signing, decoded, names)
            self.size = decoded
        else:
            if self.content_length is None:
                raise S3Error("MissingContentLength", "you must provide the Content-Length header")
            self.size = self.content_length
        hex_sha256 = mode if len(mode) == 64 and mode.isalnum() else None
        expected = parse_expected(headers, hex_sha256)
        if expected.trailer and self._decoder is None:
            raise S3Error("InvalidRequest", "x-amz-trailer needs an aws-chunked streaming body")
        self._verifier = BodyVerifier(expected)
        self.checksums: dict[str, str] = {}
        """The verified x-amz-checksum, once `pieces()` has ended."""

    def verified_checksums(self) -> dict[str, str]:
        return self.checksums

    def _process(self, raw: bytes) -> list[memoryview] | list[bytes]:
        pieces = self._decoder.feed(raw) if self._decoder is not None else [raw]
        if self._verifier.active:
            for piece in pieces:
                self._verifier.update(piece)
        return pieces

    async def pieces(self) -> AsyncIterator[Buffer]:
        loop = asyncio.get_running_loop()
        received = 0
        heavy = self._verifier.active or (self._decoder is not None and self._decoder.signed)
        try:
            async for raw in self._content.iter_chunked(BODY_PIECE_BYTES):
                received += len(raw)
                if self.content_length is not None and received > self.content_length:
                    raise S3Error("IncompleteBody", "the body is longer than Content-Length")
                if heavy and len(raw) >= OFFLOAD_BYTES_MIN:
                    pieces = await loop.run_in_executor(self._executor, self._process, raw)
                else:
                    pieces = self._process(raw)
                for piece in pieces:
                    yield piece
        except (aiohttp.ClientPayloadError, ConnectionError) as exc:
            raise S3Error("IncompleteBody", f"the request body was cut short: {exc}") from None
        trailers: dict[str, str] = {}
        if self._decoder is not None:
            trailers = self._decoder.finish()
        if self.content_length is not None and received != self.content_length:
            raise S3Error(
                "IncompleteBody",
                f"you did not provide the number of bytes specified by Content-Length "
                f"({received} of {self.content_length})",
            )
        self.checksums = self._verifier.finish(trailers)
