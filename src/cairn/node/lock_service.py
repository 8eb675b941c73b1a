"""The lock service: sessions, leases and locks on the root Raft group, served by its leader.

Theory of operation
-------------------
The replicated state (sessions, holders, FIFO queues, fencing tokens) is
`meta.locks.LockStateMachine`, part of the root group's `RootMachine`; every command is a
root-group proposal (`encode_lock_request`). This module is the IO around it, and only the
root leader does any of it; a follower answers `not_leader` with the leader's address.

Taking over. When this node becomes leader it first passes a linearizable read barrier:
that commits its first entry of the new term and applies every entry of earlier terms, so
the lock machine is complete. Only then does it build its `LeaseTracker` from
`root.locks.sessions()`, extending every lease by one election timeout before any can
expire (`LeaseTracker.for_new_leader`). Until then calls get `dropped` (retry). When it
stops leading (role or term change) it drops the tracker and fails every waiting call
with `not_leader`; clients call the new leader again with the same request id, which the
machine treats as an idempotent retry.

Leases. Keep-alives (`LockKeepAlive`) touch only the in-memory tracker, never the log, and
are accepted only while the Raft core's leader lease is valid (`RaftNode.lease_valid`):
a deposed leader that has not noticed yet cannot extend a lease the new leader does not
know about. A loop every `LEASE_CHECK_SECONDS` proposes `ExpireSession` for each session
the tracker lists as expired (one proposal in flight per session).

Push, not polling. A `LockAcquire` that queues stays open on the server: its future is
registered under (session, name, request id) and resolved when a committed result lists
the grant in `granted` (a release, a close or an expiry hands the lock over). Every lock
proposal goes through `_commit`, which feeds each result to `_observe` before anyone sees
it, so no hand-over is missed; a registration also looks at the machine once, for a grant
applied between the queueing result and the registration. When the caller's `wait_ms`
passes first, the service proposes `Release` of the same request id: it cancels the wait,
or releases the grant if the grant won the race, so nothing stays queued for a caller who
left.

Fencing. `LockFence(name, token)` answers, after a ReadIndex barrier, whether `token` is
still held on `name`; the gateway's write path asks it before committing a fenced write.
"""

import asyncio
import itertools
import logging
from collections.abc import Coroutine
from typing import Any

from cairn.base.errors import RemoteError
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.meta.leases import LeaseTracker
from cairn.meta.locks import (
    LOCK_NAME_BYTES_MAX,
    Acquire,
    CloseSession,
    Command,
    ExpireSession,
    OpenSession,
    Release,
    Request,
    Result,
    propose_session_id,
)
from cairn.meta.root import RootMachine, encode_lock_request
from cairn.monitor.logs import log_event
from cairn.node.lock_messages import (
    LIST_LIMIT_MAX,
    WAIT_MS_MAX,
    LockAcquire,
    LockAcquireReply,
    LockClose,
    LockCloseReply,
    LockFence,
    LockFenceReply,
    LockKeepAlive,
    LockKeepAliveReply,
    LockList,
    LockListReply,
    LockOpen,
    LockOpenReply,
    LockRelease,
    LockReleaseReply,
)
from cairn.raft.driver import RaftGroup
from cairn.raft.host import RaftHost
from cairn.raft.types import NotLeader, ProposalDropped, ProposalTooLarge, Role
from cairn.runtime.clock import Clock, SystemClock
from cairn.wire import CallContext, Reply, Router

log = logging.getLogger("cairn.locks")

LEASE_CHECK_SECONDS = 0.02
"""How often the leader looks for expired leases (bounds how late an expiry is proposed)."""
WAITERS_MAX = 100_000
"""Acquire calls waiting at once on this leader (the machine bounds queues too)."""
_Key = tuple[int, str, int]


