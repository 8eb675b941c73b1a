"""The lock service's replicated state machine: sessions, exclusive and shared locks, fencing.

Theory of operation
-------------------
This is the part of the lock service that every replica of the root Raft group runs. It is
pure: no IO, no clock, no randomness. The Raft driver hands it committed entries
(`apply(index, data)`), and every replica that applies the same entries in the same order
holds the same state, returns the same results and writes the same snapshot bytes. Time
only enters through the leader's `LeaseTracker` (`leases.py`), which decides *when* to
propose `ExpireSession`; the state machine only sees the proposal.

Commands (msgspec Structs behind a one-byte format version, like `raft/kv.py`):

| command | effect |
|---|---|
| `OpenSession(session_id, ttl_ms, label)` | create a session; the proposer picks the id |
| `CloseSession(session_id)` | end it: release its grants, cancel its waits |
| `ExpireSession(session_id)` | the same, proposed by the leader when the lease ran out |
| `Acquire(session_id, name, mode, request_id, wait)` | granted, queued (`wait`) or refused |
| `Release(session_id, name, request_id)` | release the grant, or cancel the wait, of that request |
| `CheckFence(name, token)` | is `token` still held on `name`? (a linearizable read) |

Sessions. Session ids are chosen by the proposer and must be strictly greater than every
id ever opened (`session_id_last` is part of the snapshot), so an id is never reused and a
late retry of an open for a session that has since ended is refused. A leader can use
`propose_session_id(term, n)`: a leader's entries commit in the order it proposed them
and all entries of a term precede those of a later term, so its ids increase. Re-opening a
live session with identical parameters is an idempotent retry and succeeds.

Locks. A name is a non-empty UTF-8 string of at most `LOCK_NAME_BYTES_MAX` bytes; it exists
while it has a holder or a waiter. Per name there is a set of holders (one exclusive, or
any number of shared) and a FIFO queue of waiting requests. The grant rule:

| holders | queue | new shared request | new exclusive request |
|---|---|---|---|
| none | empty (nothing waits while nothing is held) | granted | granted |
| shared | empty | granted | queued / refused |
| shared | non-empty | queued / refused | queued / refused |
| exclusive | any | queued / refused | queued / refused |

A request that joins a non-empty queue waits even if it is compatible with the holders, so
a waiting exclusive request blocks every later shared one: no writer starvation, grants in
arrival order. When a grant ends or a wait is cancelled the queue advances: the head is
granted while it is compatible with the holders (a run of shared waiters is granted
together). `wait=False` is a try-lock: refused instead of queued. Try-lock *with a timeout*
is `wait=True` followed, when the client's timer fires first, by a `Release` of the same
request, which cancels the wait or releases the grant if it won the race.

A session holds at most one grant *or* one wait per name. Locks are not re-entrant: a
second `Acquire` of the same name with a new `request_id` is refused with `AlreadyHeld`
(a client library can count re-entry locally). The same `request_id` again is an
idempotent retry and returns the request's present state (granted with its token, or
queued). Request ids are per session and must increase (`StaleRequest` otherwise), so a
delayed retry of a request that was granted and released cannot take the lock again.

Fencing. One counter for the whole state machine (`token_last`, in the snapshot) gives
every grant a token strictly greater than every token before it, across snapshots,
restores and leader changes. Storage-side writes carry the token; `CheckFence` (or
`fence_is_current` on an up-to-date replica) tells whether it still belongs to a holder,
so a paused former holder's late write is refused.

Results. `apply` returns the request and a `Result`: the status of the command itself,
plus the grants this command made to *waiters* (`granted`, so the service can push a
notification to each), the grants it ended (`released`) and the waits it cancelled
(`cancelled`), which together form the grant/release history the fault tests check.

Bad input never crashes `apply`: every check raises a `LockError` subclass (a stable
`code` each) before any state changes, and `apply` turns it into an error `Result`; an
undecodable entry gives `None`. Broken invariants are `AssertionError`s (bugs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import msgspec

from cairn.base.errors import CairnError
from cairn.meta.machine import VersionedCodec

COMMAND_FORMAT_V1 = 1
SNAPSHOT_FORMAT_V1 = 1

LOCK_NAME_BYTES_MAX = 512
SESSION_LABEL_BYTES_MAX = 256
SESSION_TTL_MS_MIN = 200
SESSION_TTL_MS_MAX = 3_600_000
SESSION_ID_MAX = 2**63 - 1
REQUEST_ID_MAX = 2**63 - 1
SESSIONS_MAX = 10_000
WAITERS_PER_NAME_MAX = 1_024
LOCKS_PER_SESSION_MAX = 256
"""Grants plus waiting requests of one session."""
LOCK_REQUESTS_MAX = 262_144
"""Grants plus waiting requests of all sessions (bounds the state and the snapshot)."""

Mode = Literal["exclusive", "shared"]
EXCLUSIVE: Mode = "exclusive"
SHARED: Mode = "shared"
MODES: tuple[Mode, ...] = (EXCLUSIVE, SHARED)

Status = Literal["ok", "granted", "queued", "refused", "error"]


# -- errors ----------------------------------------------------------------------------------


class LockError(CairnError):
    """A lock-service command was refused; `code` is a stable machine-readable name."""

    code: ClassVar[str] = "lock_error"


class MalformedCommand(LockError):
    """A command or snapshot could not be encoded or decoded."""

    code = "malformed"


class InvalidLockName(LockError):
    """A lock name is empty or longer than `LOCK_NAME_BYTES_MAX` bytes."""

    code = "invalid_name"


class InvalidArgument(LockError):
    """A mode, id or label is out of its range."""

    code = "invalid_argument"


class InvalidTtl(LockError):
    """A session TTL is outside [`SESSION_TTL_MS_MIN`, `SESSION_TTL_MS_MAX`]."""

    code = "invalid_ttl"


class UnknownSession(LockError):
    """No live session has this id (never opened, closed or expired)."""

    code = "unknown_session"


class SessionExists(LockError):
    """The session id is live with other parameters, or is not above every id opened."""

    code = "session_exists"


class NotHeld(LockError):
    """Release of a request that holds no grant and waits in no queue."""

    code = "not_held"


class AlreadyHeld(LockError):
    """The session already holds or waits for this name under another request id."""

    code = "already_held"


class StaleRequest(LockError):
    """The request id is not above the session's last one (a delayed retry)."""

    code = "stale_request"


