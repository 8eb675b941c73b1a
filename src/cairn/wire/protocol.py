"""The asyncio protocol under both ends of an RPC connection.

It owns the transport and the frame decoder, hands complete frames to its owner, and
implements write flow control (`drain`) so a sender of large payloads waits for the
socket instead of buffering without bound. A frame error, or a stream that ends in the
middle of a frame, closes the connection with a logged reason; it never raises into the
event loop, so a bad peer cannot take the process down.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from cairn.base.checksum import Buffer
from cairn.base.errors import FrameError, PeerUnavailable
from cairn.monitor.logs import log_event
from cairn.wire.frames import Frame, FrameDecoder
from cairn.wire.stats import FRAMES_REJECTED

log = logging.getLogger("cairn.wire")


class FrameProtocol(asyncio.BufferedProtocol):
    def __init__(
        self,
        on_frame: Callable[[Frame], None],
        on_lost: Callable[[Exception | None], None],
        decoder: FrameDecoder | None = None,
        peer_label: str = "?",
        on_made: Callable[[], None] | None = None,
    ) -> None:
        self._on_made = on_made
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._decoder = decoder or FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.peer = peer_label
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self.closed = False

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        if self._on_made is not None:
            self._on_made()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self.closed:
            return
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except FrameError as exc:
            self.abort("bad_frame", str(exc))
            return
        for frame in frames:
            if self.is_closed():  # a handler may have closed us mid-batch
                return
            self._on_frame(frame)

    def eof_received(self) -> bool:
        if not self._decoder.idle:
            self.abort("truncated_frame", "stream ended inside a frame")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(PeerUnavailable(f"connection to {self.peer} lost"))
        self._drain_waiters.clear()
        self._on_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- used by the owner -------------------------------------------------------------
    def is_closed(self) -> bool:
        return self.closed

    @property
    def writable(self) -> bool:
        """Open and not paused by flow control: a send now goes out without waiting."""
        return not self.closed and not self._paused

    def send(self, buffers: list[Buffer]) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise PeerUnavailable(f"connection to {self.peer} is closed")
        self.transport.writelines(buffers)

    async def drain(self) -> None:
        if self.closed:
            raise PeerUnavailable(f"connection to {self.peer} is closed")
        if not self._paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def abort(self, reason: str, detail: str) -> None:
        """Close the connection at once because the peer broke the protocol."""
        FRAMES_REJECTED.labels(reason=reason).inc()
        log_event(
            log,
            "wire.connection_closed",
            logging.WARNING,
            peer=self.peer,
            reason=reason,
            detail=detail,
        )
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
