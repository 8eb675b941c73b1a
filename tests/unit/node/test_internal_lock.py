"""`internal_lock.hold_exclusive` against a scripted root caller (no cluster): a refused
try-lock raises `LockBusy`, a wait spans several calls with one request id, the session is
closed on every way out, and a session the leader forgets marks the lock lost."""

import asyncio
from typing import Any

import msgspec
import pytest

from cairn.base.errors import RemoteError
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.node.internal_lock import LockBusy, hold_exclusive
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

TTL_S = 0.3


class Script:
    """Answers lock RPCs from a list of acquire statuses; records every request."""

    def __init__(self, acquires: list[str], keepalive_error: str | None = None) -> None:
        self.acquires = list(acquires)
        self.keepalive_error = keepalive_error
        self.requests: list[msgspec.Struct] = []
        self.keepalive = asyncio.Event()

    async def call(
        self,
        group: int,
        request: msgspec.Struct,
        reply_type: type[Any],
        *,
        leader: bool = True,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> tuple[Any, memoryview]:
        assert group == ROOT_GROUP_ID
        self.requests.append(request)
        reply: msgspec.Struct
        if isinstance(request, LockOpen):
            reply = LockOpenReply(7, request.ttl_ms)
        elif isinstance(request, LockAcquire):
            status = self.acquires.pop(0)
            reply = LockAcquireReply(status, 42 if status == "granted" else 0)  # type: ignore[arg-type]
        elif isinstance(request, LockKeepAlive):
            self.keepalive.set()
            if self.keepalive_error is not None:
                raise RemoteError(self.keepalive_error, "gone")
            reply = LockKeepAliveReply(int(TTL_S * 1000))
        else:
            assert isinstance(request, LockClose)
            reply = LockCloseReply(1, 0)
        assert isinstance(reply, reply_type)
        return reply, memoryview(b"")

    def of(self, kind: type[msgspec.Struct]) -> list[Any]:
        return [r for r in self.requests if isinstance(r, kind)]


async def test_refused_try_lock_raises_busy_and_closes_the_session() -> None:
    script = Script(["refused"])
    with pytest.raises(LockBusy, match="at once"):
        async with hold_exclusive(script, "cairn/gc", label="t", ttl_s=TTL_S):
            raise AssertionError("not granted")
    (acquire,) = script.of(LockAcquire)
    assert acquire.wait is False and acquire.wait_ms == 0
    assert script.of(LockClose) == [LockClose(7)]


async def test_wait_spans_calls_with_one_request_id() -> None:
    script = Script(["queued", "queued", "granted"])
    async with hold_exclusive(script, "cairn/gc", label="t", wait_s=30, ttl_s=TTL_S) as held:
        assert held.token == 42 and held.session_id == 7 and not held.lost.is_set()
    acquires = script.of(LockAcquire)
    assert len(acquires) == 3
    assert {(a.request_id, a.wait, a.cancel_on_timeout) for a in acquires} == {(1, True, False)}
    assert all(0 < a.wait_ms <= 2_000 for a in acquires)
    assert script.of(LockClose) == [LockClose(7)]


async def test_session_closed_when_the_body_fails() -> None:
    script = Script(["granted"])
    with pytest.raises(ValueError):
        async with hold_exclusive(script, "n", label="t", ttl_s=TTL_S):
            raise ValueError("work failed")
    assert script.of(LockClose) == [LockClose(7)]


async def test_keeps_alive_and_marks_a_forgotten_session_lost() -> None:
    script = Script(["granted"])
    async with hold_exclusive(script, "n", label="t", ttl_s=TTL_S) as held:
        await asyncio.wait_for(script.keepalive.wait(), 5)
        assert not held.lost.is_set()
        script.keepalive_error = "unknown_session"
        await asyncio.wait_for(held.lost.wait(), 5)
    assert script.of(LockKeepAlive)[0] == LockKeepAlive(7)
