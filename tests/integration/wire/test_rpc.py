"""RPC over real sockets on 127.0.0.1: concurrency, big payloads, deadlines, failures,
authentication, hostile bytes and TLS."""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from cairn.base.errors import AuthenticationError, DeadlineExceeded, PeerUnavailable, RemoteError
from cairn.wire import (
    Ping,
    Pong,
    Router,
    RpcConnection,
    RpcPool,
    RpcServer,
    client_context,
    derive_auth_key,
    make_certificates,
    ping_handler,
    server_context,
)
from cairn.wire.frames import FrameKind, encode_frame
from cairn.wire.server import CallContext, Reply

SECRET = "test-cluster-secret-0123456789"
KEY = derive_auth_key(SECRET)


class Sleep(msgspec.Struct, frozen=True, tag=True):
    seconds: float


class Fail(msgspec.Struct, frozen=True, tag=True):
    code: str


class Empty(msgspec.Struct, frozen=True, tag=True):
    pass


class Note(msgspec.Struct, frozen=True, tag=True):
    seq: int


handler_cancelled: dict[float, asyncio.Event] = {}
notes_seen: list[tuple[int, bytes, str]] = []


def note_handler(message: Note, payload: memoryview, ctx: CallContext) -> None:
    if message.seq < 0:
        raise ValueError("handler bug")
    notes_seen.append((message.seq, bytes(payload), ctx.peer_node_id))


async def sleep_handler(request: Sleep, _payload: memoryview, _ctx: CallContext) -> Reply:
    try:
        await asyncio.sleep(request.seconds)  # the work being timed out, not synchronisation
    except asyncio.CancelledError:
        handler_cancelled.setdefault(request.seconds, asyncio.Event()).set()
        raise
    return Empty()


async def fail_handler(request: Fail, _payload: memoryview, _ctx: CallContext) -> Reply:
    if request.code == "boom":
        raise ValueError("handler bug")
    raise RemoteError(request.code, "as requested")


def make_router() -> Router:
    router = Router()
    router.register(Ping, ping_handler("server-1"))
    router.register(Sleep, sleep_handler)
    router.register(Fail, fail_handler)
    router.register_notify(Note, note_handler)
    return router


@pytest.fixture
async def server() -> AsyncIterator[RpcServer]:
    srv = RpcServer(make_router(), node_id="server-1", auth_key=KEY)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.stop()


async def connect(srv: RpcServer, key: bytes = KEY) -> RpcConnection:
    return await RpcConnection.open("127.0.0.1", srv.port, node_id="client-1", auth_key=key)


async def test_ping_round_trip_and_peer_identity(server: RpcServer) -> None:
    conn = await connect(server)
    reply, payload = await conn.call(Ping(note="hi"), Pong, b"echo")
    assert reply == Pong(node_id="server-1", note="hi")
    assert bytes(payload) == b"echo"
    assert conn.peer_node_id == "server-1"
    conn.close()


async def test_thousand_concurrent_calls_on_one_connection(server: RpcServer) -> None:
    conn = await connect(server)
    results = await asyncio.gather(
        *(conn.call(Ping(note=str(i)), Pong, i.to_bytes(4, "big")) for i in range(1000))
    )
    assert [r.note for r, _ in results] == [str(i) for i in range(1000)]
    assert [int.from_bytes(p, "big") for _, p in results] == list(range(1000))
    assert conn.in_flight == 0
    conn.close()


async def test_64_mib_payload_both_ways(server: RpcServer) -> None:
    conn = await connect(server)
    payload = os.urandom(64 << 20)
    _, echoed = await conn.call(Ping(), Pong, payload, timeout=60)
    assert len(echoed) == len(payload)
    assert echoed == memoryview(payload)
    conn.close()


async def test_notify_is_one_way_in_order_and_survives_bad_messages(server: RpcServer) -> None:
    """NOTIFY frames run their handler in arrival order with no reply; one whose type has
    no notify handler, or whose handler fails, is dropped without closing anything."""
    notes_seen.clear()
    conn = await connect(server)
    await conn.notify(Ping(note="has only a call handler"))
    for seq in range(200):
        if seq == 100:
            await conn.notify(Note(seq=-1))  # the handler raises
        await conn.notify(Note(seq=seq), seq.to_bytes(2, "big"))
    # A call after the notes is answered after they ran: one connection, one order.
    reply, _ = await conn.call(Ping(note="after"), Pong)
    assert reply.note == "after"
    assert notes_seen == [(i, i.to_bytes(2, "big"), "client-1") for i in range(200)]
    assert conn.in_flight == 0 and not conn.closed
    conn.close()


async def test_pool_notify_to_itself_skips_the_socket() -> None:
    notes_seen.clear()
    pool = RpcPool("node-1", KEY)
    pool.serve_locally("127.0.0.1:1", make_router())  # nothing listens there
    await pool.notify("127.0.0.1:1", Note(seq=7), b"x")
    assert notes_seen == [(7, b"x", "node-1")]
    with pytest.raises(RemoteError) as info:
        await pool.notify("127.0.0.1:1", Ping())
    assert info.value.code == "bad_request"
    await pool.close()


async def test_deadline_raises_and_cancels_the_remote_handler(server: RpcServer) -> None:
    conn = await connect(server)
    with pytest.raises(DeadlineExceeded):
        await conn.call(Sleep(seconds=30.0), Empty, timeout=0.2)
    # The CANCEL frame reaches the server and cancels the handler.
    async with asyncio.timeout(5):
        await handler_cancelled.setdefault(30.0, asyncio.Event()).wait()
    # The connection is still usable afterwards.
    reply, _ = await conn.call(Ping(), Pong)
    assert reply.node_id == "server-1"
    conn.close()


