"""The lock SDK: sessions kept alive in the background, exclusive and shared locks, fencing.

    async with LockClient.from_cluster_file(ttl_s=10) as client:
        async with client.lock("jobs/nightly") as held:      # waits, FIFO
            await objects.put("b", "k", data, fence=held)  # refused once the lock is lost
        async with client.shared_lock("config", timeout=2):  # LockTimeout after 2 s
            ...
        held = await client.try_lock("jobs/nightly")          # None when taken

    with SyncLockClient.from_cluster_file() as client:        # scripts, threads
        with client.lock("jobs/nightly") as held:
            print(held.token)

Theory of operation
-------------------
A `LockClient` talks RPC (`cairn.wire`) to the root group's leader, found among the
metadata nodes of `cluster.json` and followed through `not_leader` redirects. It opens one
session lazily, with a TTL, and a background task renews it every third of the TTL. The
leader tracks keep-alives in memory and expires a session whose lease ran out; every lock
of the session is then released and handed to the next waiter.

The client's own view of its lease is conservative: the lease is good until the *send*
time of the last acknowledged keep-alive plus the TTL (minus a margin for clock-rate
drift), since the leader's deadline counts from when it *received* it. `Lock.held` turns
False from then on, and `Lock.lost` (an `asyncio.Event`) is set; a session the leader
reports gone marks every lock lost at once. That is a courtesy, not the safety: a client
paused past its lease cannot know, so writes that must not happen after the lock was
lost carry the fencing token (`Lock.token`, strictly increasing across the cluster's
history) and the storage side refuses a token that is no longer held
(`X-Cairn-Fence: name:token` on the native API, `Lock.fence_header`).

Acquire is one RPC that the leader holds open until the grant commits (pushed, not
polled), bounded by the caller's timeout; on timeout the leader cancels the wait itself.
If the answer is lost (leader change, connection reset), the call is repeated with the
same request id, which the state machine treats as a retry. If no answer arrives before
the deadline the client cancels the request with a `Release` of that id.

Errors are `LockError` subclasses carrying the service's stable `code`.
"""

import asyncio
import contextlib
import itertools
import math
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgspec

from cairn.base.errors import CairnError, DeadlineExceeded, PeerUnavailable, RemoteError
from cairn.client.cluster_file import load_cluster_file
from cairn.client.lock_protocol import (
    LOCK_NAME_BYTES_MAX,
    LockAcquire,
    LockAcquireReply,
    LockClose,
    LockCloseReply,
    LockFence,
    LockFenceReply,
    LockInfo,
    LockKeepAlive,
    LockKeepAliveReply,
    LockList,
    LockListReply,
    LockOpen,
    LockOpenReply,
    LockRelease,
    LockReleaseReply,
    Mode,
    SessionInfo,
)
from cairn.client.protocol import FENCE_HEADER, fence_header
from cairn.wire import RpcPool, derive_auth_key

__all__ = [
    "FENCE_HEADER",
    "AlreadyHeld",
    "InvalidLockName",
    "Lock",
    "LockClient",
    "LockError",
    "LockTimeout",
    "LockUnavailable",
    "NotHeld",
    "SessionLost",
    "SyncLock",
    "SyncLockClient",
]

T = TypeVar("T")
DEFAULT_TTL_S = 10.0
CALL_TIMEOUT_S = 10.0
"""Budget of one non-waiting call, across redirects and retries."""
ATTEMPT_TIMEOUT_S = 3.0
"""One attempt's share of it: a cut-off leader must not hold the whole budget."""
WAIT_CHUNK_MS = 30_000
"""An unbounded wait is a series of calls this long (the leader caps one at 60 s)."""
TIMER_SLACK_MS = 2
"""Added to the last wait a leader is asked for: its timers (uvloop's, in whole
milliseconds of a clock read once per loop iteration) can fire up to a millisecond early."""
RETRY_PAUSE_S = 0.02
KEEPALIVE_RETRY_S = 0.05
DRIFT_MARGIN = 0.01
"""Share of the TTL the client gives up for clock-rate drift between it and the leader."""
RELEASE_TIMEOUT_S = 5.0
_REDIRECTS_MAX = 16


