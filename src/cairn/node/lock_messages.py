"""RPC messages of the lock service (`lock_service`), served by the root group's leader.

Why a message per operation rather than `MetaPropose` of a raw lock command: the leader
has work of its own around each command. It picks session ids, tracks leases in memory
(keep-alives never reach the log), holds an `LockAcquire` call open until the grant
commits (push, not polling), and answers fencing checks with a ReadIndex read. A raw
proposal would bypass all of it.

The SDK (`cairn.client.locks`) may not import this layer, so it declares the same
structs again by hand (the tags and field names are the wire format); a unit test pins
that the two sides agree.

Errors come back as `RemoteError(code, message)` with the stable codes of
`meta.locks.LockError` (`invalid_name`, `unknown_session`, `not_held`, ...), or
`not_leader` (message: the leader's address, empty during an election) and `dropped`
(the leader is not ready yet, or lost a proposal to a leader change: retry).
"""

from typing import Literal

import msgspec

from cairn.meta.locks import LockInfo, SessionInfo

Mode = Literal["exclusive", "shared"]
LockConsistency = Literal["linearizable", "lease", "stale"]
AcquireStatus = Literal["granted", "queued", "refused", "timeout"]

WAIT_MS_MAX = 60_000
"""Longest one `LockAcquire` call waits server-side; longer waits call again."""
LIST_LIMIT_MAX = 10_000


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
    """The lease is good for this long after the keep-alive reached the leader."""


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
    """False: a try-lock, refused at once when the lock is not free."""
    wait_ms: int = WAIT_MS_MAX
    """How long this call waits for the grant (capped at `WAIT_MS_MAX`)."""
    cancel_on_timeout: bool = True
    """When `wait_ms` passes: True cancels the wait (answer "timeout"); False leaves it
    queued (answer "queued") for the caller to call again with the same `request_id`."""


class LockAcquireReply(msgspec.Struct, frozen=True, tag=True):
    status: AcquireStatus
    token: int = 0
    """The fencing token of the grant (status "granted")."""


class LockRelease(msgspec.Struct, frozen=True, tag=True):
    session_id: int
    name: str
    request_id: int


class LockReleaseReply(msgspec.Struct, frozen=True, tag=True):
    released: bool
    """True: a grant ended; False: a wait was cancelled."""
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
