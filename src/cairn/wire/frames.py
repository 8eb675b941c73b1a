"""Frame format and a sans-IO incremental decoder.

Theory of operation
-------------------
Every message between Cairn processes is one frame::

    offset size field
    0      2    magic b"CW"
    2      1    version (1)
    3      1    kind (FrameKind)
    4      8    request id, chosen by the caller, echoed in the reply (0 in NOTIFY)
    12     4    timeout in ms the caller will wait (0 = none); the server's deadline
    16     4    body length   (a msgpack-encoded message, small)
    20     4    payload length (raw bytes, e.g. a chunk; never re-encoded)
    24     4    CRC32C of body then payload
    28     4    CRC32C of bytes 0..27 (so a garbled length is caught before we trust it)

Sending is `transport.writelines([header, body, payload])`: the payload buffer goes to
the socket as is. Receiving uses the buffered-protocol contract: the transport asks
`get_buffer()` where to put the next bytes. Small frames accumulate in a scratch buffer
and are cut out of it; a frame too big for the scratch buffer gets its own bytearray and
the transport reads straight into it, so a 64 MiB payload is copied once, from the kernel.

The decoder is pure (no sockets, no clock): feed it bytes, get frames or a FrameError.
A FrameError means the stream can no longer be trusted; the connection must be closed.
"""

import enum
import struct
from dataclasses import dataclass

from cairn.base.checksum import Buffer, crc32c, crc32c_extend
from cairn.base.errors import FrameError

MAGIC = b"CW"
VERSION = 1
_HEADER = struct.Struct("!2sBBQIIIII")
HEADER_BYTES = _HEADER.size
assert HEADER_BYTES == 32

BODY_BYTES_MAX = 1 << 20
PAYLOAD_BYTES_MAX = 128 << 20
SCRATCH_BYTES = 256 << 10


class FrameKind(enum.IntEnum):
    HELLO = 1  # server -> client: challenge
    AUTH = 2  # client -> server: proof and counter-challenge
    AUTH_OK = 3  # server -> client: server's proof
    REQUEST = 4
    RESPONSE = 5
    ERROR = 6
    CANCEL = 7  # client -> server: stop working on request id
    NOTIFY = 8  # client -> server: a one-way message; no reply, request id 0


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    request_id: int
    timeout_ms: int
    body: memoryview
    payload: memoryview


def encode_frame(
    kind: FrameKind,
    request_id: int,
    body: Buffer,
    payload: Buffer = b"",
    timeout_ms: int = 0,
) -> list[Buffer]:
    """The buffers of one frame, in order, for `transport.writelines` (no joining)."""
    body_len, payload_len = len(body), len(memoryview(payload))
    if body_len > BODY_BYTES_MAX:
        raise FrameError(f"body of {body_len} bytes exceeds {BODY_BYTES_MAX}")
    if payload_len > PAYLOAD_BYTES_MAX:
        raise FrameError(f"payload of {payload_len} bytes exceeds {PAYLOAD_BYTES_MAX}")
    data_crc = crc32c_extend(crc32c(body), payload) if payload_len else crc32c(body)
    head = _HEADER.pack(
        MAGIC, VERSION, kind, request_id, timeout_ms, body_len, payload_len, data_crc, 0
    )
    header = head[:-4] + crc32c(head[:-4]).to_bytes(4, "big")
    return [header, body, payload] if payload_len else [header, body]


@dataclass(frozen=True, slots=True)
class _Header:
    kind: FrameKind
    request_id: int
    timeout_ms: int
    body_len: int
    payload_len: int
    data_crc: int

    @property
    def total(self) -> int:
        return self.body_len + self.payload_len


def _parse_header(raw: memoryview, body_bytes_max: int, payload_bytes_max: int) -> _Header:
    magic, version, kind, request_id, timeout_ms, body_len, payload_len, data_crc, head_crc = (
        _HEADER.unpack(raw)
    )
    if magic != MAGIC:
        raise FrameError(f"bad magic {bytes(magic)!r}")
    if crc32c(raw[: HEADER_BYTES - 4]) != head_crc:
        raise FrameError("header checksum mismatch")
    if version != VERSION:
        raise FrameError(f"unsupported frame version {version}")
    try:
        frame_kind = FrameKind(kind)
    except ValueError:
        raise FrameError(f"unknown frame kind {kind}") from None
    if body_len > body_bytes_max:
        raise FrameError(f"body of {body_len} bytes exceeds {body_bytes_max}")
    if payload_len > payload_bytes_max:
        raise FrameError(f"payload of {payload_len} bytes exceeds {payload_bytes_max}")
    return _Header(frame_kind, request_id, timeout_ms, body_len, payload_len, data_crc)


