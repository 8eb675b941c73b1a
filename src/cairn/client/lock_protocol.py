"""The lock service's RPC messages as the SDK sends them, written out by hand.

The client layer may not import the node layer (`cairn.node.lock_messages` is the server
side), so the structs are declared again here: a msgspec tagged struct is sent as its
class name plus its fields, so identical names and fields are the same wire format.
`tests/unit/node/test_lock_protocol.py` pins that both sides agree, field by field.
"""

from typing import Literal

import msgspec

Mode = Literal["exclusive", "shared"]
LockConsistency = Literal["linearizable", "lease", "stale"]
AcquireStatus = Literal["granted", "queued", "refused", "timeout"]
WAIT_MS_MAX = 60_000
LOCK_NAME_BYTES_MAX = 512


class Grant(msgspec.Struct, frozen=True):
    session_id: int
    name: str
    request_id: int
    mode: Mode
    token: int


class Wait(msgspec.Struct, frozen=True):
    session_id: int
    name: str
    request_id: int
    mode: Mode


class LockInfo(msgspec.Struct, frozen=True):
    name: str
    holders: tuple[Grant, ...]
    waiters: tuple[Wait, ...]


class SessionInfo(msgspec.Struct, frozen=True):
    session_id: int
    ttl_ms: int
    label: str
    held: int
    waiting: int


class LockOpen(msgspec.Struct, frozen=True, tag=True):
    ttl_ms: int
    label: str = ""


class LockOpenReply(msgspec.Struct, frozen=True, tag=True):
    session_id: int
    ttl_ms: int


class LockKeepAlive(msgspec.Struct, frozen=True, tag=True):
    session_id: int


class LockKeepAliveReply(msgspec.Struct, frozen=True, tag=True):
    ttl_ms: int


class LockClose(msgspec.Struct, frozen=True, tag=True):
    session_id: int


class LockCloseReply(msgspec.Struct, frozen=True, tag=True):
    released: int
    cancelled: int


class LockAcquire(msgspec.Struct, frozen=True, tag=True):
    session_id: int
    name: str
    mode: Mode
    request_id: int
    wait: bool = True
    wait_ms: int = WAIT_MS_MAX
    cancel_on_timeout: bool = True


class LockAcquireReply(msgspec.Struct, frozen=True, tag=True):
    status: AcquireStatus
    token: int = 0


class LockRelease(msgspec.Struct, frozen=True, tag=True):
    session_id: int
    name: str
    request_id: int


class LockReleaseReply(msgspec.Struct, frozen=True, tag=True):
    released: bool
    token: int = 0


class LockList(msgspec.Struct, frozen=True, tag=True):
    prefix: str = ""
    limit: int = 1_000
    consistency: LockConsistency = "lease"
    sessions: bool = False


class LockListReply(msgspec.Struct, frozen=True, tag=True):
    locks: list[LockInfo]
    sessions: list[SessionInfo]


class LockFence(msgspec.Struct, frozen=True, tag=True):
    name: str
    token: int


class LockFenceReply(msgspec.Struct, frozen=True, tag=True):
    current: bool


REQUESTS: tuple[type[msgspec.Struct], ...] = (
    LockOpen,
    LockKeepAlive,
    LockClose,
    LockAcquire,
    LockRelease,
    LockList,
    LockFence,
)
REPLIES: tuple[type[msgspec.Struct], ...] = (
    LockOpenReply,
    LockKeepAliveReply,
    LockCloseReply,
    LockAcquireReply,
    LockReleaseReply,
    LockListReply,
    LockFenceReply,
)
