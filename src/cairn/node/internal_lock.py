"""Locks the cluster takes for its own work: one GC round at a time, one delete of a bucket.

Why this module and not the SDK: the node layer may not import `cairn.client`, and its
callers already hold a `MetaClient`, which follows the root group's leader and reaches it
through the node's RPC pool (a call to this process's own address skips the socket). The
lock RPCs of `lock_messages` are root-group calls like any metadata call, so the helper
only needs something with `MetaClient.call`'s shape (`RootCaller`), which also keeps it
free of an import cycle with `meta_client`.

Theory of operation. `hold_exclusive(caller, name)` is an async context manager that

1. opens a session of its own (`LockOpen`, TTL `INTERNAL_TTL_S`), so a process that dies
   mid-task releases the lock one TTL later, as any client would;
2. asks for the lock: a try-lock when `wait_s` is 0, else a FIFO wait made of calls of at
   most `WAIT_CALL_MS_MAX` that leave the request queued between calls (`MetaClient`
   caps one attempt at 3 s; a repeated `LockAcquire` with the same request id is an
   idempotent retry in the machine); not granted in time raises `LockBusy`;
3. keeps the session alive every third of the TTL while the body runs; if the leader
   reports the session gone, or no keep-alive was acknowledged for a TTL, `held.lost` is
   set (callers that must not go on check it);
4. closes the session on the way out, whatever happened: closing releases the grant or
   cancels the wait in one command, and a close that cannot be delivered is covered by
   the lease running out.

It costs three root-group commits (open, acquire, close) per use, which is nothing next
to a GC round or a bucket deletion. It is mutual exclusion for coordination, not a fence:
work that must not survive a lost lease has to check `held.lost` or carry `held.token`
to a place that checks it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import msgspec

from cairn.base.errors import CairnError, RemoteError
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.monitor.logs import log_event
from cairn.node.lock_messages import (
    LockAcquire,
    LockAcquireReply,
    LockClose,
    LockCloseReply,
    LockKeepAlive,
    LockKeepAliveReply,
    LockOpen,
    LockOpenReply,
)

__all__ = ["INTERNAL_TTL_S", "InternalLock", "LockBusy", "RootCaller", "hold_exclusive"]

log = logging.getLogger("cairn.locks")
T = TypeVar("T")

INTERNAL_TTL_S = 10.0
"""Session TTL: how long a lock outlives a holder that died without closing."""
WAIT_CALL_MS_MAX = 2_000
"""One waiting `LockAcquire` call; below `MetaClient`'s 3 s per attempt."""
CALL_TIMEOUT_S = 10.0
"""Budget of one non-waiting call (open, try-lock, close), across redirects."""
RETRY_PAUSE_S = 0.05
"""Pause before another keep-alive after one failed."""
_REQUEST_ID = 1
"""Each session asks for one lock, so its only request id."""


class RootCaller(Protocol):
    """What the helper needs of `MetaClient`: a call to the root group's leader."""

    async def call(
        self,
        group: int,
        request: msgspec.Struct,
        reply_type: type[T],
        *,
        leader: bool = True,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> tuple[T, memoryview]: ...


class LockBusy(CairnError):
    """The lock was not granted in time: another holder has it."""

    def __init__(self, name: str, waited_s: float) -> None:
        how = "at once" if waited_s <= 0 else f"within {waited_s:g} s"
        super().__init__(f"lock {name!r} is held by another task and was not granted {how}")
        self.name = name


@dataclass(eq=False)
class InternalLock:
    """A held lock: its fencing token, and `lost` once the lease may have run out."""

    name: str
    token: int
    session_id: int
    lost: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def hold_exclusive(
    caller: RootCaller,
    name: str,
    *,
    label: str,
    wait_s: float = 0.0,
    ttl_s: float = INTERNAL_TTL_S,
) -> AsyncIterator[InternalLock]:
    """Hold `name` exclusively for the body (see the module docstring). Raises `LockBusy`
    when it is not granted within `wait_s` (0: a try-lock)."""
    ttl_ms = int(ttl_s * 1000)
    sent = time.monotonic()
    opened, _ = await caller.call(
        ROOT_GROUP_ID, LockOpen(ttl_ms, label), LockOpenReply, timeout=CALL_TIMEOUT_S
    )
    session_id = opened.session_id
    lost = asyncio.Event()
    keeper = asyncio.get_running_loop().create_task(
        _keep_alive(caller, session_id, name, lost, ttl_s, sent)
    )
    try:
        token = await _acquire(caller, session_id, name, wait_s)
        yield InternalLock(name, token, session_id, lost)
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        try:
            await caller.call(
                ROOT_GROUP_ID, LockClose(session_id), LockCloseReply, timeout=CALL_TIMEOUT_S
            )
        except CairnError as exc:  # the lease runs out instead
            log_event(log, "lock.internal_close_failed", logging.INFO, name=name, error=str(exc))


async def _acquire(caller: RootCaller, session_id: int, name: str, wait_s: float) -> int:
    """The grant's token; `LockBusy` when not granted within `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        wait = wait_s > 0
        request = LockAcquire(
            session_id,
            name,
            "exclusive",
            _REQUEST_ID,
            wait=wait,
            wait_ms=max(0, min(remaining_ms, WAIT_CALL_MS_MAX)) if wait else 0,
            cancel_on_timeout=False,
        )
        budget_s = CALL_TIMEOUT_S + request.wait_ms / 1000
        reply, _ = await caller.call(ROOT_GROUP_ID, request, LockAcquireReply, timeout=budget_s)
        if reply.status == "granted":
            return reply.token
        if reply.status == "refused" or remaining_ms <= 0:
            raise LockBusy(name, wait_s)  # the caller closes the session: the wait ends


async def _keep_alive(
    caller: RootCaller,
    session_id: int,
    name: str,
    lost: asyncio.Event,
    ttl_s: float,
    acked_at: float,
) -> None:
    """Renew every third of the TTL (from the send time of the last acknowledged
    keep-alive); set `lost` when the session is gone or a TTL passed without one."""
    interval_s = ttl_s / 3
    pause_s = interval_s
    while True:
        await asyncio.sleep(max(0.0, acked_at + pause_s - time.monotonic()))  # renew period
        sent = time.monotonic()
        try:
            await caller.call(
                ROOT_GROUP_ID, LockKeepAlive(session_id), LockKeepAliveReply, timeout=interval_s
            )
            acked_at, pause_s = sent, interval_s
        except RemoteError as exc:
            if exc.code == "unknown_session":
                break
            pause_s = time.monotonic() - acked_at + RETRY_PAUSE_S
        except CairnError:  # no leader answered in time; the lease decides below
            pause_s = time.monotonic() - acked_at + RETRY_PAUSE_S
        if time.monotonic() >= acked_at + ttl_s:
            break
    lost.set()
    log_event(log, "lock.internal_lost", logging.WARNING, name=name, session=session_id)