# -- errors ----------------------------------------------------------------------------


class LockError(CairnError):
    """A lock call failed; `code` is the service's stable error code."""

    code: ClassVar[str] = "lock_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code  # type: ignore[misc]


class InvalidLockName(LockError):
    code = "invalid_name"


class InvalidArgument(LockError):
    code = "invalid_argument"


class SessionLost(LockError):
    """The session expired or was closed: every lock it held is gone."""

    code = "unknown_session"


class NotHeld(LockError):
    code = "not_held"


class AlreadyHeld(LockError):
    """This client already holds or waits for the name (locks are not re-entrant)."""

    code = "already_held"


class LockTimeout(LockError):
    """The lock was not granted within the timeout (or, for a try-lock, at once)."""

    code = "timeout"


class LockUnavailable(LockError):
    """No leader of the lock service answered within the call's budget."""

    code = "unavailable"


_BY_CODE: dict[str, type[LockError]] = {
    cls.code: cls for cls in (InvalidLockName, InvalidArgument, SessionLost, NotHeld, AlreadyHeld)
}
_BY_CODE["invalid_ttl"] = InvalidArgument


def _lock_error(exc: RemoteError) -> LockError:
    cls = _BY_CODE.get(exc.code, LockError)
    return cls(f"{exc.code}: {exc.message}", exc.code)


def check_name(name: str) -> None:
    """Refuse a bad name before any round trip (the service checks it again)."""
    if not isinstance(name, str) or not name:
        raise InvalidLockName("invalid_name: lock name is empty")
    size_bytes = len(name.encode("utf-8", "surrogatepass"))
    if size_bytes > LOCK_NAME_BYTES_MAX:
        raise InvalidLockName(
            f"invalid_name: lock name of {size_bytes} bytes exceeds {LOCK_NAME_BYTES_MAX}"
        )


# -- transport -------------------------------------------------------------------------


