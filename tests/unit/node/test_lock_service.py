"""The lock service and the SDK in one process: a single-voter root group (it leads at
once), the service on a real RPC server, `LockClient`s talking to it over loopback.

Covers the push path (a queued acquire returns when the release commits), parking (a
waiting acquire stays in the leader's memory and rides with the release), FIFO order,
shared locks, try-lock, timeouts cancelling the wait, expiry of a silent session with the
hand-over to the next waiter, fencing checks, bad input with clear codes, and a new
leader rebuilding its tracker (here: the service restarted on the same replica)."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from cairn.base.errors import RemoteError
from cairn.client import lock_protocol
from cairn.client.locks import (
    AlreadyHeld,
    InvalidLockName,
    LockClient,
    LockTimeout,
    SessionLost,
)
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.meta.root import RootMachine
from cairn.node import lock_messages
from cairn.node.lock_service import LockService
from cairn.raft.driver import GroupSettings
from cairn.raft.host import RaftHost
from cairn.wire import Router, RpcPool, RpcServer, derive_auth_key

SECRET = "lock-service-unit"
TICK_S = 0.01
ELECTION_TICKS = 10
ELECTION_TIMEOUT_MS = int(TICK_S * 1000 * ELECTION_TICKS)


class Node:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.router = Router()
        self.pool = RpcPool("unit-node", derive_auth_key(SECRET))
        self.host = RaftHost(
            1,
            {1: "127.0.0.1:1"},
            directory,
            self.pool,
            GroupSettings(tick_seconds=TICK_S, election_timeout_ticks=ELECTION_TICKS),
        )
        self.host.register(self.router)
        self.host.add_group(ROOT_GROUP_ID, {1}, RootMachine())
        self.service = LockService(self.host, ELECTION_TIMEOUT_MS)
        self.service.register(self.router)
        self.rpc = RpcServer(self.router, node_id="unit-node", auth_key=derive_auth_key(SECRET))
        self.address = ""

    async def start(self) -> None:
        port = await self.rpc.start("127.0.0.1", 0)
        self.address = f"127.0.0.1:{port}"
        self.host.start()
        self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
        await self.rpc.stop()
        await self.host.stop()
        await self.pool.close()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    started = Node(tmp_path / "raft")
    await started.start()
    yield started
    await started.stop()


def client(node: Node, ttl_s: float = 5.0) -> LockClient:
    return LockClient([node.address], SECRET, ttl_s=ttl_s)


def test_client_messages_match_the_server_side() -> None:
    """The SDK declares the wire structs again (it may not import node): same tags,
    fields, defaults and types, so each side decodes what the other sends."""
    for ours, theirs in zip(
        lock_protocol.REQUESTS + lock_protocol.REPLIES,
        lock_messages.REQUESTS + lock_messages.REPLIES,
        strict=True,
    ):
        assert ours.__name__ == theirs.__name__
        assert ours.__struct_config__.tag == theirs.__struct_config__.tag
        assert ours.__struct_fields__ == theirs.__struct_fields__
        assert ours.__struct_defaults__ == theirs.__struct_defaults__
    assert lock_protocol.WAIT_MS_MAX == lock_messages.WAIT_MS_MAX
    reply = lock_messages.LockListReply([], [])
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(reply), type=lock_protocol.LockListReply)


async def test_push_fifo_and_tokens(node: Node) -> None:
    a, b, c = client(node), client(node), client(node)
    try:
        held_a = await a.acquire("job")
        waiting_b = asyncio.create_task(b.acquire("job"))
        await _until(lambda: _waiters(node, "job") == 1)
        waiting_c = asyncio.create_task(c.acquire("job"))
        await _until(lambda: _waiters(node, "job") == 2)
        with pytest.raises(AlreadyHeld):
            await b.try_lock("job")  # b already waits for it: not re-entrant
        assert not waiting_b.done() and not waiting_c.done()
        await held_a.release()
        held_b = await asyncio.wait_for(waiting_b, 5)  # pushed when the release commits
        assert held_b.token > held_a.token and held_b.held
        assert not waiting_c.done()
        await held_b.release()
        held_c = await asyncio.wait_for(waiting_c, 5)
        assert held_c.token > held_b.token
        assert await a.fence_is_current("job", held_c.token)
        assert not await a.fence_is_current("job", held_b.token)
        await held_c.release()
        await held_c.release()  # twice: a no-op
    finally:
        for cl in (a, b, c):
            await cl.close()


def _log_last(node: Node) -> int:
    return node.host.groups[ROOT_GROUP_ID].node.log.last_index()


def _machine_waiters(node: Node, name: str) -> int:
    machine = node.host.groups[ROOT_GROUP_ID].machine
    assert isinstance(machine, RootMachine)
    info = machine.locks.lock_info(name)
    return 0 if info is None else len(info.waiters)


async def test_contended_acquires_wait_in_the_leaders_memory_and_ride_with_the_release(
    node: Node,
) -> None:
    """A waiting acquire is no log entry: the leader proposes it right behind the release
    that frees the lock, so a hand-over is one replication round (meta/lock_queue.py)."""
    a, b, c = client(node), client(node), client(node)
    try:
        held_a = await a.acquire("job")
        await asyncio.gather(b.session(), c.session())
        before = _log_last(node)
        waiting_b = asyncio.create_task(b.acquire("job"))
        await _until(lambda: _waiters(node, "job") == 1)
        waiting_c = asyncio.create_task(c.acquire("job"))
        await _until(lambda: _waiters(node, "job") == 2)
        assert _log_last(node) == before and _machine_waiters(node, "job") == 0
        locks, _ = await a.list_locks()
        assert [w.session_id for w in locks[0].waiters] == [b.session_id, c.session_id]
        await held_a.release()
        held_b = await asyncio.wait_for(waiting_b, 5)
        assert _log_last(node) == before + 2  # the release and b's acquire, nothing else
        assert held_b.token > held_a.token and not waiting_c.done()
        await held_b.release()
        held_c = await asyncio.wait_for(waiting_c, 5)
        assert held_c.token > held_b.token and _log_last(node) == before + 4
        await held_c.release()
    finally:
        for cl in (a, b, c):
            await cl.close()


async def test_a_parked_request_reaches_the_log_before_its_sessions_next_one(
    node: Node,
) -> None:
    """Request ids must reach the log in order (`stale_request` otherwise): a session's
    new acquire first sends its parked ones to the log, where they queue as before."""
    a, b = client(node), client(node)
    try:
        held_a = await a.acquire("x")
        waiting_b = asyncio.create_task(b.acquire("x"))
        await _until(lambda: _waiters(node, "x") == 1)
        assert _machine_waiters(node, "x") == 0
        held_y = await b.acquire("y")  # a higher request id of the same session
        assert held_y.held and _machine_waiters(node, "x") == 1
        await held_a.release()
        held_x = await asyncio.wait_for(waiting_b, 5)
        assert held_x.token > held_a.token
        await held_x.release()
        await held_y.release()
    finally:
        await a.close()
        await b.close()


async def test_a_parked_request_cancelled_by_its_timeout_stays_used(node: Node) -> None:
    """The log never saw it, so the leader refuses a late retry of its id itself, as the
    machine refuses any used request id (`stale_request`)."""
    a, b = client(node), client(node)
    try:
        held = await a.acquire("t")
        session_id = await b.session()
        late = lock_protocol.LockAcquire(session_id, "t", "exclusive", 7, wait_ms=50)
        reply = await b._leader.call(late, lock_protocol.LockAcquireReply)
        assert reply.status == "timeout" and _waiters(node, "t") == 0
        with pytest.raises(RemoteError) as info:
            await b._leader.call(late, lock_protocol.LockAcquireReply)
        assert info.value.code == "stale_request"
        await held.release()
        with pytest.raises(RemoteError) as info:  # even with the lock free
            await b._leader.call(late, lock_protocol.LockAcquireReply)
        assert info.value.code == "stale_request"
    finally:
        await a.close()
        await b.close()


async def test_a_holders_session_ending_hands_the_lock_to_the_parked_head(node: Node) -> None:
    a, b, c = client(node), client(node), client(node)
    try:
        await a.acquire("job")
        waiting_b = asyncio.create_task(b.acquire("job"))
        await _until(lambda: _waiters(node, "job") == 1)
        waiting_c = asyncio.create_task(c.acquire("job", shared=True))
        await _until(lambda: _waiters(node, "job") == 2)
        await a.close()  # releases with the session, in the same batch as b's acquire
        held_b = await asyncio.wait_for(waiting_b, 5)
        assert held_b.held and not waiting_c.done()
        await held_b.release()
        held_c = await asyncio.wait_for(waiting_c, 5)
        assert held_c.held
        await held_c.release()
    finally:
        for cl in (b, c):
            await cl.close()


async def test_shared_try_lock_and_timeout(node: Node) -> None:
    a, b, c = client(node), client(node), client(node)
    try:
        reader_a = await a.acquire("cfg", shared=True)
        reader_b = await b.acquire("cfg", shared=True)
        assert await c.try_lock("cfg") is None  # a writer cannot join readers
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            await c.acquire("cfg", timeout=0.3)
        assert time.monotonic() - started >= 0.3
        assert _waiters(node, "cfg") == 0  # the leader cancelled the timed-out wait
        async with b.lock("other"):
            pass
        await reader_a.release()
        await reader_b.release()
        writer = await c.try_lock("cfg")
        assert writer is not None
        await writer.release()
        locks, _ = await a.list_locks()
        assert locks == []
    finally:
        for cl in (a, b, c):
            await cl.close()


async def test_silent_session_expires_and_hands_over(node: Node) -> None:
    holder, waiter = client(node, ttl_s=0.5), client(node, ttl_s=5)
    try:
        held = await holder.acquire("lease")
        assert holder._keeper is not None
        holder._keeper.cancel()  # the holder goes silent (as if paused)
        silent_since = holder.last_keepalive_sent
        granted = await asyncio.wait_for(waiter.acquire("lease"), 5)
        elapsed = time.monotonic() - silent_since
        assert elapsed >= 0.5, elapsed  # never before a full TTL since its last keep-alive
        assert granted.token > held.token
        assert not await waiter.fence_is_current("lease", held.token)
        assert not held.held
        with pytest.raises(RemoteError) as info:
            await holder._leader.call(
                lock_protocol.LockKeepAlive(held.session_id), lock_protocol.LockKeepAliveReply
            )
        assert info.value.code == "unknown_session"
        with pytest.raises(LockTimeout):  # a new session; the waiter holds the lock now
            await holder.acquire("lease", timeout=0)
        assert holder.session_id != held.session_id
    finally:
        holder._keeper = None
        await holder.close()
        await waiter.close()


async def test_a_parked_waiter_whose_session_expires_leaves_the_queue(node: Node) -> None:
    holder, silent, last = client(node), client(node, ttl_s=0.5), client(node)
    try:
        held = await holder.acquire("q")
        waiting_silent = asyncio.create_task(silent.acquire("q"))
        await _until(lambda: _waiters(node, "q") == 1)
        waiting_last = asyncio.create_task(last.acquire("q"))
        await _until(lambda: _waiters(node, "q") == 2)
        assert silent._keeper is not None
        silent._keeper.cancel()
        with pytest.raises(SessionLost):
            await asyncio.wait_for(waiting_silent, 5)
        assert _waiters(node, "q") == 1
        await held.release()
        granted = await asyncio.wait_for(waiting_last, 5)
        assert granted.token > held.token
        await granted.release()
    finally:
        silent._keeper = None
        for cl in (holder, silent, last):
            await cl.close()


async def test_bad_input_gives_clear_errors(node: Node) -> None:
    a = client(node)
    try:
        with pytest.raises(InvalidLockName):
            await a.acquire("")
        with pytest.raises(InvalidLockName):
            await a.acquire("x" * 513)
        held = await a.acquire("n")
        with pytest.raises(AlreadyHeld):
            await a.acquire("n")  # not re-entrant
        await held.release()
        session_id = await a.session()
        with pytest.raises(RemoteError) as info:  # releasing what one does not hold
            await a._leader.call(
                lock_protocol.LockRelease(session_id, "n", 99), lock_protocol.LockReleaseReply
            )
        assert info.value.code == "not_held"
        with pytest.raises(RemoteError) as info:
            await a._leader.call(
                lock_protocol.LockAcquire(12345, "n", "exclusive", 1),
                lock_protocol.LockAcquireReply,
            )
        assert info.value.code == "unknown_session"
        with pytest.raises(RemoteError) as info:
            await a._leader.call(lock_protocol.LockOpen(ttl_ms=1), lock_protocol.LockOpenReply)
        assert info.value.code == "invalid_ttl"
        with pytest.raises(RemoteError) as info:
            await a._leader.call(lock_protocol.LockFence("", 1), lock_protocol.LockFenceReply)
        assert info.value.code == "invalid_name"
        # The client treats `not_held` as "already released" (a retry whose first attempt
        # committed); a release naming the wrong request releases nothing.
        stray = await a.acquire("m")
        stray.request_id = 999_999
        await a.release(stray)
        infos, _ = await a.list_locks("m")
        assert [len(i.holders) for i in infos] == [1]
    finally:
        await a.close()


async def test_restarted_service_rebuilds_leases_from_the_machine(node: Node) -> None:
    """The take-over path: the tracker comes from `root.locks.sessions()`, every lease
    extended by an election timeout, and a live session keeps its lock."""
    a = client(node, ttl_s=1.0)
    try:
        held = await a.acquire("keep")
        await node.service.stop()  # (its RPC handlers stay registered; unused below)
        fresh = LockService(node.host, ELECTION_TIMEOUT_MS)
        fresh.start()
        try:
            await _until(lambda: fresh._tracker is not None)
            tracker = fresh._tracker
            assert tracker is not None and held.session_id in tracker
            deadline = tracker.deadline_ms(held.session_id)
            assert deadline is not None
            assert deadline >= tracker.start_ms + ELECTION_TIMEOUT_MS + 1000
        finally:
            await fresh.stop()
    finally:
        await a.close()


def _waiters(node: Node, name: str) -> int:
    """Waiters in the log's queue and parked in the leader's memory."""
    return len(node.service.waiters(name))


async def _until(condition: object, deadline_s: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)  # polling a condition with a deadline
