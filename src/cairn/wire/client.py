"""The calling end of an RPC connection: handshake, then many calls in flight.

`RpcConnection.open` connects, proves knowledge of the cluster secret and checks the
server's proof. `call` sends a request with a fresh request id and waits for the frame
with the same id, so thousands of calls share one socket. A call that passes its
deadline, or whose task is cancelled, sends CANCEL so the server stops working on it.
`notify` sends a one-way message that gets no reply.
When the connection dies every waiting call fails at once with `PeerUnavailable`.
"""

import asyncio
import itertools
import ssl
import time
from typing import TypeVar

import msgspec

from cairn.base.checksum import Buffer
from cairn.base.errors import AuthenticationError, DeadlineExceeded, PeerUnavailable, RemoteError
from cairn.runtime.rng import SystemRng
from cairn.wire import auth
from cairn.wire.frames import Frame, FrameKind, encode_frame
from cairn.wire.messages import DEADLINE_EXCEEDED, Auth, AuthOk, ErrorReply, Hello
from cairn.wire.protocol import FrameProtocol
from cairn.wire.stats import CALL_SECONDS

T = TypeVar("T")

_ENCODER = msgspec.msgpack.Encoder()


class RpcConnection:
    def __init__(self, node_id: str, auth_key: bytes) -> None:
        self.node_id = node_id
        self._auth_key = auth_key
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        self._handshake: asyncio.Queue[Frame] = asyncio.Queue(maxsize=4)
        self._authenticated = False
        self._protocol: FrameProtocol | None = None
        self.peer_node_id = ""
        self.lost: asyncio.Event = asyncio.Event()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        node_id: str,
        auth_key: bytes,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = auth.HANDSHAKE_SECONDS_MAX,
    ) -> "RpcConnection":
        """Connect and authenticate; raise PeerUnavailable or AuthenticationError."""
        self = cls(node_id, auth_key)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: FrameProtocol(
                        self._on_frame, self._on_lost, peer_label=f"{host}:{port}"
                    ),
                    host,
                    port,
                    ssl=ssl_context,
                )
                self._protocol = protocol
                await self._authenticate()
        except TimeoutError:
            self.close()
            raise PeerUnavailable(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            self.close()
            raise PeerUnavailable(f"connect to {host}:{port} failed: {exc}") from None
        except BaseException:
            self.close()
            raise
        return self

    async def _next_handshake_frame(self) -> Frame:
        frame = await self._handshake.get()
        if frame.kind == FrameKind.ERROR:
            reply = msgspec.msgpack.decode(frame.body, type=ErrorReply)
            if reply.code == "auth_failed":
                raise AuthenticationError(reply.message)
            if reply.code == "unavailable":
                raise PeerUnavailable(reply.message)
            raise RemoteError(reply.code, reply.message)
        return frame

    async def _authenticate(self) -> None:
        assert self._protocol is not None
        hello_frame = await self._next_handshake_frame()
        hello = _decode_expected(hello_frame, FrameKind.HELLO, Hello)
        if hello.protocol != auth.PROTOCOL:
            raise AuthenticationError(f"peer speaks {hello.protocol!r}, not {auth.PROTOCOL!r}")
        nonce = SystemRng().randbytes(auth.NONCE_BYTES)
        proof = auth.client_proof(self._auth_key, hello.nonce, nonce, self.node_id, hello.node_id)
        body = _ENCODER.encode(Auth(node_id=self.node_id, nonce=nonce, proof=proof))
        self._protocol.send(encode_frame(FrameKind.AUTH, 0, body))
        ok = _decode_expected(await self._next_handshake_frame(), FrameKind.AUTH_OK, AuthOk)
        expected = auth.server_proof(
            self._auth_key, hello.nonce, nonce, self.node_id, hello.node_id
        )
        if not auth.proofs_match(expected, ok.proof):
            raise AuthenticationError("server failed to prove it holds the cluster secret")
        self.peer_node_id = hello.node_id
        self._authenticated = True

    def _on_frame(self, frame: Frame) -> None:
        if not self._authenticated:
            if self._handshake.full():
                assert self._protocol is not None
                self._protocol.abort("handshake_flood", "too many frames before authentication")
                return
            self._handshake.put_nowait(frame)
            return
        if frame.kind not in (FrameKind.RESPONSE, FrameKind.ERROR):
            assert self._protocol is not None
            self._protocol.abort("unexpected_frame", f"client got frame kind {frame.kind.name}")
            return
        future = self._pending.pop(frame.request_id, None)
        if future is not None and not future.done():
            future.set_result(frame)
        # else: the caller gave up (deadline/cancel); the late reply is dropped.

    def _on_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        error = PeerUnavailable(f"connection to {self.peer} lost" + (f": {exc}" if exc else ""))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        if not self._authenticated:
            # Wake a handshake waiting for a frame that will never come.
            error_body = _ENCODER.encode(ErrorReply(code="unavailable", message=str(error)))
            frame = Frame(FrameKind.ERROR, 0, 0, memoryview(error_body), memoryview(b""))
            if not self._handshake.full():
                self._handshake.put_nowait(frame)

    @property
    def peer(self) -> str:
        return self._protocol.peer if self._protocol else "?"

    @property
    def closed(self) -> bool:
        return self._protocol is None or self._protocol.closed

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def call(
        self,
        request: msgspec.Struct,
        response_type: type[T],
        payload: Buffer = b"",
        timeout: float | None = 30.0,
    ) -> tuple[T, memoryview]:
        """Send `request` (+ raw `payload`) and return the typed reply and its payload."""
        protocol = self._protocol
        if protocol is None or protocol.closed or not self._authenticated:
            raise PeerUnavailable(f"connection to {self.peer} is not open")
        request_id = next(self._ids)
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        timeout_ms = 0 if timeout is None else max(1, int(timeout * 1000))
        method = type(request).__name__
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                protocol.send(
                    encode_frame(
                        FrameKind.REQUEST, request_id, _ENCODER.encode(request), payload, timeout_ms
                    )
                )
                await protocol.drain()
                frame = await future
        except TimeoutError:
            self._cancel_remote(request_id)
            raise DeadlineExceeded(f"{method} to {self.peer} exceeded {timeout} s") from None
        except asyncio.CancelledError:
            self._cancel_remote(request_id)
            raise
        finally:
            self._pending.pop(request_id, None)
        CALL_SECONDS.labels(method=method).observe(time.perf_counter() - started)
        if frame.kind == FrameKind.ERROR:
            error = msgspec.msgpack.decode(frame.body, type=ErrorReply)
            if error.code == DEADLINE_EXCEEDED:
                # The server's copy of our deadline fired first (the same instant, seen
                # from two processes): the same event as our own timeout, so the same
                # exception, and callers retry (or not) as they do for that.
                raise DeadlineExceeded(f"{method} to {self.peer}: {error.message}")
            raise RemoteError(error.code, error.message)
        return msgspec.msgpack.decode(frame.body, type=response_type), frame.payload

    @property
    def writable(self) -> bool:
        """Authenticated, open and not paused: `notify_now` would not have to wait."""
        protocol = self._protocol
        return self._authenticated and protocol is not None and protocol.writable

    async def notify(self, message: msgspec.Struct, payload: Buffer = b"") -> None:
        """Send a one-way `message` (NOTIFY): no reply, no delivery report. Returns once
        it is handed to the socket, waiting only while the socket's buffer is full."""
        protocol = self._protocol
        self.notify_now(message, payload)
        assert protocol is not None
        await protocol.drain()

    def notify_now(self, message: msgspec.Struct, payload: Buffer = b"") -> None:
        """`notify` without waiting for a full socket buffer (check `writable` first)."""
        protocol = self._protocol
        if protocol is None or protocol.closed or not self._authenticated:
            raise PeerUnavailable(f"connection to {self.peer} is not open")
        protocol.send(encode_frame(FrameKind.NOTIFY, 0, _ENCODER.encode(message), payload))

    def _cancel_remote(self, request_id: int) -> None:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            try:
                protocol.send(encode_frame(FrameKind.CANCEL, request_id, b""))
            except PeerUnavailable:
                pass

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()


def _decode_expected(frame: Frame, kind: FrameKind, message_type: type[T]) -> T:
    if frame.kind != kind:
        raise AuthenticationError(f"expected {kind.name} during handshake, got {frame.kind.name}")
    try:
        return msgspec.msgpack.decode(frame.body, type=message_type)
    except msgspec.DecodeError as exc:
        raise AuthenticationError(f"malformed {kind.name}: {exc}") from None
