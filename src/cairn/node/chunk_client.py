"""Replicated chunk IO from a gateway's (or any node's) side: write at a consistency
level, check presence for dedup, read with fallback and hedging.

Theory of operation
-------------------
Where a chunk lives comes from the current `PlacementView` (asked afresh for every
call): its partition's owners. Chunks are immutable, so replicas never conflict and
writing a chunk twice is harmless (the chunkstore deduplicates); all the client decides
is how many acknowledgements are enough.

Write. `ChunkPut` goes to every live owner at once. The write succeeds when `required`
owners acked durably: `one` = 1, `quorum` = owners // 2 + 1, `all` = every owner. It
returns as soon as that many did; the other puts carry on in the background (held in a
set, so they are not garbage-collected) and still leave hints if they fail. An owner
that is not live, or whose put fails, gets a *hint*: `HintPut` on another live node
(a live non-owner if there is one, else a live owner), which hands the record over once
the owner is back (`hints.HandoffLoop`). Hints never count toward the level: they are a
repair shortcut, not a replica. If the level can no longer be met the write raises
`InsufficientReplicas`; whatever was stored is unreferenced and GC removes it.

Presence (dedup). One `ChunkHas(touch=True)` per live owner node for all the ids it
owns (split only past `CHUNK_HAS_IDS_MAX`); a chunk is present when at least `required`
of its owners hold it, so skipping its upload still leaves it at the write level. The
touch is what keeps GC off the chunk until the upload commits (see `chunk_gc.py`).

Read. The candidates are the current owners, then the previous table's (during a
rebalance), live ones first; among those, one balancing strategy over all members
(p2c-ewma by default, fed with every call's latency and outcome) picks the order. The
client asks one; on an error, `not_found`, a record that fails `verify`, or no answer
within the hedge delay, it asks the next as well; the first verified record wins and the
other calls are cancelled. All failed: `ChunkUnavailable`, listing why each failed.
"""

import asyncio
import hashlib
import logging
from collections import Counter as Tally
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast, get_args

from prometheus_client import Counter

from cairn.balancing import STRATEGY_NAMES, Backend, PooledStrategy, make_strategy
from cairn.base.errors import CairnError, RemoteError
from cairn.chunkstore import CHUNK_BYTES_MAX, CHUNK_ID_BYTES, ChunkTooLarge, InvalidChunkId
from cairn.monitor.logs import log_event
from cairn.monitor.metrics import REGISTRY
from cairn.node.chunk_messages import (
    CHUNK_HAS_IDS_MAX,
    ChunkGet,
    ChunkGetReply,
    ChunkHas,
    ChunkHasReply,
    ChunkPut,
    ChunkPutReply,
    HintPut,
    HintPutReply,
)
from cairn.node.placement_view import PlacementView
from cairn.runtime.clock import Clock, SystemClock
from cairn.runtime.rng import Rng, SystemRng
from cairn.wire import RpcPool

log = logging.getLogger("cairn.node.chunk_client")

T = TypeVar("T")
Level = Literal["one", "quorum", "all"]
LEVELS: tuple[Level, ...] = get_args(Level)

HEDGE_DELAY_S = 0.25
PUT_TIMEOUT_S = 30.0
GET_TIMEOUT_S = 30.0
HAS_TIMEOUT_S = 10.0
HINT_ATTEMPTS_MAX = 3
"""Nodes a hint is offered to, one after another, before giving up on it."""
_NOT_RETRYABLE = frozenset({"bad_request", "too_large"})

WRITES = Counter(
    "cairn_chunk_writes", "Replicated chunk writes by outcome.", ["outcome"], registry=REGISTRY
)
HINTS_PLACED = Counter(
    "cairn_chunk_hints_placed", "Hints placed for owners that missed a write.", registry=REGISTRY
)
HINTS_LOST = Counter(
    "cairn_chunk_hints_lost",
    "Owners that missed a write and for which no node took a hint.",
    registry=REGISTRY,
)
READ_FALLBACKS = Counter(
    "cairn_chunk_read_fallbacks",
    "Chunk reads that asked another replica, by reason (error or hedge).",
    ["reason"],
    registry=REGISTRY,
)
READS_FAILED = Counter(
    "cairn_chunk_reads_failed", "Chunk reads that no replica could serve.", registry=REGISTRY
)


