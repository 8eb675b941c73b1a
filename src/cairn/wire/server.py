"""The serving end: a `Router` of typed handlers and an `RpcServer` that runs them.

A connection starts unauthenticated: the server sends HELLO with a fresh nonce and
accepts only a valid AUTH frame, within a deadline. Anything else closes the connection
before any handler runs. After that, each REQUEST runs as its own task (so a slow call
does not hold up the others on the connection), bounded per connection; its deadline is
the caller's timeout; CANCEL from the caller cancels the task.

Handlers are `async def handler(request, payload, context) -> Struct | (Struct, payload)`.
They raise `RemoteError(code, message)` for expected failures; any other exception is
logged and reported to the caller as code "internal".

A NOTIFY frame is a one-way message: its handler (`register_notify`) is a plain function
run at once, in arrival order, with no task and no reply. Raft uses it: its messages are
best-effort and answered by other messages, so an RPC reply per batch only doubled the
frames each process sends and receives.
"""

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Union

import msgspec

from cairn.base.checksum import Buffer
from cairn.base.errors import CairnError, RemoteError
from cairn.monitor.logs import bind_request, log_event
from cairn.runtime.rng import SystemRng
from cairn.wire import auth
from cairn.wire.frames import Frame, FrameKind, encode_frame
from cairn.wire.messages import DEADLINE_EXCEEDED, Auth, AuthOk, ErrorReply, Hello, Ping, Pong
from cairn.wire.protocol import FrameProtocol
from cairn.wire.stats import AUTH_FAILURES, CALLS_SERVED

log = logging.getLogger("cairn.wire")

IN_FLIGHT_PER_CONNECTION_MAX = 4096
_ENCODER = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class CallContext:
    peer_node_id: str
    request_id: int


Reply = msgspec.Struct | tuple[msgspec.Struct, Buffer]
Handler = Callable[[Any, memoryview, CallContext], Awaitable[Reply]]
NotifyHandler = Callable[[Any, memoryview, CallContext], object]


class Router:
    """Maps request message types (tagged msgspec Structs) to handlers."""

    def __init__(self) -> None:
        self._handlers: dict[type[msgspec.Struct], Handler] = {}
        self._notify_handlers: dict[type[msgspec.Struct], NotifyHandler] = {}
        self._decoder: msgspec.msgpack.Decoder[Any] | None = None

    def register(self, request_type: type[msgspec.Struct], handler: Handler) -> None:
        self._check_new(request_type, self._handlers)
        self._handlers[request_type] = handler
        self._decoder = None

    def register_notify(self, message_type: type[msgspec.Struct], handler: NotifyHandler) -> None:
        """`handler` runs for each NOTIFY frame carrying a `message_type` (no reply)."""
        self._check_new(message_type, self._notify_handlers)
        self._notify_handlers[message_type] = handler
        self._decoder = None

    @staticmethod
    def _check_new(message_type: type[msgspec.Struct], handlers: dict[Any, Any]) -> None:
        if not message_type.__struct_config__.tag:
            raise TypeError(f"{message_type.__name__} must be declared with tag=True")
        if message_type in handlers:
            raise ValueError(f"{message_type.__name__} already has a handler")

    def decode(self, body: memoryview) -> msgspec.Struct:
        if self._decoder is None:
            types = tuple(dict.fromkeys([*self._handlers, *self._notify_handlers]))
            union = types[0] if len(types) == 1 else Union.__getitem__(types)
            self._decoder = msgspec.msgpack.Decoder(union)
        request: msgspec.Struct = self._decoder.decode(body)
        return request

    def handler_for(self, request: msgspec.Struct) -> Handler:
        return self._handlers[type(request)]

    def notify_handler_for(self, message: msgspec.Struct) -> NotifyHandler:
        return self._notify_handlers[type(message)]


def ping_handler(node_id: str) -> Handler:
    async def handle(request: Ping, payload: memoryview, _ctx: CallContext) -> Reply:
        return Pong(node_id=node_id, note=request.note), payload

    return handle