class TooManySessions(LockError):
    """`SESSIONS_MAX` sessions are open."""

    code = "too_many_sessions"


class TooManyWaiters(LockError):
    """`WAITERS_PER_NAME_MAX` requests already wait for this name."""

    code = "too_many_waiters"


class TooManyLocks(LockError):
    """The session, or the whole machine, is at its limit of grants plus waits."""

    code = "too_many_locks"


ERRORS_BY_CODE: dict[str, type[LockError]] = {
    cls.code: cls
    for cls in (
        MalformedCommand,
        InvalidLockName,
        InvalidArgument,
        InvalidTtl,
        UnknownSession,
        SessionExists,
        NotHeld,
        AlreadyHeld,
        StaleRequest,
        TooManySessions,
        TooManyWaiters,
        TooManyLocks,
    )
}


# -- commands and results --------------------------------------------------------------------


class OpenSession(msgspec.Struct, tag="open", frozen=True):
    session_id: int
    ttl_ms: int
    label: str = ""


class CloseSession(msgspec.Struct, tag="close", frozen=True):
    session_id: int


class ExpireSession(msgspec.Struct, tag="expire", frozen=True):
    session_id: int


class Acquire(msgspec.Struct, tag="acquire", frozen=True):
    session_id: int
    name: str
    mode: Mode
    request_id: int
    wait: bool = True


class Release(msgspec.Struct, tag="release", frozen=True):
    session_id: int
    name: str
    request_id: int


class CheckFence(msgspec.Struct, tag="fence", frozen=True):
    name: str
    token: int


Command = OpenSession | CloseSession | ExpireSession | Acquire | Release | CheckFence


class Request(msgspec.Struct, frozen=True):
    """A command and the id its client uses to match the result."""

    op_id: int
    command: Command


class Grant(msgspec.Struct, frozen=True):
    """A request that holds `name`; `token` is its fencing token."""

    session_id: int
    name: str
    request_id: int
    mode: Mode
    token: int


