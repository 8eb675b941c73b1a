"""Calls a process makes to itself, without a socket.

A node that is also a gateway sends one of every chunk's replicas to itself, and its
metadata calls often land on a leader in the same process. Over loopback each such call
costs two copies through the kernel and a round of framing; here the pool hands the
request Struct and the payload straight to the handler the process's own `Router` has
for it. The contract callers see is unchanged: the same reply type, `RemoteError` with
the code the server would have sent, `DeadlineExceeded` when the deadline passes. What
is skipped is what only matters between processes: authentication, the msgpack round
trip and the frame checksums.
"""

import asyncio
from typing import TypeVar

import msgspec

from cairn.base.checksum import Buffer
from cairn.base.errors import CairnError, DeadlineExceeded, RemoteError
from cairn.wire.server import CallContext, Router

_LOCAL_REQUEST_ID = 0
T = TypeVar("T")


async def call_local(
    router: Router,
    node_id: str,
    request: msgspec.Struct,
    response_type: type[T],
    payload: Buffer,
    timeout: float | None,
) -> tuple[T, memoryview]:
    try:
        handler = router.handler_for(request)
    except KeyError:
        raise RemoteError("bad_request", f"no handler for {type(request).__name__}") from None
    context = CallContext(node_id, _LOCAL_REQUEST_ID)
    try:
        async with asyncio.timeout(timeout):
            reply = await handler(request, memoryview(payload), context)
    except TimeoutError:
        raise DeadlineExceeded(f"{type(request).__name__} passed its deadline") from None
    except RemoteError:
        raise
    except CairnError as exc:  # as the server would send it
        raise RemoteError(type(exc).__name__, str(exc)) from None
    message, out = reply if isinstance(reply, tuple) else (reply, b"")
    if isinstance(message, response_type):
        return message, memoryview(out)
    converted = msgspec.msgpack.decode(msgspec.msgpack.encode(message), type=response_type)
    return converted, memoryview(out)


def notify_local(router: Router, node_id: str, message: msgspec.Struct, payload: Buffer) -> None:
    """A one-way message to this process: its handler runs now, as the server would."""
    try:
        handler = router.notify_handler_for(message)
    except KeyError:
        raise RemoteError("bad_request", f"no handler for {type(message).__name__}") from None
    handler(message, memoryview(payload), CallContext(node_id, _LOCAL_REQUEST_ID))
