"""Message types of the RPC layer itself: handshake, errors, ping.

Application messages (Raft, chunks, metadata) are defined by the layers that own them,
as msgspec Structs with `tag=True`, and registered on a `Router`. The tag (the class
name) is how the server tells request types apart in a msgpack body.
"""

import msgspec

DEADLINE_EXCEEDED = "deadline_exceeded"
"""The code of the ERROR a server sends when a handler passes the caller's deadline; the
caller raises `DeadlineExceeded` for it, as for its own timeout."""


class Hello(msgspec.Struct, frozen=True, tag=True):
    node_id: str
    nonce: bytes
    protocol: str


class Auth(msgspec.Struct, frozen=True, tag=True):
    node_id: str
    nonce: bytes
    proof: bytes


class AuthOk(msgspec.Struct, frozen=True, tag=True):
    proof: bytes


class ErrorReply(msgspec.Struct, frozen=True, tag=True):
    """Body of an ERROR frame. `code` is stable and machine-readable."""

    code: str
    message: str


class Ping(msgspec.Struct, frozen=True, tag=True):
    """Echo: the reply carries the same payload back. Used by health checks and benchmarks."""

    note: str = ""


class Pong(msgspec.Struct, frozen=True, tag=True):
    node_id: str
    note: str = ""