class _Session:
    """One accepted connection."""

    def __init__(self, server: "RpcServer") -> None:
        self._server = server
        self._nonce = SystemRng().randbytes(auth.NONCE_BYTES)
        self._peer_node_id = ""
        self._authenticated = False
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.protocol = FrameProtocol(self._on_frame, self._on_lost, on_made=self.start)
        self._handshake_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        hello = Hello(node_id=self._server.node_id, nonce=self._nonce, protocol=auth.PROTOCOL)
        self.protocol.send(encode_frame(FrameKind.HELLO, 0, _ENCODER.encode(hello)))
        self._handshake_timer = asyncio.get_running_loop().call_later(
            auth.HANDSHAKE_SECONDS_MAX, self._handshake_expired
        )

    def _handshake_expired(self) -> None:
        if not self._authenticated and not self.protocol.closed:
            self.protocol.abort("handshake_timeout", "no valid AUTH in time")

    def _on_frame(self, frame: Frame) -> None:
        if not self._authenticated:
            self._authenticate(frame)
        elif frame.kind == FrameKind.REQUEST:
            self._start_request(frame)
        elif frame.kind == FrameKind.NOTIFY:
            self._notify(frame)
        elif frame.kind == FrameKind.CANCEL:
            task = self._tasks.get(frame.request_id)
            if task is not None:
                task.cancel()
        else:
            self.protocol.abort("unexpected_frame", f"server got frame kind {frame.kind.name}")

    def _authenticate(self, frame: Frame) -> None:
        if frame.kind != FrameKind.AUTH:
            AUTH_FAILURES.inc()
            self.protocol.abort("unauthenticated", f"{frame.kind.name} frame before AUTH")
            return
        try:
            message = msgspec.msgpack.decode(frame.body, type=Auth)
        except msgspec.DecodeError as exc:
            AUTH_FAILURES.inc()
            self.protocol.abort("bad_auth", f"malformed AUTH: {exc}")
            return
        key = self._server.auth_key
        expected = auth.client_proof(
            key, self._nonce, message.nonce, message.node_id, self._server.node_id
        )
        if not auth.proofs_match(expected, message.proof):
            AUTH_FAILURES.inc()
            reply = ErrorReply(code="auth_failed", message="cluster secret proof did not match")
            self.protocol.send(encode_frame(FrameKind.ERROR, 0, _ENCODER.encode(reply)))
            self.protocol.abort("auth_failed", f"peer {message.node_id!r} failed authentication")
            return
        proof = auth.server_proof(
            key, self._nonce, message.nonce, message.node_id, self._server.node_id
        )
        self.protocol.send(encode_frame(FrameKind.AUTH_OK, 0, _ENCODER.encode(AuthOk(proof=proof))))
        self._authenticated = True
        self._peer_node_id = message.node_id
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()

    def _start_request(self, frame: Frame) -> None:
        if len(self._tasks) >= IN_FLIGHT_PER_CONNECTION_MAX:
            self._send_error(frame.request_id, "overloaded", "too many requests in flight")
            return
        if frame.request_id in self._tasks:
            self.protocol.abort("duplicate_request_id", f"request id {frame.request_id} reused")
            return
        task = asyncio.get_running_loop().create_task(self._run(frame))
        self._tasks[frame.request_id] = task
        task.add_done_callback(self._forget_task(frame.request_id))

    def _notify(self, frame: Frame) -> None:
        """Run a one-way message's handler now; failures are counted, never answered."""
        method = "?"
        try:
            message = self._server.router.decode(frame.body)
            method = type(message).__name__
            handler = self._server.router.notify_handler_for(message)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            CALLS_SERVED.labels(method=method, outcome="bad_request").inc()
            return
        try:
            handler(message, frame.payload, CallContext(self._peer_node_id, 0))
        except Exception:
            CALLS_SERVED.labels(method=method, outcome="internal").inc()
            log.exception("wire.notify_failed method=%s", method)
            return
        CALLS_SERVED.labels(method=method, outcome="ok").inc()

    def _forget_task(self, request_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(request_id, None)

        return forget

    async def _run(self, frame: Frame) -> None:
        token = bind_request(f"{self._peer_node_id}/{frame.request_id}")
        method = "?"
        try:
            try:
                request = self._server.router.decode(frame.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                CALLS_SERVED.labels(method=method, outcome="bad_request").inc()
                self._send_error(frame.request_id, "bad_request", str(exc))
                return
            method = type(request).__name__
            handler = self._server.router.handler_for(request)
            context = CallContext(self._peer_node_id, frame.request_id)
            timeout = frame.timeout_ms / 1000 if frame.timeout_ms else None
            try:
                async with asyncio.timeout(timeout):
                    reply = await handler(request, frame.payload, context)
            except TimeoutError:
                CALLS_SERVED.labels(method=method, outcome="deadline").inc()
                self._send_error(frame.request_id, DEADLINE_EXCEEDED, "handler passed deadline")
                return
            except RemoteError as exc:
                CALLS_SERVED.labels(method=method, outcome=exc.code).inc()
                self._send_error(frame.request_id, exc.code, exc.message)
                return
            except CairnError as exc:
                CALLS_SERVED.labels(method=method, outcome="error").inc()
                self._send_error(frame.request_id, type(exc).__name__, str(exc))
                return
            except Exception as exc:
                CALLS_SERVED.labels(method=method, outcome="internal").inc()
                log.exception("wire.handler_failed method=%s", method)
                self._send_error(frame.request_id, "internal", f"{type(exc).__name__}: {exc}")
                return
            message, payload = reply if isinstance(reply, tuple) else (reply, b"")
            if not self.protocol.closed:
                self.protocol.send(
                    encode_frame(
                        FrameKind.RESPONSE, frame.request_id, _ENCODER.encode(message), payload
                    )
                )
                CALLS_SERVED.labels(method=method, outcome="ok").inc()
                await self.protocol.drain()
        except asyncio.CancelledError:
            CALLS_SERVED.labels(method=method, outcome="cancelled").inc()
        except CairnError:
            pass  # the connection went away while we answered; nothing to tell anyone
        finally:
            token.var.reset(token)

    def _send_error(self, request_id: int, code: str, message: str) -> None:
        if not self.protocol.closed:
            body = _ENCODER.encode(ErrorReply(code=code, message=message[:4096]))
            self.protocol.send(encode_frame(FrameKind.ERROR, request_id, body))

    def _on_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        for task in list(self._tasks.values()):
            task.cancel()
        self._server.sessions.discard(self)


class RpcServer:
    """Accepts authenticated connections and dispatches requests through `router`."""

    def __init__(
        self,
        router: Router,
        *,
        node_id: str,
        auth_key: bytes,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.router = router
        self.node_id = node_id
        self.auth_key = auth_key
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self.sessions: set[_Session] = set()
        self.port = 0

    def _accept(self) -> FrameProtocol:
        session = _Session(self)
        self.sessions.add(session)
        return session.protocol

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 = any free port); return the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._accept, host, port, ssl=self._ssl, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log_event(log, "wire.listening", host=host, port=self.port, tls=self._ssl is not None)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in list(self.sessions):
                session.protocol.close()
            await self._server.wait_closed()
            self._server = None