class InsufficientReplicas(CairnError):
    """A write cannot reach its consistency level. It fails as soon as that is certain:
    `acked` owners had acked by then, and at most `possible` could have."""

    def __init__(
        self,
        chunk_id: bytes,
        acked: int,
        possible: int,
        required: int,
        owners: int,
        errors: dict[str, str],
    ) -> None:
        detail = "; ".join(f"{member}: {reason}" for member, reason in sorted(errors.items()))
        super().__init__(
            f"chunk {chunk_id.hex()[:16]}: at most {possible} of {required} required acks "
            f"({owners} owners, {acked} acked so far){': ' + detail if detail else ''}"
        )
        self.chunk_id = chunk_id
        self.acked = acked
        self.possible = possible
        self.required = required
        self.owners = owners
        self.errors = errors


class ChunkUnavailable(CairnError):
    """No replica returned a verified record of the chunk."""

    def __init__(self, chunk_id: bytes, failures: Sequence[tuple[str, str]]) -> None:
        detail = "; ".join(f"{member}: {reason}" for member, reason in failures)
        super().__init__(f"chunk {chunk_id.hex()[:16]} unavailable: {detail or 'no candidates'}")
        self.chunk_id = chunk_id
        self.failures = list(failures)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    chunk_id: bytes
    level: Level
    required: int
    owners: tuple[str, ...]
    acked: tuple[str, ...]
    """Owners that had acked when `write` returned (more may ack afterwards)."""


@dataclass(slots=True)
class ChunkClientStats:
    """Counters of one client (the Prometheus counters sum over the process)."""

    writes: int = 0
    write_failures: int = 0
    hints_placed: int = 0
    hints_lost: int = 0
    reads: int = 0
    read_fallbacks: int = 0
    """Another replica asked because one failed (error, not found, corrupt)."""
    read_hedges: int = 0
    """Another replica asked because one had not answered within the hedge delay."""
    read_failures: int = 0