class _Leader:
    """Calls to the root leader: redirects, rotation over addresses, bounded retries."""

    def __init__(self, pool: RpcPool, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("the lock client needs at least one metadata node address")
        self.pool = pool
        self.addresses = list(addresses)
        self.leader: str | None = None
        self._next = 0

    def _candidate(self) -> str:
        if self.leader is not None:
            return self.leader
        address = self.addresses[self._next % len(self.addresses)]
        self._next += 1
        return address

    async def call(
        self,
        request: msgspec.Struct,
        reply_type: type[T],
        budget_s: float = CALL_TIMEOUT_S,
        attempt_s: float = ATTEMPT_TIMEOUT_S,
    ) -> T:
        """One call, retried within `budget_s`; a machine error raises `RemoteError`,
        running out of time `LockUnavailable`."""
        deadline = time.monotonic() + budget_s
        last: Exception | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            address = self._candidate()
            try:
                reply, _ = await self.pool.call(
                    address, request, reply_type, timeout=min(remaining, attempt_s)
                )
                self.leader = address
                return reply
            except RemoteError as exc:
                last = exc
                if exc.code == "not_leader":
                    self.leader = exc.message or None
                    if not exc.message:
                        await asyncio.sleep(RETRY_PAUSE_S)  # an election is under way
                    continue
                if exc.code in ("dropped", "no_such_group", "overloaded"):
                    if exc.code == "no_such_group":
                        self.leader = None
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                raise
            except (PeerUnavailable, DeadlineExceeded) as exc:
                last = exc
                self.leader = None
                await asyncio.sleep(RETRY_PAUSE_S)
        raise LockUnavailable(f"unavailable: no lock leader answered in {budget_s} s: {last}")


# -- handles ---------------------------------------------------------------------------


@dataclass(eq=False)
class Lock:
    """A granted lock. `token` is its fencing token; `held` turns False when the lease
    may have run out or the lock was released."""

    name: str
    mode: Mode
    token: int
    request_id: int
    session_id: int
    _client: "LockClient" = field(repr=False)
    lost: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    released: bool = False

    @property
    def held(self) -> bool:
        return (
            not self.released
            and not self.lost.is_set()
            and self._client.session_id == self.session_id
            and time.monotonic() < self._client.valid_until
        )

    @property
    def fence_header(self) -> dict[str, str]:
        """The header that makes a native-API PUT/DELETE conditional on this grant."""
        return fence_header(self.name, self.token)

    async def release(self) -> None:
        await self._client.release(self)

    async def __aenter__(self) -> "Lock":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()


class LockClient:
    """Sessions and locks of one process (see the module docstring)."""

    def __init__(
        self,
        addresses: Sequence[str],
        secret: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        label: str = "",
        pool: RpcPool | None = None,
    ) -> None:
        self.ttl_ms = int(ttl_s * 1000)
        self.label = label or f"pid {os.getpid()}"
        self._own_pool = pool is None
        self._pool = pool or RpcPool(f"lock-client-{secrets.token_hex(4)}", derive_auth_key(secret))
        self._leader = _Leader(self._pool, addresses)
        self.session_id: int | None = None
        self.valid_until = 0.0
        """Monotonic time until which this client is sure its lease holds."""
        self.keepalives = 0
        self.last_keepalive_sent = 0.0
        """Send time (monotonic) of the last keep-alive the leader acknowledged."""
        self._request_ids = itertools.count(1)
        self._held: dict[int, Lock] = {}
        self._opening: asyncio.Lock | None = None
        self._keeper: asyncio.Task[None] | None = None

    @classmethod
    def from_cluster_file(
        cls, path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> "LockClient":
        cluster = load_cluster_file(path)
        return cls(cluster.meta_addresses, cluster.secret, **kwargs)

    async def __aenter__(self) -> "LockClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- sessions ----------------------------------------------------------------------
    async def session(self) -> int:
        """The live session's id, opening one if there is none."""
        if self.session_id is not None and time.monotonic() < self.valid_until:
            return self.session_id
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.session_id is not None and time.monotonic() < self.valid_until:
                return self.session_id
            self._lose_session()
            sent = time.monotonic()
            try:
                reply = await self._leader.call(LockOpen(self.ttl_ms, self.label), LockOpenReply)
            except RemoteError as exc:
                raise _lock_error(exc) from None
            self.session_id = reply.session_id
            self._request_ids = itertools.count(1)
            self._renewed(sent)
            if self._keeper is None or self._keeper.done():
                self._keeper = asyncio.get_running_loop().create_task(self._keep_alive())
            return reply.session_id

    def _renewed(self, sent: float) -> None:
        self.last_keepalive_sent = sent
        self.valid_until = sent + self.ttl_ms / 1000 * (1 - DRIFT_MARGIN)

    def _lose_session(self) -> None:
        for held in self._held.values():
            held.lost.set()
        self._held.clear()
        self.session_id = None
        self.valid_until = 0.0

    async def _keep_alive(self) -> None:
        interval_s = self.ttl_ms / 3000
        while self.session_id is not None:
            session_id = self.session_id
            sent = time.monotonic()
            try:
                await self._leader.call(
                    LockKeepAlive(session_id),
                    LockKeepAliveReply,
                    budget_s=max(KEEPALIVE_RETRY_S, self.valid_until - sent),
                    attempt_s=min(ATTEMPT_TIMEOUT_S, interval_s),
                )
            except RemoteError as exc:
                if exc.code == "unknown_session" and self.session_id == session_id:
                    self._lose_session()
                    return
                await asyncio.sleep(KEEPALIVE_RETRY_S)
                continue
            except LockUnavailable:
                if self.session_id == session_id and time.monotonic() >= self.valid_until:
                    self._lose_session()  # no leader confirmed it within the TTL
                    return
                continue
            if self.session_id != session_id:
                return
            self.keepalives += 1
            self._renewed(sent)
            await asyncio.sleep(max(0.0, sent + interval_s - time.monotonic()))

    async def close(self) -> None:
        """Close the session (releasing every lock it holds) and the connections."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        session_id = self.session_id
        self._lose_session()
        if session_id is not None:
            with contextlib.suppress(LockError, RemoteError):
                await self._leader.call(LockClose(session_id), LockCloseReply)
        if self._own_pool:
            await self._pool.close()

    # -- locks -------------------------------------------------------------------------
    async def acquire(
        self, name: str, *, shared: bool = False, timeout: float | None = None
    ) -> Lock:
        """Wait for the lock (FIFO) at most `timeout` seconds (None: no limit; 0: a
        try-lock). Raises `LockTimeout` when it was not granted in time."""
        check_name(name)
        if timeout is not None and timeout < 0:
            raise InvalidArgument("invalid_argument: timeout must not be negative")
        mode: Mode = "shared" if shared else "exclusive"
        deadline = None if timeout is None else time.monotonic() + timeout
        session_id = await self.session()
        request_id = next(self._request_ids)
        try:
            token = await self._acquire(session_id, name, mode, request_id, deadline)
        except (LockUnavailable, asyncio.CancelledError):
            await self._cancel(session_id, name, request_id)
            raise
        if token is None:
            raise LockTimeout(f"timeout: {name!r} was not granted within {timeout} s")
        held = Lock(name, mode, token, request_id, session_id, self)
        if self.session_id != session_id:
            held.lost.set()
        else:
            self._held[request_id] = held
        return held

    async def _acquire(
        self, session_id: int, name: str, mode: Mode, request_id: int, deadline: float | None
    ) -> int | None:
        """The token, or None on timeout (the wait is then cancelled)."""
        while True:
            now = time.monotonic()
            # Rounded up, plus the slack of the leader's timers, so that a wait the leader
            # ends at its `wait_ms` never ends before ours.
            remaining_ms = WAIT_CHUNK_MS if deadline is None else math.ceil((deadline - now) * 1000)
            last_chunk = deadline is not None and remaining_ms <= WAIT_CHUNK_MS
            slack_ms = TIMER_SLACK_MS if last_chunk and remaining_ms > 0 else 0
            wait_ms = max(0, min(remaining_ms, WAIT_CHUNK_MS)) + slack_ms
            request = LockAcquire(
                session_id,
                name,
                mode,
                request_id,
                wait=deadline is None or remaining_ms > 0,
                wait_ms=wait_ms,
                cancel_on_timeout=last_chunk,
            )
            budget_s = wait_ms / 1000 + CALL_TIMEOUT_S
            try:
                reply = await self._leader.call(
                    request, LockAcquireReply, budget_s=budget_s, attempt_s=budget_s
                )
            except RemoteError as exc:
                if exc.code == "unknown_session":
                    self._lose_session()
                    raise SessionLost(f"unknown_session: {exc.message}") from None
                if exc.code in ("cancelled", "stale_request"):
                    return None  # our wait ended (cancelled on timeout by the leader)
                raise _lock_error(exc) from None
            if reply.status == "granted":
                return reply.token
            if reply.status in ("refused", "timeout"):
                return None
            if deadline is not None and time.monotonic() >= deadline:
                await self._cancel(session_id, name, request_id)
                return None

    async def _cancel(self, session_id: int, name: str, request_id: int) -> None:
        """Best effort: end the request's wait (or grant) when its caller gave up."""
        with contextlib.suppress(LockError, RemoteError, asyncio.CancelledError):
            await self._leader.call(
                LockRelease(session_id, name, request_id),
                LockReleaseReply,
                budget_s=RELEASE_TIMEOUT_S,
            )

    async def try_lock(self, name: str, *, shared: bool = False) -> Lock | None:
        """The lock if it is free now (and no one waits), else None."""
        try:
            return await self.acquire(name, shared=shared, timeout=0)
        except LockTimeout:
            return None

    async def release(self, held: Lock) -> None:
        """Release a grant. Releasing twice, or after the session was lost, is a no-op
        (the lock is already gone). `not_held` is success too: `held` is a grant this
        client received, so the service forgetting it means an earlier attempt of this
        release committed and its answer was lost (a leader died after committing)."""
        if held.released:
            return
        held.released = True
        self._held.pop(held.request_id, None)
        if held.session_id != self.session_id:
            return
        request = LockRelease(held.session_id, held.name, held.request_id)
        try:
            await self._leader.call(request, LockReleaseReply, budget_s=RELEASE_TIMEOUT_S)
        except RemoteError as exc:
            if exc.code in ("unknown_session", "not_held"):
                return  # expired with the session, or released by a lost earlier attempt
            raise _lock_error(exc) from None

    @contextlib.asynccontextmanager
    async def lock(
        self, name: str, *, shared: bool = False, timeout: float | None = None
    ) -> AsyncIterator[Lock]:
        """`async with client.lock(name):` holds the lock for the block."""
        held = await self.acquire(name, shared=shared, timeout=timeout)
        try:
            yield held
        finally:
            await held.release()

    def shared_lock(
        self, name: str, *, timeout: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[Lock]:
        return self.lock(name, shared=True, timeout=timeout)

    # -- queries -----------------------------------------------------------------------
    async def list_locks(
        self, prefix: str = "", limit: int = 1000, consistency: str = "lease"
    ) -> tuple[list[LockInfo], list[SessionInfo]]:
        """Names in use (holders by token, waiters in order) and the live sessions."""
        level = consistency if consistency in ("linearizable", "lease", "stale") else "lease"
        request = LockList(prefix, limit, level, sessions=True)  # type: ignore[arg-type]
        try:
            reply = await self._leader.call(request, LockListReply)
        except RemoteError as exc:
            raise _lock_error(exc) from None
        return reply.locks, reply.sessions

    async def fence_is_current(self, name: str, token: int) -> bool:
        check_name(name)
        try:
            reply = await self._leader.call(LockFence(name, token), LockFenceReply)
        except RemoteError as exc:
            raise _lock_error(exc) from None
        return reply.current


# -- the blocking wrapper --------------------------------------------------------------


@dataclass(frozen=True)
class SyncLock:
    """A `Lock` seen from a thread: `token`, `held`, `release()`."""

    _lock: Lock
    _client: "SyncLockClient"

    @property
    def name(self) -> str:
        return self._lock.name

    @property
    def token(self) -> int:
        return self._lock.token

    @property
    def held(self) -> bool:
        return self._lock.held

    @property
    def fence_header(self) -> dict[str, str]:
        return self._lock.fence_header

    def release(self) -> None:
        self._client._run(self._lock.release())

    def __enter__(self) -> "SyncLock":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class SyncLockClient:
    """`LockClient` for blocking code. Its event loop runs in a daemon thread, so the
    session keeps being renewed while the caller's code runs."""

    def __init__(self, client_factory: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client: LockClient = self._run(_make(client_factory))

    @classmethod
    def from_cluster_file(
        cls, path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> "SyncLockClient":
        return cls(lambda: LockClient.from_cluster_file(path, **kwargs))

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        future: ThreadFuture[T] = asyncio.run_coroutine_threadsafe(work, self._loop)
        return future.result()

    def acquire(self, name: str, *, shared: bool = False, timeout: float | None = None) -> SyncLock:
        return SyncLock(self._run(self.client.acquire(name, shared=shared, timeout=timeout)), self)

    def lock(self, name: str, *, shared: bool = False, timeout: float | None = None) -> SyncLock:
        """`with client.lock(name) as held:` holds the lock for the block."""
        return self.acquire(name, shared=shared, timeout=timeout)

    def shared_lock(self, name: str, *, timeout: float | None = None) -> SyncLock:
        return self.acquire(name, shared=True, timeout=timeout)

    def try_lock(self, name: str, *, shared: bool = False) -> SyncLock | None:
        held = self._run(self.client.try_lock(name, shared=shared))
        return None if held is None else SyncLock(held, self)

    def list_locks(self, prefix: str = "") -> tuple[list[LockInfo], list[SessionInfo]]:
        return self._run(self.client.list_locks(prefix))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "SyncLockClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _make(factory: Any) -> LockClient:
    client = factory()
    assert isinstance(client, LockClient)
    return client
