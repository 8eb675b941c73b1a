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

Parking (`meta.lock_queue`). An acquire that would only queue is not proposed: it waits
in this leader's memory, per name in arrival order, and is proposed right behind the
`Release` (or the session end) that frees the lock for it, in the same synchronous stretch
(`RaftGroup.submit_command`), so both entries share one replication round and one fsync.
The machine still grants or queues it when it applies; the queue only decides when to
propose. `_kick` proposes a parked head whose lock came free some other way (a release
already in flight when it parked); the 20 ms loop does too, and fails parked requests of
ended sessions. A session's new acquire sends its parked ones to the log first (request
ids must reach the log in order). Parked requests are lost with leadership: their calls
fail with `not_leader` and the clients retry on the new leader with the same ids, so
FIFO across a leader change is the order of the retries. `waiters` and `LockList` list
parked requests after the log's queue.

Fencing. `LockFence(name, token)` answers, after a ReadIndex barrier, whether `token` is
still held on `name`; the gateway's write path asks it before committing a fenced write.
"""

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from cairn.base.errors import RemoteError
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.meta.leases import LeaseTracker
from cairn.meta.lock_queue import Parked, ParkedAcquires
from cairn.meta.locks import (
    Acquire,
    CloseSession,
    Command,
    ExpireSession,
    Grant,
    LockInfo,
    OpenSession,
    Release,
    Request,
    Result,
    Wait,
    lock_name_problem,
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
_Outcome = Result | RemoteError


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
        self._parked = ParkedAcquires(WAITERS_MAX)
        self._parked_calls: dict[_Key, tuple[Parked, asyncio.Future[Result]]] = {}
        """Parked acquires and those proposed from the queue but not applied yet."""
        self._promoted: dict[str, int] = {}
        """Per name, acquires proposed from the queue and not applied yet."""
        self._cancelled_last: dict[int, int] = {}
        """Per session, the highest request id cancelled while parked: the log never saw
        it, so this leader refuses it (`stale_request`) as the machine would have."""
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

    def _submit(self, command: Command) -> "asyncio.Future[object]":
        """Put `command` in the log now (commands submitted in one synchronous stretch
        share a Ready: one replication round, one fsync)."""
        data = encode_lock_request(Request(next(self._op_ids), command))
        try:
            return self._group().submit_command(data)
        except NotLeader:
            raise self._not_leader() from None
        except (ProposalDropped, ProposalTooLarge) as exc:
            raise RemoteError("dropped", str(exc)) from None

    async def _outcome(self, submitted: "asyncio.Future[object]") -> Result:
        """The result of a submitted command, once applied (fed to `_observe` first)."""
        try:
            applied = await submitted
        except NotLeader:
            raise self._not_leader() from None
        except (ProposalDropped, ProposalTooLarge) as exc:
            raise RemoteError("dropped", str(exc)) from None
        if not isinstance(applied, tuple):
            raise RemoteError("malformed", f"lock command not applied: {applied!r}")
        request, result = applied
        assert isinstance(request, Request) and isinstance(result, Result)
        self._observe(request.command, result)
        return result

    async def _commit(self, command: Command) -> Result:
        """Propose `command`; feed its result to `_observe`; raise its error, if any."""
        return _raise_error(await self._outcome(self._submit(command)))

    def _observe(self, command: Command, result: Result) -> None:
        """Push each hand-over to its waiting call; fail the calls whose wait was removed;
        answer a promoted acquire's calls; look at the parked queue of every name a grant
        or wait left."""
        if isinstance(command, Acquire):
            key = (command.session_id, command.name, command.request_id)
            call = self._parked_calls.get(key)
            if (
                call is not None
                and self._parked.find(command.session_id, command.name) is not call[0]
            ):
                del self._parked_calls[key]
                if not call[1].done():
                    call[1].set_result(result)
        for grant in result.granted:
            self._settle((grant.session_id, grant.name, grant.request_id), grant.token)
        if len(self._parked):
            names = {g.name for g in result.released} | {w.name for w in result.cancelled}
            for name in sorted(names):
                if self._parked.head(name) is not None:
                    asyncio.get_running_loop().call_soon(self._kick, name)
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
        self._parked.clear()
        self._promoted.clear()
        self._cancelled_last.clear()
        calls, self._parked_calls = self._parked_calls, {}
        for _, call in calls.values():
            if not call.done():
                call.set_exception(error)

    # -- the parked queue (meta.lock_queue) --------------------------------------------
    def _park(self, command: Acquire) -> tuple[Parked, "asyncio.Future[Result]"]:
        parked = self._parked.park(command)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # a caller that stopped waiting is no error
        self._parked_calls[parked.key] = (parked, future)
        return parked, future

    def _unpark(self, parked: Parked, error: RemoteError) -> None:
        """Take a still-parked acquire out and fail its calls with `error`."""
        self._parked.remove(parked)
        session_id, request_id = parked.command.session_id, parked.command.request_id
        if request_id > self._cancelled_last.get(session_id, 0):
            self._cancelled_last[session_id] = request_id
        _, future = self._parked_calls.pop(parked.key)
        if not future.done():
            future.set_exception(error)

    def _promote(self, run: list[Parked]) -> None:
        """Propose parked acquires, in order; each call gets its entry's result."""
        for parked in run:
            try:
                submitted = self._submit(parked.command)
            except RemoteError as exc:
                _, future = self._parked_calls.pop(parked.key)
                if not future.done():
                    future.set_exception(exc)
                continue
            name = parked.command.name
            self._promoted[name] = self._promoted.get(name, 0) + 1
            self._spawn(self._deliver(parked, submitted))

    async def _deliver(self, parked: Parked, submitted: "asyncio.Future[object]") -> None:
        name = parked.command.name
        outcome: _Outcome
        try:
            outcome = await self._outcome(submitted)
        except RemoteError as exc:
            outcome = exc
        finally:
            left = self._promoted.get(name, 0) - 1
            if left > 0:
                self._promoted[name] = left
            else:
                self._promoted.pop(name, None)
        call = self._parked_calls.pop(parked.key, None)
        if call is not None and not call[1].done():
            if isinstance(outcome, RemoteError):
                call[1].set_exception(outcome)
            else:
                call[1].set_result(outcome)
        self._kick(name)

    def _promote_after(
        self, name: str, info: LockInfo | None, leaving: Callable[[Grant], bool]
    ) -> None:
        """Right after submitting a command that ends the grants `leaving` picks on `name`
        (`info`: its state before), propose the parked requests it frees the lock for."""
        if info is None or info.waiters or self._parked.head(name) is None:
            return
        if not any(leaving(g) for g in info.holders):
            return
        remaining = tuple(g for g in info.holders if not leaving(g))
        self._promote(self._parked.take_head_run(name, remaining))

    def _kick(self, name: str) -> None:
        """Propose the head of `name`'s parked queue if the lock is free for it and no
        promoted acquire of the name is still on its way (a release the queue missed)."""
        if self._tracker is None or self._promoted.get(name) or self._parked.head(name) is None:
            return
        info = self._root().locks.lock_info(name)
        if info is not None and info.waiters:
            return
        self._promote(self._parked.take_head_run(name, info.holders if info else ()))

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

    def waiters(self, name: str) -> tuple[Wait, ...]:
        """Who waits for `name` on this node as leader, in grant order: the log's queue,
        then the parked requests (the waiters `cairn locks` lists)."""
        info = self._root().locks.lock_info(name)
        return (() if info is None else info.waiters) + self._parked.waiters(name)

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
        by entries this service did not propose (it proposes all of them in normal use).
        Parked requests of ended sessions fail; a free lock's parked head is proposed."""
        locks = self._root().locks
        for name in self._parked.names():
            for wait in self._parked.waiters(name):
                if not locks.has_session(wait.session_id):
                    parked, _ = self._parked_calls[(wait.session_id, name, wait.request_id)]
                    self._unpark(parked, _session_ended(name))
            self._kick(name)
        for session_id in [s for s in self._cancelled_last if not locks.has_session(s)]:
            del self._cancelled_last[session_id]
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

    async def _end_session(self, command: CloseSession | ExpireSession) -> Result:
        """Commit the end of a session: its parked requests fail, and each lock it holds
        that has parked requests goes to them in the same batch."""
        session_id = command.session_id
        self._cancelled_last.pop(session_id, None)
        for parked in self._parked.take_session(session_id):
            _, future = self._parked_calls.pop(parked.key)
            if not future.done():
                future.set_exception(_session_ended(parked.command.name))
        locks = self._root().locks
        before = {name: locks.lock_info(name) for name in self._parked.names()}
        submitted = self._submit(command)
        for name, info in before.items():
            self._promote_after(name, info, lambda g: g.session_id == session_id)
        return _raise_error(await self._outcome(submitted))

    async def _expire(self, session_id: int) -> None:
        try:
            result = await self._end_session(ExpireSession(session_id))
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
        result = await self._end_session(CloseSession(request.session_id))
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
        key = (request.session_id, request.name, request.request_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.wait_ms / 1000
        call = self._parked_calls.get(key)
        cancelled_last = self._cancelled_last.get(request.session_id, 0)
        if call is None and 0 < request.request_id <= cancelled_last:
            raise RemoteError(
                "stale_request", f"request id {request.request_id} is not above {cancelled_last}"
            )
        if call is None:
            # The session's parked requests go first: its ids must reach the log in order.
            self._promote(self._parked.take_session(request.session_id))
            locks = self._root().locks
            if self._parked.should_park(
                command, locks.lock_info(command.name), locks.request_id_last(command.session_id)
            ):
                call = self._park(command)
        elif call[0].command.mode != command.mode:
            raise RemoteError(
                "already_held",
                f"session {command.session_id} already holds or waits for {command.name!r}",
            )
        if call is None:
            result = await self._commit(command)
        else:
            outcome = await self._await_parked(*call, request.wait_ms / 1000)
            if outcome is None:  # still parked: cancel it, or leave it for the next call
                if not request.cancel_on_timeout:
                    return LockAcquireReply("queued")
                self._unpark(call[0], RemoteError("cancelled", f"the wait for {key[1]!r} ended"))
                return LockAcquireReply("timeout")
            result = _raise_error(outcome)
        if result.status == "granted":
            return LockAcquireReply("granted", result.token)
        if result.status == "refused":
            return LockAcquireReply("refused")
        assert result.status == "queued", result
        token = await self._wait(key, max(0.0, deadline - loop.time()))
        if token is not None:
            return LockAcquireReply("granted", token)
        if not request.cancel_on_timeout:
            return LockAcquireReply("queued")
        token = self._granted_token(key)
        if token is not None:  # granted while the timer fired: the caller gets the lock
            return LockAcquireReply("granted", token)
        await self._commit(Release(request.session_id, request.name, request.request_id))
        return LockAcquireReply("timeout")

    async def _await_parked(
        self, parked: Parked, future: "asyncio.Future[Result]", timeout_s: float
    ) -> Result | None:
        """The result of a parked acquire once it is proposed and applied, or None when
        `timeout_s` passes while it is still parked."""
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            pass
        if self._parked.find(parked.command.session_id, parked.command.name) is not parked:
            return await asyncio.shield(future)  # proposed meanwhile: its result is coming
        return None

    async def _wait(self, key: _Key, timeout_s: float) -> int | None:
        """The token once `key` is granted, or None after `timeout_s`."""
        if sum(len(f) for f in self._waiters.values()) + len(self._parked) >= WAITERS_MAX:
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
        session_id, name, request_id = request.session_id, request.name, request.request_id
        call = self._parked_calls.get((session_id, name, request_id))
        if call is not None and self._parked.find(session_id, name) is call[0]:
            self._unpark(call[0], RemoteError("cancelled", f"the wait for {name!r} ended"))
            return LockReleaseReply(False)
        info = self._root().locks.lock_info(name)
        submitted = self._submit(Release(session_id, name, request_id))
        self._promote_after(
            name, info, lambda g: g.session_id == session_id and g.request_id == request_id
        )
        result = _raise_error(await self._outcome(submitted))
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
        infos = [
            LockInfo(i.name, i.holders, self.waiters(i.name))
            for i in locks.locks(request.prefix, request.limit)
        ]
        return LockListReply(infos, sessions)

    async def _fence(self, request: LockFence, _p: memoryview, _c: CallContext) -> Reply:
        check_name(request.name)
        await self._barrier("linearizable")
        return LockFenceReply(self._root().locks.fence_is_current(request.name, request.token))


def _raise_error(result: Result) -> Result:
    """`result`, unless it is an error: then its `RemoteError`."""
    if result.status == "error":
        raise RemoteError(result.error, result.message)
    return result


def _session_ended(name: str) -> RemoteError:
    return RemoteError("unknown_session", f"the wait for {name!r} ended with its session")


def _retrieve(future: "asyncio.Future[Result]") -> None:
    if not future.cancelled():
        future.exception()


def check_name(name: str) -> None:
    """The lock-name rule of `meta.locks`, as a `RemoteError("invalid_name")`."""
    problem = lock_name_problem(name)
    if problem is not None:
        raise RemoteError("invalid_name", problem)