def required_acks(level: Level, owner_count: int) -> int:
    """Acks a write at `level` needs with `owner_count` owners (1 when there are none:
    such a write cannot succeed)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    if owner_count == 0:
        return 1
    return {"one": 1, "quorum": owner_count // 2 + 1, "all": owner_count}[level]


def hint_candidates(view: PlacementView, target: str, chunk_id: bytes) -> list[str]:
    """Live members that may keep a hint for `target`: non-owners first, then owners, each
    group in an order hashed from the chunk id (so hints spread over the cluster)."""
    owners = set(view.owners(chunk_id))

    def order(member: str) -> tuple[bool, bytes]:
        digest = hashlib.blake2b(chunk_id + member.encode(), digest_size=8).digest()
        return member in owners, digest

    members = [m for m in view.live if m != target and view.address(m) is not None]
    return sorted(members, key=order)


def _check_chunk(chunk_id: bytes, record: bytes | None = None) -> None:
    if len(chunk_id) != CHUNK_ID_BYTES:
        raise InvalidChunkId(f"a chunk id is {CHUNK_ID_BYTES} bytes, got {len(chunk_id)}")
    if record is not None and len(record) > CHUNK_BYTES_MAX:
        raise ChunkTooLarge(f"record is {len(record)} bytes; the limit is {CHUNK_BYTES_MAX}")


class _WriteState:
    """Acks and failures of one write; `decided` is set once the outcome is known."""

    def __init__(self, required: int, possible: int) -> None:
        self.required = required
        self.possible = possible
        self.acked: list[str] = []
        self.errors: dict[str, str] = {}
        self.decided = asyncio.Event()
        self._check()

    def ack(self, member: str) -> None:
        self.acked.append(member)
        self._check()

    def fail(self, member: str, reason: str, *, counted: bool = True) -> None:
        self.errors[member] = reason
        if counted:
            self.possible -= 1
        self._check()

    def _check(self) -> None:
        if len(self.acked) >= self.required or self.possible < self.required:
            self.decided.set()


@dataclass(frozen=True, slots=True)
class _Attempt(Generic[T]):
    value: T | None
    error: str | None


class ReplicatedChunks:
    def __init__(
        self,
        pool: RpcPool,
        view_provider: Callable[[], PlacementView],
        strategy_name: str = "p2c-ewma",
        *,
        hedge_delay_s: float = HEDGE_DELAY_S,
        put_timeout_s: float = PUT_TIMEOUT_S,
        get_timeout_s: float = GET_TIMEOUT_S,
        has_timeout_s: float = HAS_TIMEOUT_S,
        clock: Clock | None = None,
        rng: Rng | None = None,
    ) -> None:
        assert hedge_delay_s > 0
        self._pool = pool
        self._view_provider = view_provider
        self.strategy_name = strategy_name
        self.hedge_delay_s = hedge_delay_s
        self.put_timeout_s = put_timeout_s
        self.get_timeout_s = get_timeout_s
        self.has_timeout_s = has_timeout_s
        self._clock = clock or SystemClock()
        self._rng = rng or SystemRng()
        self.stats = ChunkClientStats()
        self._background: set[asyncio.Task[None]] = set()
        self._strategy: PooledStrategy | None = None
        self._strategy_members: tuple[str, ...] = ()
        if strategy_name not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {strategy_name!r}; one of {STRATEGY_NAMES}")

    # ----------------------------------------------------------------- write

    async def write(self, chunk_id: bytes, record: bytes, level: Level = "quorum") -> WriteOutcome:
        """Store `record` on the chunk's owners; return once `level` of them have it
        durably, or raise `InsufficientReplicas`."""
        _check_chunk(chunk_id, record)
        view = self._view_provider()
        owners = view.owners(chunk_id)
        required = required_acks(level, len(owners))
        reachable = {o: view.address(o) for o in owners if o in view.live}
        state = _WriteState(required, sum(1 for a in reachable.values() if a is not None))
        for owner in owners:
            address = reachable.get(owner)
            if address is not None:
                self._spawn(self._put_or_hint(view, owner, address, chunk_id, record, state))
            else:
                state.fail(owner, "not live", counted=False)
                self._spawn(self._hint(view, owner, chunk_id, record))
        await state.decided.wait()
        self.stats.writes += 1
        if len(state.acked) < required:
            self.stats.write_failures += 1
            WRITES.labels(outcome="insufficient").inc()
            raise InsufficientReplicas(
                chunk_id,
                len(state.acked),
                state.possible,
                required,
                len(owners),
                dict(state.errors),
            )
        WRITES.labels(outcome="ok").inc()
        return WriteOutcome(chunk_id, level, required, owners, tuple(state.acked))

    async def _put_or_hint(
        self,
        view: PlacementView,
        owner: str,
        address: str,
        chunk_id: bytes,
        record: bytes,
        state: _WriteState,
    ) -> None:
        try:
            await self._pool.call(
                address, ChunkPut(chunk_id), ChunkPutReply, record, timeout=self.put_timeout_s
            )
        except CairnError as exc:
            state.fail(owner, str(exc))
            if not (isinstance(exc, RemoteError) and exc.code in _NOT_RETRYABLE):
                await self._hint(view, owner, chunk_id, record)
            return
        state.ack(owner)

    async def _hint(self, view: PlacementView, target: str, chunk_id: bytes, record: bytes) -> None:
        """Leave a hint for `target` on another live node (see `hint_candidates`)."""
        for member in hint_candidates(view, target, chunk_id)[:HINT_ATTEMPTS_MAX]:
            address = view.address(member)
            assert address is not None
            try:
                await self._pool.call(
                    address,
                    HintPut(target, chunk_id),
                    HintPutReply,
                    record,
                    timeout=self.put_timeout_s,
                )
            except CairnError as exc:
                log_event(log, "chunks.hint_refused", member=member, error=str(exc))
                continue
            self.stats.hints_placed += 1
            HINTS_PLACED.inc()
            log_event(log, "chunks.hinted", target=target, holder=member, chunk=chunk_id.hex())
            return
        self.stats.hints_lost += 1
        HINTS_LOST.inc()
        log_event(log, "chunks.hint_lost", logging.WARNING, target=target, chunk=chunk_id.hex())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def background(self) -> int:
        """Puts and hints still running after their write returned."""
        return len(self._background)

    async def drain(self) -> None:
        """Wait for every background put and hint (before shutdown, and in tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # ----------------------------------------------------------------- presence

    async def present(self, chunk_ids: Iterable[bytes], level: Level = "quorum") -> set[bytes]:
        """The ids that at least `required_acks(level)` of their owners hold (touching
        them on every owner asked, so GC keeps them while the caller relies on them)."""
        view = self._view_provider()
        owners_of: dict[bytes, tuple[str, ...]] = {}
        asks: dict[str, list[bytes]] = {}
        for chunk_id in chunk_ids:
            _check_chunk(chunk_id)
            if chunk_id in owners_of:
                continue
            owners_of[chunk_id] = owners = view.owners(chunk_id)
            for owner in owners:
                if owner in view.live and view.address(owner) is not None:
                    asks.setdefault(owner, []).append(chunk_id)
        holders: Tally[bytes] = Tally()

        async def ask(owner: str, ids: list[bytes]) -> None:
            address = view.address(owner)
            assert address is not None
            for start in range(0, len(ids), CHUNK_HAS_IDS_MAX):
                batch = ids[start : start + CHUNK_HAS_IDS_MAX]
                try:
                    reply, _ = await self._pool.call(
                        address,
                        ChunkHas(batch, touch=True),
                        ChunkHasReply,
                        timeout=self.has_timeout_s,
                    )
                except CairnError as exc:
                    log_event(log, "chunks.has_failed", member=owner, error=str(exc))
                    return
                holders.update(cid for cid, held in zip(batch, reply.present, strict=True) if held)

        await asyncio.gather(*(ask(owner, ids) for owner, ids in asks.items()))
        return {
            cid
            for cid, owners in owners_of.items()
            if owners and holders[cid] >= required_acks(level, len(owners))
        }

    # ----------------------------------------------------------------- read

    async def read(
        self, chunk_id: bytes, verify: Callable[[bytes], T], *, hedge_delay_s: float | None = None
    ) -> T:
        """The first record of `chunk_id` that `verify` accepts, as `verify` returns it.

        `verify` raises on a bad record (e.g. `ChunkCodec.decode`, which also decodes).
        """
        _check_chunk(chunk_id)
        hedge = self.hedge_delay_s if hedge_delay_s is None else hedge_delay_s
        view = self._view_provider()
        pending = [m for m in view.read_candidates(chunk_id) if view.address(m) is not None]
        strategy = self._strategy_for(view)
        running: dict[asyncio.Task[_Attempt[T]], str] = {}
        failures: list[tuple[str, str]] = []
        self.stats.reads += 1

        def start_next() -> None:
            live = [m for m in pending if m in view.live]
            backend = strategy.pick(None, self._clock.monotonic(), among=live or pending)
            pending.remove(backend.id)
            address = view.address(backend.id)
            assert address is not None
            attempt = self._attempt(strategy, backend, address, chunk_id, verify)
            running[asyncio.get_running_loop().create_task(attempt)] = backend.id

        try:
            if pending:
                start_next()
            while running:
                done, _ = await asyncio.wait(
                    running,
                    timeout=hedge if pending else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    self.stats.read_hedges += 1
                    READ_FALLBACKS.labels(reason="hedge").inc()
                    start_next()
                    continue
                for task in sorted(done, key=lambda t: t.result().error is not None):
                    member = running.pop(task)
                    result = task.result()
                    if result.error is None:
                        return cast(T, result.value)
                    failures.append((member, result.error))
                if pending:
                    self.stats.read_fallbacks += 1
                    READ_FALLBACKS.labels(reason="error").inc()
                    start_next()
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        self.stats.read_failures += 1
        READS_FAILED.inc()
        raise ChunkUnavailable(chunk_id, failures)

    async def _attempt(
        self,
        strategy: PooledStrategy,
        backend: Backend,
        address: str,
        chunk_id: bytes,
        verify: Callable[[bytes], T],
    ) -> _Attempt[T]:
        """One `ChunkGet`, reported to the strategy; never raises (but may be cancelled)."""
        healthy = True  # a cancelled attempt (a hedge lost the race) is not the node's fault
        started = self._clock.monotonic()
        strategy.on_start(backend)
        try:
            try:
                _, payload = await self._pool.call(
                    address, ChunkGet(chunk_id), ChunkGetReply, timeout=self.get_timeout_s
                )
            except RemoteError as exc:
                healthy = exc.code in ("not_found", "corrupt")  # answered: the node is fine
                return _Attempt(None, f"{exc.code}: {exc.message}")
            except CairnError as exc:
                healthy = False
                return _Attempt(None, f"{type(exc).__name__}: {exc}")
            try:
                value = verify(bytes(payload))
            except Exception as exc:
                healthy = False
                log_event(
                    log, "chunks.read_corrupt", logging.WARNING, member=backend.id, error=str(exc)
                )
                return _Attempt(None, f"corrupt: {type(exc).__name__}: {exc}")
            return _Attempt(value, None)
        finally:
            now = self._clock.monotonic()
            strategy.on_finish(backend, now - started, healthy, now)

    def _strategy_for(self, view: PlacementView) -> PooledStrategy:
        """One strategy over every member (rebuilt when the membership changes)."""
        members = tuple(sorted(view.addresses))
        if self._strategy is None or members != self._strategy_members:
            self._strategy = make_strategy(
                self.strategy_name,
                [Backend(m) for m in members] or [Backend("-")],
                random=self._rng.random,
            )
            self._strategy_members = members
        return self._strategy