class Wait(msgspec.Struct, frozen=True):
    """A request queued for `name`."""

    session_id: int
    name: str
    request_id: int
    mode: Mode


class Result(msgspec.Struct, frozen=True):
    """What one command did.

    `status` is the command's own outcome: "granted" (with `token`), "queued" or "refused"
    for `Acquire`, "error" (with `error`, a `LockError.code`, and `message`) for refused
    input, "ok" otherwise (`current` answers `CheckFence`). `granted` lists the waiters this
    command granted, in grant order; `released` the grants it ended; `cancelled` the waits
    it removed.
    """

    status: Status
    token: int = 0
    current: bool = False
    error: str = ""
    message: str = ""
    granted: tuple[Grant, ...] = ()
    released: tuple[Grant, ...] = ()
    cancelled: tuple[Wait, ...] = ()


def error_of(result: Result) -> LockError | None:
    """The typed exception an error `Result` stands for (None when it is not an error)."""
    if result.status != "error":
        return None
    return ERRORS_BY_CODE.get(result.error, LockError)(result.message)


class LockInfo(msgspec.Struct, frozen=True):
    """One name for `cairn locks`: holders by token, waiters in queue order."""

    name: str
    holders: tuple[Grant, ...]
    waiters: tuple[Wait, ...]


class SessionInfo(msgspec.Struct, frozen=True):
    session_id: int
    ttl_ms: int
    label: str
    held: int
    waiting: int


class _SessionV1(msgspec.Struct, frozen=True):
    session_id: int
    ttl_ms: int
    label: str
    request_id_last: int


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    token_last: int
    session_id_last: int
    sessions: list[_SessionV1]
    locks: list[LockInfo]


_requests: VersionedCodec[Request] = VersionedCodec(Request, COMMAND_FORMAT_V1, MalformedCommand)
_snapshots: VersionedCodec[_SnapshotV1] = VersionedCodec(
    _SnapshotV1, SNAPSHOT_FORMAT_V1, MalformedCommand
)


def encode_request(request: Request) -> bytes:
    return _requests.encode(request)


def decode_request(data: bytes) -> Request:
    return _requests.decode(data)


def propose_session_id(term: int, n: int) -> int:
    """The id of the `n`-th session (from 1) a leader opens in `term`: increases in log order."""
    assert 0 < term < 2**31 and 0 < n < 2**32, (term, n)
    return term << 32 | n


# -- state -----------------------------------------------------------------------------------


@dataclass
class _Session:
    ttl_ms: int
    label: str
    request_id_last: int = 0
    names: set[str] = field(default_factory=set)
    """Names this session holds or waits for (iterate sorted: set order is per process)."""


@dataclass
class _Lock:
    holders: dict[int, Grant] = field(default_factory=dict)
    """session id -> grant; all shared, or a single exclusive one."""
    waiters: list[Wait] = field(default_factory=list)

    def admits(self, mode: Mode) -> bool:
        """Could a request of `mode` be granted now, ignoring the queue?"""
        return admits(self.holders.values(), mode)


def admits(holders: Iterable[Grant], mode: Mode) -> bool:
    """Would `holders` let a request of `mode` in (ignoring any queue)? No holder, or only
    shared holders and a shared request."""
    return all(mode == SHARED and grant.mode == SHARED for grant in holders)


def lock_name_problem(name: object) -> str | None:
    """Why `name` is not a lock name (None: it is one): the rule every layer applies."""
    if not isinstance(name, str) or not name:
        return "lock name is empty"
    size_bytes = len(name.encode("utf-8", "surrogatepass"))
    if size_bytes > LOCK_NAME_BYTES_MAX:
        return f"lock name of {size_bytes} bytes exceeds {LOCK_NAME_BYTES_MAX}"
    return None


def _check_name(name: str) -> None:
    problem = lock_name_problem(name)
    if problem is not None:
        raise InvalidLockName(problem)