class LockService:
    """The lock RPCs of one node (see the module docstring)."""

    def __init__(
        self, host: RaftHost, election_timeout_ms: int, clock: Clock | None = None
    ) -> None:
        self._host = host
        self.election_timeout_ms = election_timeout_ms
        self._clock = clock or SystemClock()
        self._tracker: LeaseTracker | None = None
        self._term = 0
        self._opened = 0
        self._op_ids = itertools.count(1)
        self._preparing: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._expiring: set[int] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._waiters: dict[_Key, list[asyncio.Future[int]]] = {}
        self.expired_total = 0

    def register(self, router: Router) -> None:
        router.register(LockOpen, self._open)
        router.register(LockKeepAlive, self._keep_alive)
        router.register(LockClose, self._close)
        router.register(LockAcquire, self._acquire)
        router.register(LockRelease, self._release)
        router.register(LockList, self._list)
        router.register(LockFence, self._fence)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._preparing, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_waiters(RemoteError("not_leader", ""))

    # -- plumbing ----------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock.monotonic() * 1000)

    def _group(self) -> RaftGroup:
        group = self._host.groups.get(ROOT_GROUP_ID)
        if group is None:
            raise RemoteError("no_such_group", "the root group is not hosted here")
        return group

    def _root(self) -> RootMachine:
        machine = self._group().machine
        assert isinstance(machine, RootMachine)
        return machine

    def _not_leader(self) -> RemoteError:
        return RemoteError("not_leader", self._host.leader_address(ROOT_GROUP_ID))

    def _ready(self) -> tuple[RaftGroup, LeaseTracker]:
        """The root group and the tracker, if this node leads and has taken over."""
        group = self._group()
        if group.node.role != Role.LEADER:
            raise self._not_leader()
        tracker = self._tracker
        if tracker is None or group.node.term != self._term:
            raise RemoteError("dropped", "the lock leader is taking over; retry")
        return group, tracker

    async def _commit(self, command: Command) -> Result:
        """Propose `command`; feed its result to `_observe`; raise its error, if any."""
        group = self._group()
        data = encode_lock_request(Request(next(self._op_ids), command))
        try:
            applied = await group.propose_command(data)
        except NotLeader:
            raise self._not_leader() from None
        except (ProposalDropped, ProposalTooLarge) as exc:
            raise RemoteError("dropped", str(exc)) from None
        if not isinstance(applied, tuple):
            raise RemoteError("malformed", f"lock command not applied: {applied!r}")
        result = applied[1]
        assert isinstance(result, Result)
        self._observe(result)
        if result.status == "error":
            raise RemoteError(result.error, result.message)
        return result

    def _observe(self, result: Result) -> None:
        """Push each hand-over to its waiting call; fail the calls whose wait was removed."""
        for grant in result.granted:
            self._settle((grant.session_id, grant.name, grant.request_id), grant.token)
        if result.cancelled:
            locks = self._root().locks
            for wait in result.cancelled:
                gone = not locks.has_session(wait.session_id)
                error = RemoteError(
                    "unknown_session" if gone else "cancelled",
                    f"the wait for {wait.name!r} ended "
                    + ("with its session" if gone else "by a release"),
                )
                self._settle((wait.session_id, wait.name, wait.request_id), error)

    def _settle(self, key: _Key, outcome: int | RemoteError) -> None:
        for future in self._waiters.pop(key, ()):
            if future.done():
                continue
            if isinstance(outcome, RemoteError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _fail_waiters(self, error: RemoteError) -> None:
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    def _granted_token(self, key: _Key) -> int | None:
        """The token of the grant `key` holds in the applied state, if it holds one."""
        session_id, name, request_id = key
        info = self._root().locks.lock_info(name)
        if info is None:
            return None
        for grant in info.holders:
            if grant.session_id == session_id and grant.request_id == request_id:
                return grant.token
        return None

    def _is_waiting(self, key: _Key) -> bool:
        session_id, name, request_id = key
        info = self._root().locks.lock_info(name)
        return info is not None and any(
            w.session_id == session_id and w.request_id == request_id for w in info.waiters
        )

    # -- leadership and leases ---------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(LEASE_CHECK_SECONDS)  # the lease clock's resolution
            self._step()

    def _step(self) -> None:
        group = self._host.groups.get(ROOT_GROUP_ID)
        leading = group is not None and group.node.role == Role.LEADER
        if self._term and (group is None or not leading or group.node.term != self._term):
            self._step_down()
        if group is None or not leading:
            return
        if self._tracker is None:
            if self._preparing is None:
                self._preparing = asyncio.get_running_loop().create_task(self._take_over(group))
            return
        for session_id in self._tracker.expired(self._now_ms()):
            if session_id not in self._expiring:
                self._expiring.add(session_id)
                self._spawn(self._expire(session_id))
        self._reconcile()

    async def _take_over(self, group: RaftGroup) -> None:
        term = group.node.term
        try:
            await group.read_barrier("linearizable")
        except (NotLeader, ProposalDropped):
            return
        finally:
            self._preparing = None
        if group.node.role != Role.LEADER or group.node.term != term:
            return
        sessions = [(s.session_id, s.ttl_ms) for s in self._root().locks.sessions()]
        self._tracker = LeaseTracker.for_new_leader(
            sessions, self._now_ms(), self.election_timeout_ms
        )
        self._term = term
        self._opened = 0
        self._expiring.clear()
        self._root().locks.on_result = self._observe  # grants pushed as they apply
        log_event(log, "lock.leader", term=term, sessions=len(sessions))

    def _step_down(self) -> None:
        log_event(log, "lock.step_down", term=self._term)
        group = self._host.groups.get(ROOT_GROUP_ID)
        if group is not None and isinstance(group.machine, RootMachine):
            group.machine.locks.on_result = None
        self._tracker = None
        self._term = 0
        self._expiring.clear()
        if self._preparing is not None:
            self._preparing.cancel()
            self._preparing = None
        self._fail_waiters(self._not_leader())

    def _reconcile(self) -> None:
        """Settle waiting calls from the applied state: a safety net for hand-overs made
        by entries this service did not propose (it proposes all of them in normal use)."""
        for key in list(self._waiters):
            token = self._granted_token(key)
            if token is not None:
                self._settle(key, token)
            elif not self._is_waiting(key):
                self._settle(key, RemoteError("cancelled", f"the wait for {key[1]!r} ended"))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _expire(self, session_id: int) -> None:
        try:
            result = await self._commit(ExpireSession(session_id))
            self.expired_total += 1
            log_event(
                log,
                "lock.session_expired",
                session=session_id,
                released=len(result.released),
                granted=len(result.granted),
            )
        except RemoteError as exc:
            log_event(log, "lock.expire_failed", logging.DEBUG, session=session_id, error=str(exc))
        finally:
            self._expiring.discard(session_id)
            tracker = self._tracker
            if tracker is not None and not self._root().locks.has_session(session_id):
                tracker.forget(session_id)

    # -- handlers ----------------------------------------------------------------------
    async def _open(self, request: LockOpen, _p: memoryview, _c: CallContext) -> Reply:
        group, _ = self._ready()
        self._opened += 1
        if self._opened >= 2**32:
            raise RemoteError("dropped", "session ids of this term are used up; retry")
        session_id = propose_session_id(self._term, self._opened)
        await self._commit(OpenSession(session_id, request.ttl_ms, request.label))
        tracker = self._tracker
        if tracker is not None and group.node.term == self._term:
            tracker.open(session_id, request.ttl_ms, self._now_ms())
        return LockOpenReply(session_id, request.ttl_ms)

    async def _keep_alive(self, request: LockKeepAlive, _p: memoryview, _c: CallContext) -> Reply:
        group, tracker = self._ready()
        if not group.node.lease_valid():
            raise RemoteError("dropped", "the leader's lease is not confirmed; retry")
        ttl_ms = tracker.keep_alive(request.session_id, self._now_ms())
        if ttl_ms is None:
            raise RemoteError("unknown_session", f"no live session {request.session_id}")
        return LockKeepAliveReply(ttl_ms)

    async def _close(self, request: LockClose, _p: memoryview, _c: CallContext) -> Reply:
        self._ready()
        result = await self._commit(CloseSession(request.session_id))
        tracker = self._tracker
        if tracker is not None:
            tracker.forget(request.session_id)
        return LockCloseReply(len(result.released), len(result.cancelled))

    async def _acquire(self, request: LockAcquire, _p: memoryview, _c: CallContext) -> Reply:
        self._ready()
        if not 0 <= request.wait_ms <= WAIT_MS_MAX:
            raise RemoteError("invalid_argument", f"wait_ms must be in [0, {WAIT_MS_MAX}]")
        command = Acquire(
            request.session_id, request.name, request.mode, request.request_id, request.wait
        )
        result = await self._commit(command)
        if result.status == "granted":
            return LockAcquireReply("granted", result.token)
        if result.status == "refused":
            return LockAcquireReply("refused")
        assert result.status == "queued", result
        key = (request.session_id, request.name, request.request_id)
        token = await self._wait(key, request.wait_ms / 1000)
        if token is not None:
            return LockAcquireReply("granted", token)
        if not request.cancel_on_timeout:
            return LockAcquireReply("queued")
        token = self._granted_token(key)
        if token is not None:  # granted while the timer fired: the caller gets the lock
            return LockAcquireReply("granted", token)
        await self._commit(Release(request.session_id, request.name, request.request_id))
        return LockAcquireReply("timeout")

    async def _wait(self, key: _Key, timeout_s: float) -> int | None:
        """The token once `key` is granted, or None after `timeout_s`."""
        if sum(len(f) for f in self._waiters.values()) >= WAITERS_MAX:
            raise RemoteError("too_many_waiters", f"{WAITERS_MAX} calls wait on this leader")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        token = self._granted_token(key)  # applied before we registered?
        if token is not None:
            return token
        if not self._is_waiting(key):
            raise RemoteError("cancelled", f"the wait for {key[1]!r} ended")
        self._waiters.setdefault(key, []).append(future)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            return None
        finally:
            futures = self._waiters.get(key)
            if futures is not None and future in futures:
                futures.remove(future)
                if not futures:
                    del self._waiters[key]

    async def _release(self, request: LockRelease, _p: memoryview, _c: CallContext) -> Reply:
        self._ready()
        result = await self._commit(Release(request.session_id, request.name, request.request_id))
        if result.released:
            return LockReleaseReply(True, result.released[0].token)
        return LockReleaseReply(False)

    async def _barrier(self, consistency: str) -> None:
        group = self._group()
        try:
            if consistency == "linearizable":
                await group.read_barrier("linearizable")
            elif consistency == "lease":
                await group.read_barrier("lease")
            else:
                await group.read_barrier("stale")
        except NotLeader:
            raise self._not_leader() from None
        except ProposalDropped as exc:
            raise RemoteError("dropped", str(exc)) from None

    async def _list(self, request: LockList, _p: memoryview, _c: CallContext) -> Reply:
        if not 0 <= request.limit <= LIST_LIMIT_MAX:
            raise RemoteError("invalid_argument", f"limit must be in [0, {LIST_LIMIT_MAX}]")
        await self._barrier(request.consistency)
        locks = self._root().locks
        sessions = locks.sessions()[: request.limit] if request.sessions else []
        return LockListReply(locks.locks(request.prefix, request.limit), sessions)

    async def _fence(self, request: LockFence, _p: memoryview, _c: CallContext) -> Reply:
        check_name(request.name)
        await self._barrier("linearizable")
        return LockFenceReply(self._root().locks.fence_is_current(request.name, request.token))


def check_name(name: str) -> None:
    """The lock-name rule of `meta.locks`, as a `RemoteError("invalid_name")`."""
    if not name:
        raise RemoteError("invalid_name", "lock name is empty")
    size_bytes = len(name.encode("utf-8", "surrogatepass"))
    if size_bytes > LOCK_NAME_BYTES_MAX:
        raise RemoteError(
            "invalid_name", f"lock name of {size_bytes} bytes exceeds {LOCK_NAME_BYTES_MAX}"
        )