class FrameDecoder:
    """Incremental decoder following asyncio's BufferedProtocol contract."""

    def __init__(
        self,
        body_bytes_max: int = BODY_BYTES_MAX,
        payload_bytes_max: int = PAYLOAD_BYTES_MAX,
        scratch_bytes: int = SCRATCH_BYTES,
    ) -> None:
        assert scratch_bytes >= 2 * HEADER_BYTES
        self._body_max = body_bytes_max
        self._payload_max = payload_bytes_max
        self._scratch = bytearray(scratch_bytes)
        self._start = 0  # first unconsumed byte in scratch
        self._end = 0  # one past the last received byte in scratch
        self._header: _Header | None = None  # parsed header of the frame in progress
        self._big: bytearray | None = None  # own buffer of a frame too big for scratch
        self._big_filled = 0
        self.broken = False

    def get_buffer(self) -> memoryview:
        """Where the next received bytes must be written."""
        if self._big is not None:
            return memoryview(self._big)[self._big_filled :]
        if self._end == len(self._scratch):  # full: move the unconsumed tail to the front
            remaining = self._end - self._start
            self._scratch[:remaining] = self._scratch[self._start : self._end]
            self._start, self._end = 0, remaining
        return memoryview(self._scratch)[self._end :]

    def buffer_updated(self, nbytes: int) -> list[Frame]:
        """Account for `nbytes` written into the last buffer; return completed frames."""
        if self.broken:
            raise FrameError("decoder already failed")
        try:
            if self._big is not None:
                self._big_filled += nbytes
                assert self._big_filled <= len(self._big)
                if self._big_filled < len(self._big):
                    return []
                assert self._header is not None
                frame = self._finish(self._header, memoryview(self._big))
                self._header, self._big, self._big_filled = None, None, 0
                return [frame, *self._drain()]
            self._end += nbytes
            return self._drain()
        except FrameError:
            self.broken = True
            raise

    def feed(self, data: Buffer) -> list[Frame]:
        """Convenience for tests and plain stream readers: copy `data` in, return frames."""
        frames: list[Frame] = []
        view = memoryview(data)
        while view:
            target = self.get_buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            view = view[n:]
            frames.extend(self.buffer_updated(n))
        return frames

    @property
    def idle(self) -> bool:
        """True when no partial frame is buffered (a clean place for the stream to end)."""
        return self._big is None and self._header is None and self._start == self._end

    def _drain(self) -> list[Frame]:
        frames: list[Frame] = []
        scratch = memoryview(self._scratch)
        while True:
            available = self._end - self._start
            if self._header is None:
                if available < HEADER_BYTES:
                    break
                self._header = _parse_header(
                    scratch[self._start : self._start + HEADER_BYTES],
                    self._body_max,
                    self._payload_max,
                )
                self._start += HEADER_BYTES
                available -= HEADER_BYTES
            header = self._header
            if available >= header.total:
                data = bytes(scratch[self._start : self._start + header.total])
                self._start += header.total
                self._header = None
                frames.append(self._finish(header, memoryview(data)))
                continue
            if header.total > len(self._scratch) - HEADER_BYTES:
                big = bytearray(header.total)
                big[:available] = scratch[self._start : self._end]
                self._big, self._big_filled = big, available
                self._start = self._end = 0
            break
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    @staticmethod
    def _finish(header: _Header, data: memoryview) -> Frame:
        body, payload = data[: header.body_len], data[header.body_len :]
        crc = crc32c(body)
        if header.payload_len:
            crc = crc32c_extend(crc, payload)
        if crc != header.data_crc:
            raise FrameError("body/payload checksum mismatch")
        return Frame(header.kind, header.request_id, header.timeout_ms, body, payload)