def _check_id(what: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidArgument(f"{what} {value!r} is not in [1, {maximum}]")


class LockStateMachine:
    """Sessions and locks of one Raft group; see the module docstring."""

    def __init__(self) -> None:
        self.applied_index = 0
        self.token_last = 0
        self.session_id_last = 0
        self._sessions: dict[int, _Session] = {}
        self._locks: dict[str, _Lock] = {}
        self._requests_count = 0
        self.on_result: Callable[[Command, Result], None] | None = None
        """Called with each applied command's result, as it is applied (the leader's lock
        service pushes grants from it one event-loop turn sooner than through the
        proposer). It must not change this machine: replicas must stay identical."""

    # -- Raft driver interface ---------------------------------------------------------------

    def apply(self, index: int, data: bytes) -> tuple[Request, Result] | None:
        """Apply the command of the committed entry at `index` (None for a malformed one)."""
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index
        try:
            request = decode_request(data)
        except MalformedCommand:
            return None
        result = self.execute(request.command)
        if self.on_result is not None:
            self.on_result(request.command, result)
        return request, result

    def mark_applied(self, index: int) -> None:
        """A committed entry with no command (no-op, membership change) at `index`."""
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index

    def execute(self, command: Command) -> Result:
        """Run one command; refused input gives an error `Result` and changes nothing."""
        try:
            return self._execute(command)
        except LockError as exc:
            return Result("error", error=exc.code, message=str(exc))

    def _execute(self, command: Command) -> Result:
        if isinstance(command, Acquire):
            return self._acquire(command)
        if isinstance(command, Release):
            return self._release(command)
        if isinstance(command, OpenSession):
            return self._open(command)
        if isinstance(command, CloseSession | ExpireSession):
            return self._end_session(command.session_id)
        if isinstance(command, CheckFence):
            _check_name(command.name)
            return Result("ok", current=self.fence_is_current(command.name, command.token))
        raise MalformedCommand(f"unknown command {type(command).__name__}")

    # -- sessions ----------------------------------------------------------------------------

    def _session(self, session_id: int) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSession(f"no session {session_id!r}")
        return session

    def _open(self, command: OpenSession) -> Result:
        _check_id("session id", command.session_id, SESSION_ID_MAX)
        ttl_ms = command.ttl_ms
        if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int):
            raise InvalidTtl(f"ttl {ttl_ms!r} is not an integer")
        if not SESSION_TTL_MS_MIN <= ttl_ms <= SESSION_TTL_MS_MAX:
            raise InvalidTtl(
                f"ttl of {ttl_ms} ms is not in [{SESSION_TTL_MS_MIN}, {SESSION_TTL_MS_MAX}] ms"
            )
        label = command.label
        if not isinstance(label, str):
            raise InvalidArgument("session label is not a string")
        label_bytes = len(label.encode("utf-8", "surrogatepass"))
        if label_bytes > SESSION_LABEL_BYTES_MAX:
            raise InvalidArgument(
                f"session label of {label_bytes} bytes exceeds {SESSION_LABEL_BYTES_MAX}"
            )
        live = self._sessions.get(command.session_id)
        if live is not None:
            if live.ttl_ms == ttl_ms and live.label == label:
                return Result("ok")
            raise SessionExists(f"session {command.session_id} is open with other parameters")
        if command.session_id <= self.session_id_last:
            raise SessionExists(
                f"session id {command.session_id} is not above {self.session_id_last}"
            )
        if len(self._sessions) >= SESSIONS_MAX:
            raise TooManySessions(f"{SESSIONS_MAX} sessions are open")
        self._sessions[command.session_id] = _Session(ttl_ms, label)
        self.session_id_last = command.session_id
        return Result("ok")

    def _end_session(self, session_id: int) -> Result:
        session = self._session(session_id)
        granted: list[Grant] = []
        released: list[Grant] = []
        cancelled: list[Wait] = []
        for name in sorted(session.names):
            lock = self._locks[name]
            grant = lock.holders.pop(session_id, None)
            if grant is not None:
                released.append(grant)
            else:
                wait = next(w for w in lock.waiters if w.session_id == session_id)
                lock.waiters.remove(wait)
                cancelled.append(wait)
            self._requests_count -= 1
            granted.extend(self._advance(name, lock))
        del self._sessions[session_id]
        return Result(
            "ok", granted=tuple(granted), released=tuple(released), cancelled=tuple(cancelled)
        )

    # -- locks -------------------------------------------------------------------------------

    def _acquire(self, command: Acquire) -> Result:
        session = self._session(command.session_id)
        _check_name(command.name)
        if command.mode not in MODES:
            raise InvalidArgument(f"mode {command.mode!r} is not one of {MODES}")
        _check_id("request id", command.request_id, REQUEST_ID_MAX)
        if not isinstance(command.wait, bool):
            raise InvalidArgument("wait is not a boolean")
        name = command.name
        lock = self._locks.get(name)
        if name in session.names:
            assert lock is not None
            return self._acquire_again(command, lock)
        if command.request_id <= session.request_id_last:
            raise StaleRequest(
                f"request id {command.request_id} is not above {session.request_id_last}"
            )
        if len(session.names) >= LOCKS_PER_SESSION_MAX:
            raise TooManyLocks(f"session holds or waits for {LOCKS_PER_SESSION_MAX} locks already")
        if self._requests_count >= LOCK_REQUESTS_MAX:
            raise TooManyLocks(f"{LOCK_REQUESTS_MAX} grants and waits exist already")
        if lock is None:
            lock = _Lock()
        free = not lock.waiters and lock.admits(command.mode)
        if not free and not command.wait:
            session.request_id_last = command.request_id
            return Result("refused")
        if not free and len(lock.waiters) >= WAITERS_PER_NAME_MAX:
            raise TooManyWaiters(f"{WAITERS_PER_NAME_MAX} requests wait for {name!r}")
        session.request_id_last = command.request_id
        session.names.add(name)
        self._requests_count += 1
        self._locks[name] = lock
        if free:
            grant = self._grant(name, lock, command.session_id, command.request_id, command.mode)
            return Result("granted", token=grant.token)
        lock.waiters.append(Wait(command.session_id, name, command.request_id, command.mode))
        return Result("queued")

    def _acquire_again(self, command: Acquire, lock: _Lock) -> Result:
        """The session already holds or waits for the name: a retry, or a refused re-entry."""
        grant = lock.holders.get(command.session_id)
        if grant is not None:
            if grant.request_id == command.request_id and grant.mode == command.mode:
                return Result("granted", token=grant.token)
        else:
            wait = next(w for w in lock.waiters if w.session_id == command.session_id)
            if wait.request_id == command.request_id and wait.mode == command.mode:
                return Result("queued")
        raise AlreadyHeld(
            f"session {command.session_id} already holds or waits for {command.name!r}"
        )

    def _grant(self, name: str, lock: _Lock, session_id: int, request_id: int, mode: Mode) -> Grant:
        self.token_last += 1
        grant = Grant(session_id, name, request_id, mode, self.token_last)
        lock.holders[session_id] = grant
        return grant

    def _advance(self, name: str, lock: _Lock) -> list[Grant]:
        """Grant the head of the queue while it is compatible; drop the name when unused."""
        granted = []
        while lock.waiters and lock.admits(lock.waiters[0].mode):
            wait = lock.waiters.pop(0)
            granted.append(self._grant(name, lock, wait.session_id, wait.request_id, wait.mode))
        if not lock.holders:
            assert not lock.waiters, name
            del self._locks[name]
        return granted

    def _release(self, command: Release) -> Result:
        session = self._session(command.session_id)
        _check_name(command.name)
        _check_id("request id", command.request_id, REQUEST_ID_MAX)
        name = command.name
        lock = self._locks.get(name)
        if lock is None or name not in session.names:
            raise NotHeld(f"session {command.session_id} neither holds nor waits for {name!r}")
        grant = lock.holders.get(command.session_id)
        released: tuple[Grant, ...] = ()
        cancelled: tuple[Wait, ...] = ()
        if grant is not None:
            if grant.request_id != command.request_id:
                raise NotHeld(f"request {command.request_id} does not hold {name!r}")
            del lock.holders[command.session_id]
            released = (grant,)
        else:
            wait = next(w for w in lock.waiters if w.session_id == command.session_id)
            if wait.request_id != command.request_id:
                raise NotHeld(f"request {command.request_id} does not wait for {name!r}")
            lock.waiters.remove(wait)
            cancelled = (wait,)
        session.names.discard(name)
        self._requests_count -= 1
        granted = tuple(self._advance(name, lock))
        return Result("ok", granted=granted, released=released, cancelled=cancelled)

    # -- queries (local reads: serve them once applied_index has reached the read index) ------

    def fence_is_current(self, name: str, token: int) -> bool:
        """Does a holder of `name` still hold the grant with fencing `token`?"""
        lock = self._locks.get(name)
        return lock is not None and any(g.token == token for g in lock.holders.values())

    def lock_info(self, name: str) -> LockInfo | None:
        lock = self._locks.get(name)
        if lock is None:
            return None
        holders = tuple(sorted(lock.holders.values(), key=lambda g: g.token))
        return LockInfo(name, holders, tuple(lock.waiters))

    def locks(self, prefix: str = "", limit: int = 1_000) -> list[LockInfo]:
        """Names in use that start with `prefix`, sorted, at most `limit` of them."""
        names = sorted(n for n in self._locks if n.startswith(prefix))[: max(limit, 0)]
        return [info for n in names if (info := self.lock_info(n)) is not None]

    def sessions(self) -> list[SessionInfo]:
        """Live sessions by id (with their TTL: what a new leader's `LeaseTracker` needs)."""
        out = []
        for session_id in sorted(self._sessions):
            s = self._sessions[session_id]
            held = sum(1 for n in s.names if session_id in self._locks[n].holders)
            out.append(SessionInfo(session_id, s.ttl_ms, s.label, held, len(s.names) - held))
        return out

    def has_session(self, session_id: int) -> bool:
        return session_id in self._sessions

    def request_id_last(self, session_id: int) -> int | None:
        """The highest request id the session has used (None: no such live session)."""
        session = self._sessions.get(session_id)
        return None if session is None else session.request_id_last

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        sessions = [
            _SessionV1(sid, s.ttl_ms, s.label, s.request_id_last)
            for sid, s in sorted(self._sessions.items())
        ]
        snap = _SnapshotV1(
            self.applied_index,
            self.token_last,
            self.session_id_last,
            sessions,
            self.locks("", len(self._locks)),
        )
        return _snapshots.encode(snap)

    def restore(self, data: bytes) -> None:
        snap = _snapshots.decode(data)
        sessions = {
            s.session_id: _Session(s.ttl_ms, s.label, s.request_id_last) for s in snap.sessions
        }
        locks: dict[str, _Lock] = {}
        for info in snap.locks:
            lock = _Lock({g.session_id: g for g in info.holders}, list(info.waiters))
            locks[info.name] = lock
            requests: list[Grant | Wait] = [*info.holders, *info.waiters]
            for request in requests:
                if request.session_id not in sessions:
                    raise MalformedCommand(f"snapshot: {info.name!r} used by no session")
                sessions[request.session_id].names.add(info.name)
        self.applied_index = snap.applied_index
        self.token_last = snap.token_last
        self.session_id_last = snap.session_id_last
        self._sessions = sessions
        self._locks = locks
        self._requests_count = sum(len(s.names) for s in sessions.values())
        self.check_invariants()

    def check_invariants(self) -> None:
        """Assert the state is consistent (tests call it after every step; restore too)."""
        requests = 0
        for name, lock in self._locks.items():
            assert lock.holders, f"{name!r} is in use with no holder"
            modes = {g.mode for g in lock.holders.values()}
            assert modes == {SHARED} or len(lock.holders) == 1, (name, lock.holders)
            assert not lock.waiters or not lock.admits(lock.waiters[0].mode), (name, "stuck")
            assert len(lock.waiters) <= WAITERS_PER_NAME_MAX, name
            seen: set[int] = set()
            for sid, grant in lock.holders.items():
                assert grant.session_id == sid and grant.name == name, grant
                assert 0 < grant.token <= self.token_last, grant
            in_use: list[Grant | Wait] = [*lock.holders.values(), *lock.waiters]
            for request in in_use:
                assert request.session_id not in seen, (name, request)
                seen.add(request.session_id)
                session = self._sessions[request.session_id]
                assert name in session.names and request.request_id <= session.request_id_last
                requests += 1
        for sid, session in self._sessions.items():
            assert 0 < sid <= self.session_id_last, sid
            assert len(session.names) <= LOCKS_PER_SESSION_MAX, sid
            assert all(n in self._locks for n in session.names), sid
        assert (
            requests == self._requests_count == sum(len(s.names) for s in self._sessions.values())
        )