async def test_handler_errors_reach_the_caller_typed(server: RpcServer) -> None:
    conn = await connect(server)
    # The server's deadline firing before the caller's is the caller's timeout too.
    with pytest.raises(DeadlineExceeded):
        await conn.call(Fail(code="deadline_exceeded"), Empty)
    with pytest.raises(RemoteError) as info:
        await conn.call(Fail(code="no_such_bucket"), Empty)
    assert info.value.code == "no_such_bucket"
    with pytest.raises(RemoteError) as info:
        await conn.call(Fail(code="boom"), Empty)
    assert info.value.code == "internal"
    with pytest.raises(RemoteError) as info:
        await conn.call(Empty(), Empty)  # a type the server does not know
    assert info.value.code == "bad_request"
    conn.close()


async def test_wrong_secret_is_refused_before_any_handler(server: RpcServer) -> None:
    with pytest.raises(AuthenticationError):
        await connect(server, key=derive_auth_key("not-the-cluster-secret"))


async def test_request_before_auth_closes_the_connection(server: RpcServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await reader.readexactly(32)  # the HELLO header; the body follows
    body = msgspec.msgpack.encode(Ping(note="sneaky"))
    writer.writelines(encode_frame(FrameKind.REQUEST, 1, body))
    async with asyncio.timeout(5):
        rest = await reader.read()  # returns b"..." then EOF when the server closes
    assert b"Pong" not in rest
    writer.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl\r\n\r\n",
        b"\x00" * 64,
        b"CW\x01\x04" + b"\xff" * 60,  # plausible start, impossible lengths and checksum
    ],
)
async def test_malformed_bytes_close_only_that_connection(
    server: RpcServer, garbage: bytes
) -> None:
    good = await connect(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(garbage)
    async with asyncio.timeout(5):
        await reader.read()  # EOF: the server hung up on us
    writer.close()
    reply, _ = await good.call(Ping(), Pong)  # other connections are unaffected
    assert reply.node_id == "server-1"
    good.close()


async def test_truncated_frame_after_auth_closes_connection(server: RpcServer) -> None:
    conn = await connect(server)
    assert conn._protocol is not None
    transport = conn._protocol.transport
    assert transport is not None
    frame = b"".join(bytes(b) for b in encode_frame(FrameKind.REQUEST, 99, b"x" * 100))
    transport.write(frame[:50])
    transport.write_eof()
    async with asyncio.timeout(5):
        await conn.lost.wait()
    reply_conn = await connect(server)
    assert (await reply_conn.call(Ping(), Pong))[0].node_id == "server-1"
    reply_conn.close()


async def test_peer_killed_mid_call_fails_the_caller(tmp_path: Path) -> None:
    script = Path(__file__).with_name("stall_server.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), SECRET, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            port = int(await proc.stdout.readline())
        conn = await RpcConnection.open("127.0.0.1", port, node_id="c", auth_key=KEY)
        stall_type = msgspec.defstruct("Stall", [], frozen=True, tag=True)
        calls = [
            asyncio.ensure_future(conn.call(stall_type(), Empty, timeout=60)) for _ in range(10)
        ]
        reply, _ = await conn.call(Ping(), Pong)  # the stalls are in flight on the server now
        assert reply.node_id == "stall-server"
        os.kill(proc.pid, signal.SIGKILL)
        async with asyncio.timeout(10):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, PeerUnavailable) for o in outcomes)
        with pytest.raises(PeerUnavailable):
            await conn.call(Ping(), Pong)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_pool_reconnects_and_backs_off(server: RpcServer) -> None:
    pool = RpcPool("client-1", KEY, backoff_seconds_initial=0.05)
    address = f"127.0.0.1:{server.port}"
    assert (await pool.call(address, Ping(), Pong))[0].node_id == "server-1"
    # Kill the connection from the server side; the next call reconnects.
    for session in list(server.sessions):
        session.protocol.close()
    conn = await pool.connection(address)
    async with asyncio.timeout(5):
        await conn.lost.wait()
    assert (await pool.call(address, Ping(), Pong))[0].node_id == "server-1"
    # A dead address fails fast while in backoff.
    dead = "127.0.0.1:1"
    with pytest.raises(PeerUnavailable):
        await pool.call(dead, Ping(), Pong)
    with pytest.raises(PeerUnavailable, match="next attempt"):
        await pool.call(dead, Ping(), Pong)
    await pool.close()


async def test_tls_round_trip(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path, ["server-1", "client-1"])
    srv = RpcServer(
        make_router(),
        node_id="server-1",
        auth_key=KEY,
        ssl_context=server_context(certs["server-1"]),
    )
    port = await srv.start("127.0.0.1", 0)
    try:
        conn = await RpcConnection.open(
            "127.0.0.1",
            port,
            node_id="client-1",
            auth_key=KEY,
            ssl_context=client_context(certs["client-1"]),
        )
        reply, payload = await conn.call(Ping(note="tls"), Pong, b"x" * 100_000)
        assert reply.note == "tls"
        assert len(payload) == 100_000
        conn.close()
        # A client without a certificate from our CA is refused by TLS itself.
        with pytest.raises((PeerUnavailable, AuthenticationError)):
            await RpcConnection.open("127.0.0.1", port, node_id="x", auth_key=KEY)
    finally:
        await srv.stop()
